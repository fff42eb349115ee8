//! Starting the agent at boot: `cm-agent install-service` writes the systemd
//! unit; `cm-agent start` (what user-data runs) enrolls in the foreground,
//! so a bad token is reported on the console and nothing is started, then
//! hands over to systemd where it is PID 1, or detaches a daemon elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::Config;
use crate::node::{Connected, Fatal, connect_with_backoff};
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
        "{WRITTEN_HEADER}\
[Unit]
Description=cm agent: keeps this node converged
Documentation=man:cm-agent(8)
Wants=network-online.target
After=network-online.target
# No settings, no agent: user-data writes them, then runs `cm-agent start`.
ConditionPathExists={config}

[Service]
Type=notify
# READY comes after enrollment, which waits for the server as long as it takes.
TimeoutStartSec=infinity
ExecStart={exe} daemon --config {config}
# After the run in hand, the daemon starts again on the binary now
# installed (a package upgrade sends this).
ExecReload=/bin/kill -HUP $MAINPID
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
/// Returns the unit in use.
pub fn install_service(config_file: &Path, start: bool) -> Result<&'static str, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    check_path("the agent binary", &exe)?;
    check_path("the settings file", config_file)?;
    let in_use = if packaged_unit_fits(&exe, config_file) {
        remove_written_unit()?;
        PACKAGED_UNIT
    } else {
        let text = unit(&exe, config_file);
        let wanted = crate::fsutil::Wanted {
            mode: Some(0o644),
            ..Default::default()
        };
        crate::fsutil::write_atomic(Path::new(UNIT_PATH), text.as_bytes(), &wanted)
            .map_err(|e| format!("cannot write {UNIT_PATH}: {e}"))?;
        UNIT_PATH
    };
    if !systemd_is_init() {
        return Ok(in_use);
    }
    systemctl(&["daemon-reload"])?;
    if start {
        systemctl(&["enable", "--now", "--no-block", "cm-agent.service"])?;
    }
    Ok(in_use)
}

/// The cm-agent package's unit: [`unit`] for [`PACKAGED_EXE`] and the default
/// settings file.
pub const PACKAGED_UNIT: &str = "/lib/systemd/system/cm-agent.service";
pub const PACKAGED_EXE: &str = "/usr/bin/cm-agent";
const WRITTEN_HEADER: &str = "# Written by `cm-agent install-service`.\n";

/// The package's unit runs this binary with these settings: nothing to write.
fn packaged_unit_fits(exe: &Path, config_file: &Path) -> bool {
    exe == Path::new(PACKAGED_EXE)
        && config_file == Path::new(crate::config::DEFAULT_FILE)
        && Path::new(PACKAGED_UNIT).exists()
}

/// A unit written before the package was installed would hide the package's.
fn remove_written_unit() -> Result<(), String> {
    match std::fs::read_to_string(UNIT_PATH) {
        Ok(text) if text.starts_with(WRITTEN_HEADER) => {
            std::fs::remove_file(UNIT_PATH).map_err(|e| format!("cannot remove {UNIT_PATH}: {e}"))
        }
        _ => Ok(()),
    }
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
{header}### BEGIN INIT INFO
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

[ -x "$DAEMON" ] || exit 0

case "$1" in
  start)
    # No settings, no agent: user-data writes them, then runs `cm-agent start`.
    [ -f "$CONFIG" ] || {{ echo "cm-agent: no $CONFIG, not started" >&2; exit 0; }}
    start-stop-daemon --start --quiet --oknodo --background --make-pidfile \
      --pidfile "$PIDFILE" --startas /bin/sh -- \
      -c "exec '$DAEMON' daemon --config '$CONFIG' >>$LOG 2>&1"
    ;;
  stop)
    # The agent finishes the resource in hand on SIGTERM.
    start-stop-daemon --stop --quiet --oknodo --pidfile "$PIDFILE" \
      --retry TERM/300/KILL/5 --remove-pidfile
    ;;
  reload)
    # After the run in hand, the daemon starts again on the binary now
    # installed (a package upgrade sends this).
    start-stop-daemon --stop --signal HUP --quiet --pidfile "$PIDFILE"
    ;;
  restart|force-reload)
    "$0" stop && "$0" start
    ;;
  status)
    start-stop-daemon --status --pidfile "$PIDFILE"
    ;;
  *)
    echo "Usage: $0 {{start|stop|reload|restart|status}}" >&2
    exit 3
    ;;
esac
"#,
        header = INIT_HEADER,
        exe = exe.display(),
        config = config_file.display(),
        log = DETACHED_LOG,
    )
}

const INIT_HEADER: &str = "# Written by `cm-agent start`.\n";

/// The cm-agent package's init script, [`init_script`] for
/// [`PACKAGED_EXE`] and the default settings file.
fn packaged_init_script_fits(exe: &Path, config_file: &Path) -> bool {
    exe == Path::new(PACKAGED_EXE)
        && config_file == Path::new(crate::config::DEFAULT_FILE)
        && std::fs::read_to_string(INIT_SCRIPT).is_ok_and(|text| {
            !text.contains(INIT_HEADER) && text.contains("DAEMON='/usr/bin/cm-agent'")
        })
}

/// Install the init script, link it into the runlevels and start it.
fn install_init_script(config_file: &Path) -> Result<Started, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    check_path("the agent binary", &exe)?;
    check_path("the settings file", config_file)?;
    if !packaged_init_script_fits(&exe, config_file) {
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
    }
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
    let waiting = |e: &RemoteError, wait: Duration| {
        eprintln!(
            "cm-agent: cannot enroll yet ({e}); retrying in {:.0}s",
            wait.as_secs_f32()
        );
    };
    let budget = tokio::time::sleep(ENROLL_BUDGET);
    if let Connected::GaveUp(e) = connect_with_backoff(config, budget, waiting).await? {
        eprintln!("cm-agent: still cannot enroll ({e}); the daemon keeps trying");
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
    new_session_before_exec(&mut cmd);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    Ok(Started::Detached {
        pid: child.id(),
        log,
    })
}

/// The daemon leaves the caller's session, so it outlives the shell that ran
/// `cm-agent start`.
#[allow(unsafe_code)] // listed in docs/decisions.md, "Where `unsafe` is allowed"
fn new_session_before_exec(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGED_INIT_HEADER: &str = "# Shipped by the cm-agent package: the script `cm-agent start` writes for\n# /usr/bin/cm-agent (agent/src/boot.rs; a test keeps them the same).\n";

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
        assert!(s.contains("Usage: $0 {start|stop|reload|restart|status}"));
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

    /// The package ships the init script `start` would write for it.
    #[test]
    fn the_packaged_init_script_is_the_written_one() {
        let packaged = include_str!("../../packaging/cm-agent/cm-agent.init");
        let written = init_script(
            Path::new(PACKAGED_EXE),
            Path::new(crate::config::DEFAULT_FILE),
        );
        assert_eq!(packaged, written.replace(INIT_HEADER, PACKAGED_INIT_HEADER));
        assert!(written.contains("\n  reload)\n"));
        assert!(written.contains("[ -f \"$CONFIG\" ] ||"));
    }

    /// The package ships the unit `install-service` would write for it.
    #[test]
    fn the_packaged_unit_is_the_written_one() {
        let packaged = include_str!("../../packaging/cm-agent/cm-agent.service");
        let written = unit(
            Path::new(PACKAGED_EXE),
            Path::new(crate::config::DEFAULT_FILE),
        );
        let body = |u: &str| {
            u.lines()
                .skip_while(|l| l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(body(packaged), body(&written));
        assert!(written.starts_with(WRITTEN_HEADER));
        assert!(written.contains("\nConditionPathExists=/etc/cm/agent.yaml\n"));
        assert!(written.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"));
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
