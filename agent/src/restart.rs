//! SIGHUP asks the daemon to start again on the binary now installed, once
//! the run in hand has finished: what the cm-agent package's postinst sends
//! on an upgrade (docs/install.md, "Upgrading"). The daemon replaces itself
//! (execve, same pid and arguments), so systemd and start-stop-daemon keep
//! following it, and a run is never cut short, not even the one that is
//! installing the package. SIGHUP stays blocked across the exec until the
//! new process listens for it: its default action would kill the daemon.
//! When the new binary cannot be started, this one carries on.

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SigSet, Signal};
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
        // Blocked by the process that exec'd this one: deliver it now.
        let _ = SigSet::from(Signal::SIGHUP).thread_unblock();
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

    /// Start again on the installed binary; returns only when that fails,
    /// having logged why, with the request forgotten.
    pub fn now_or_carry_on(&self) {
        tracing::info!("starting again on the installed binary");
        let e = exec_installed();
        tracing::error!(error = %e, "cannot start the installed binary: carrying on with this one");
        self.asked.store(false, Ordering::SeqCst);
    }

    /// Resolves once a restart has been asked for.
    pub async fn wanted(&self) {
        while !self.asked() {
            self.wake.notified().await;
        }
    }
}

/// Replace this process with the binary now at this one's path, with the
/// same arguments; returns only if that fails. execv(2) itself, since std's
/// `Command::exec` would unblock every signal.
fn exec_installed() -> std::io::Error {
    use std::os::unix::ffi::OsStrExt;
    let exe = match installed_path() {
        Ok(exe) => exe,
        Err(e) => return e,
    };
    let c_string = |s: &std::ffi::OsStr| CString::new(s.as_bytes());
    let argv: Result<Vec<CString>, _> = std::iter::once(exe.as_os_str().to_owned())
        .chain(std::env::args_os().skip(1))
        .map(|a| c_string(&a))
        .collect();
    let (Ok(path), Ok(argv)) = (c_string(exe.as_os_str()), argv) else {
        return std::io::Error::other("an argument holds a NUL byte");
    };
    let hup = SigSet::from(Signal::SIGHUP);
    let _ = hup.thread_block();
    let e = match nix::unistd::execv(&path, &argv) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    let _ = hup.thread_unblock();
    std::io::Error::from(e)
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
