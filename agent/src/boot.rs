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
/// network-online only (never after cloud-final, decisions.md, "Booting from
/// cloud-init"), and no restart after a refusal (exit 3 and 4) so a bad token
/// does not spin. `KillMode=process`: the cgroup is not killed when the
/// agent dies, or apt-get and dpkg would be killed half-way; the commands'
/// watchers stop the rest (`command` module), the same as on nodes without
/// systemd.
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
# READY comes after enrollment, which waits for the server as long as it takes.
TimeoutStartSec=infinity
ExecStart={exe} daemon --config {config}
Restart=on-failure
RestartSec=10s
RestartPreventExitStatus=2 3 4
# Only the agent gets SIGTERM; it finishes the resource in hand. systemd
# kills nothing else: each command's watcher stops the command's process
# group if the agent dies, and apt-get and dpkg are left to finish.
KillMode=process
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

/// Whether systemd manages this machine (decisions.md, "How the init system is
/// detected").
pub fn systemd_is_init() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Write the unit (atomically) and reload systemd; with `start`, enable
/// and start it without waiting (`--no-block`: user-data runs inside
/// cloud-final, which the unit must not wait for).
pub fn install_service(config_file: &Path, start: bool) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    check_path("the agent binary", &exe)?;
    check_path("the settings file", config_file)?;
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

pub const INIT_SCRIPT: &str = "/etc/init.d/cm-agent";

/// The sysvinit script for nodes without systemd, so the daemon comes back
/// after a reboot. start-stop-daemon (dpkg's) detaches it and keeps its pid.
pub fn init_script(exe: &Path, config_file: &Path) -> String {
    format!(
        r#"#!/bin/sh
# Written by `cm-agent start`.
### BEGIN INIT INFO
# Provides:          cm-agent
# Required-Start:    $network $remote_fs $syslog
# Required-Stop:     $network $remote_fs $syslog
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: cm agent: keeps this node converged
### END INIT INFO
DAEMON='{exe}'
CONFIG='{config}'
PIDFILE=/run/cm-agent.pid
LOG={log}

case "$1" in
  start)
    start-stop-daemon --start --quiet --oknodo --background --make-pidfile \
      --pidfile "$PIDFILE" --startas /bin/sh -- \
      -c "exec '$DAEMON' daemon --config '$CONFIG' >>$LOG 2>&1"
    ;;
  stop)
    # The agent finishes the resource in hand on SIGTERM.
    start-stop-daemon --stop --quiet --oknodo --pidfile "$PIDFILE" \
      --retry TERM/300/KILL/5 --remove-pidfile
    ;;
  restart|force-reload)
    "$0" stop && "$0" start
    ;;
  status)
    start-stop-daemon --status --pidfile "$PIDFILE"
    ;;
  *)
    echo "Usage: $0 {{start|stop|restart|status}}" >&2
    exit 3
    ;;
esac
"#,
        exe = exe.display(),
        config = config_file.display(),
        log = DETACHED_LOG,
    )
}

/// Install the init script, link it into the runlevels and start it.
fn install_init_script(config_file: &Path) -> Result<Started, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    check_path("the agent binary", &exe)?;
    check_path("the settings file", config_file)?;
    let wanted = crate::fsutil::Wanted {
        mode: Some(0o755),
        ..Default::default()
    };
    crate::fsutil::write_atomic(
        Path::new(INIT_SCRIPT),
        init_script(&exe, config_file).as_bytes(),
        &wanted,
    )
    .map_err(|e| format!("cannot write {INIT_SCRIPT}: {e}"))?;
    run(Command::new("update-rc.d").args(["cm-agent", "defaults"]))?;
    run(Command::new(INIT_SCRIPT).arg("start"))?;
    Ok(Started::InitScript {
        log: PathBuf::from(DETACHED_LOG),
    })
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// How `start` ended.
pub enum Started {
    Systemd,
    /// Started by /etc/init.d/cm-agent, linked into the runlevels.
    InitScript {
        log: PathBuf,
    },
    Detached {
        pid: u32,
        log: PathBuf,
    },
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
            Ok(_) => break,
            Err(RemoteError::Refused(m)) => return Err(Fatal::Refused(m)),
            Err(RemoteError::Revoked(m)) => return Err(Fatal::Revoked(m)),
            Err(RemoteError::Local(m)) => return Err(Fatal::Setup(m)),
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
    } else if has_sysv_tools() {
        install_init_script(&config.file).map_err(Fatal::Setup)
    } else {
        detach(&config.file).map_err(Fatal::Setup)
    }
}

/// update-rc.d and start-stop-daemon, as every Debian system has.
fn has_sysv_tools() -> bool {
    let found = |name: &str| {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .any(|dir| Path::new(dir).join(name).exists())
    };
    found("update-rc.d") && found("start-stop-daemon")
}

/// Paths go into a unit file and a shell script: allow only plain ones.
fn check_path(what: &str, path: &Path) -> Result<(), String> {
    let text = path.to_str().unwrap_or_default();
    let plain = text.starts_with('/')
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b));
    if plain {
        Ok(())
    } else {
        Err(format!(
            "{what} {}: only absolute paths of letters, digits and / . _ - + can be started at boot",
            path.display()
        ))
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
    fn only_plain_paths_start_at_boot() {
        assert!(check_path("f", Path::new("/etc/cm/agent.yaml")).is_ok());
        for bad in ["etc/cm", "/etc/it's", "/etc/a b", "/etc/100%", "/etc/$(x)"] {
            assert!(check_path("f", Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn init_script_is_lsb_and_quotes_its_paths() {
        let s = init_script(
            Path::new("/usr/local/bin/cm-agent"),
            Path::new("/etc/cm/agent.yaml"),
        );
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("### BEGIN INIT INFO\n# Provides:          cm-agent\n"));
        assert!(s.contains("DAEMON='/usr/local/bin/cm-agent'\n"));
        assert!(s.contains("Usage: $0 {start|stop|restart|status}"));
    }

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

    #[test]
    fn unit_leaves_apt_and_dpkg_running_when_the_agent_dies() {
        let u = unit(
            Path::new("/usr/local/bin/cm-agent"),
            Path::new("/etc/cm/agent.yaml"),
        );
        assert!(u.contains("\nKillMode=process\n"), "{u}");
    }
}
