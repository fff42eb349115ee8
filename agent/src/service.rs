//! Starting the agent at boot: `cm-agent install-service` writes the systemd
//! unit; `cm-agent start` (what user-data runs) enrolls in the foreground,
//! so a bad token is reported on the console and nothing is started, then
//! hands over to systemd where it is PID 1, or detaches a daemon elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::node::{Fatal, Node, gather_facts};
use crate::remote::RemoteError;

pub const UNIT_PATH: &str = "/etc/systemd/system/cm-agent.service";
pub const DETACHED_LOG: &str = "/var/log/cm-agent.log";

/// How long `start` keeps trying to reach the server before it leaves the
/// rest to the daemon (which keeps trying by itself).
const ENROLL_BUDGET: Duration = Duration::from_secs(60);

/// The unit: Type=notify with READY sent after enrollment, ordered after
/// network-online only (never after cloud-final, STACK.md item 10), and no
/// restart after a refusal (exit 3 and 4) so a bad token does not spin.
pub fn unit(exe: &Path, config_file: &Path) -> String {
    format!(
        "\
# Written by `cm-agent install-service`.
[Unit]
Description=cm agent: keeps this node converged
Documentation=man:cm-agent(8)
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
ExecStart={exe} daemon --config {config}
Restart=on-failure
RestartSec=10s
RestartPreventExitStatus=2 3 4
# Only the agent gets SIGTERM; it finishes the resource in hand.
KillMode=mixed
TimeoutStopSec=5min
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
",
        exe = exe.display(),
        config = config_file.display()
    )
}

/// Whether systemd manages this machine (STACK.md item 7).
pub fn systemd_is_init() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Write the unit (atomically) and reload systemd; with `start`, enable
/// and start it without waiting (`--no-block`: user-data runs inside
/// cloud-final, which the unit must not wait for).
pub fn install_service(config_file: &Path, start: bool) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let text = unit(&exe, config_file);
    let wanted = crate::fsutil::Wanted {
        mode: Some(0o644),
        ..Default::default()
    };
    crate::fsutil::write_atomic(Path::new(UNIT_PATH), text.as_bytes(), &wanted)
        .map_err(|e| format!("cannot write {UNIT_PATH}: {e}"))?;
    if !systemd_is_init() {
        return Ok(());
    }
    systemctl(&["daemon-reload"])?;
    if start {
        systemctl(&["enable", "--now", "--no-block", "cm-agent.service"])?;
    }
    Ok(())
}

fn systemctl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "systemctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// How `start` ended.
pub enum Started {
    Systemd,
    Detached { pid: u32, log: PathBuf },
}

/// Enroll (waiting a bounded time for the server), then start the daemon.
pub async fn start(config: &Config) -> Result<Started, Fatal> {
    let begun = Instant::now();
    let mut backoff = crate::daemon::Backoff::new();
    loop {
        let c = config.clone();
        let facts = tokio::task::spawn_blocking(move || gather_facts(&c))
            .await
            .unwrap_or_default();
        match Node::connect(config, &facts).await {
            Ok(node) => {
                eprintln!(
                    "cm-agent: node {} enrolled with {}",
                    node.identity.name, node.identity.server
                );
                break;
            }
            Err(RemoteError::Refused(m)) => return Err(Fatal::Refused(m)),
            Err(RemoteError::Revoked(m)) => return Err(Fatal::Revoked(m)),
            Err(e) if begun.elapsed() < ENROLL_BUDGET => {
                let wait = backoff.next_delay();
                eprintln!(
                    "cm-agent: cannot enroll yet ({e}); retrying in {:.0}s",
                    wait.as_secs_f32()
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                eprintln!("cm-agent: still cannot enroll ({e}); the daemon keeps trying");
                break;
            }
        }
    }
    if systemd_is_init() {
        install_service(&config.file, true).map_err(Fatal::Setup)?;
        Ok(Started::Systemd)
    } else {
        detach(&config.file).map_err(Fatal::Setup)
    }
}

/// Start `cm-agent daemon` in its own session, logging to a file, so the
/// caller (cloud-init's final stage) can finish.
fn detach(config_file: &Path) -> Result<Started, String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let log = PathBuf::from(DETACHED_LOG);
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))
    };
    let mut cmd = Command::new(exe);
    cmd.arg("daemon")
        .arg("--config")
        .arg(config_file)
        .stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?);
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    Ok(Started::Detached {
        pid: child.id(),
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_is_notify_after_network_online_only() {
        let u = unit(
            Path::new("/usr/local/bin/cm-agent"),
            Path::new("/etc/cm/agent.yaml"),
        );
        assert!(u.contains("Type=notify"));
        assert!(u.contains("After=network-online.target\n"));
        assert!(!u.contains("cloud-final"));
        assert!(u.contains("ExecStart=/usr/local/bin/cm-agent daemon --config /etc/cm/agent.yaml"));
        assert!(u.contains("RestartPreventExitStatus=2 3 4"));
    }
}
