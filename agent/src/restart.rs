//! SIGHUP asks the daemon to start again on the binary now installed, once
//! the run in hand has finished: what the cm-agent package's postinst sends
//! on an upgrade (docs/install.md, "Upgrading"). The daemon replaces itself
//! (execve, same pid and arguments), so systemd and start-stop-daemon keep
//! following it, and a run is never cut short, not even the one that is
//! installing the package.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Whether a restart was asked for, and a wake-up for the daemon's wait.
#[derive(Clone, Default)]
pub struct Restart {
    asked: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl Restart {
    /// Listen for SIGHUP from now on.
    pub fn listen() -> Restart {
        use tokio::signal::unix::{SignalKind, signal};
        let restart = Restart::default();
        // Installed before returning: from here on SIGHUP no longer kills.
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return restart;
        };
        let r = restart.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!(
                    "asked to start again on the installed binary after the run in hand"
                );
                r.asked.store(true, Ordering::SeqCst);
                r.wake.notify_one();
            }
        });
        restart
    }

    pub fn asked(&self) -> bool {
        self.asked.load(Ordering::SeqCst)
    }

    /// Resolves once a restart has been asked for.
    pub async fn wanted(&self) {
        while !self.asked() {
            self.wake.notified().await;
        }
    }
}

/// Replace this process with the binary now at this one's path, with the
/// same arguments. Returns only if that fails.
pub fn exec_installed() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let exe = match installed_path() {
        Ok(exe) => exe,
        Err(e) => return e,
    };
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    std::process::Command::new(exe).args(args).exec()
}

/// This binary's path; once a package has replaced the file, the kernel
/// names the old one "PATH (deleted)".
fn installed_path() -> std::io::Result<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    Ok(strip_deleted(exe))
}

fn strip_deleted(exe: PathBuf) -> PathBuf {
    match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(path) => PathBuf::from(path),
        None => exe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_binary_is_started_from_its_path() {
        assert_eq!(
            strip_deleted(PathBuf::from("/usr/bin/cm-agent (deleted)")),
            PathBuf::from("/usr/bin/cm-agent")
        );
        assert_eq!(
            strip_deleted(PathBuf::from("/usr/bin/cm-agent")),
            PathBuf::from("/usr/bin/cm-agent")
        );
    }

    #[tokio::test]
    async fn sighup_marks_the_restart_and_wakes_the_waiter() {
        let restart = Restart::listen();
        assert!(!restart.asked());
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), restart.wanted())
            .await
            .expect("SIGHUP heard");
        assert!(restart.asked());
    }
}
