//! The service provider against real daemons: memcached through its init
//! script where PID 1 is no init system, through systemctl where systemd is
//! PID 1 (the systemd node container of tests/cluster/providers.sh), and
//! services that die at start. They need root: CI runs as root, and
//! elsewhere each test says why it did nothing (`support::require`).
//!
//! The machine the tests run on has no init system as PID 1, so the
//! init-script tests run here; the systemd tests are `#[ignore]`d here and
//! run in a systemd node container by tests/cluster/providers.sh, which
//! fails unless every test of this file ran in one node kind or another.
//! Every test uses names of its own and cleans up after itself, also when
//! it fails.

mod support;

use std::path::Path;
use std::process::Command;

use cm_agent::resources::Init;
use serde_json::json;
use support::system::{Cleanup, converge, converge_cx, resource, sh, why_run};

/// Removes what a service test installed; waits for a dpkg lock another
/// test may hold, or the purge fails unseen.
const PURGE_MEMCACHED: &[&str] = &[
    "apt-get",
    "-qy",
    "-o",
    "DPkg::Lock::Timeout=600",
    "purge",
    "memcached",
];

fn memcached_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "memcached")
        })
        .collect()
}

fn start_links(name: &str) -> usize {
    (2..=5)
        .filter(|l| Path::new(&format!("/etc/rc{l}.d/S01{name}")).exists())
        .count()
}

/// Waits for memcached to reach the given state (its start forks and returns);
/// not within a minute is a failure (a hang), never a measurement.
fn wait_running(want: bool) -> Vec<u32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let pids = memcached_pids();
        if pids.is_empty() != want {
            return pids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "memcached did not {} within 60 s: pids {pids:?}",
            if want { "start" } else { "stop" }
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `init` is PID 1 here; otherwise the test says it did nothing.
fn require_init(init: Init) -> bool {
    let found = Init::detect();
    support::require(
        found == init,
        &format!("written for {init:?} as the init system, found {found:?}"),
    )
}

#[test]
fn service_starts_stops_restarts_and_switches_boot_links_of_a_real_daemon() {
    if !support::require_root("installing and running a daemon") {
        return;
    }
    if !require_init(Init::Direct)
        || !support::require(
            memcached_pids().is_empty(),
            "written for a machine that runs no memcached: stop it first",
        )
    {
        return;
    }
    let pkg = resource(
        "package",
        json!({"package_name": "memcached", "lock_timeout": 600}),
    );
    // Purge at the end only what this test installed.
    let was_installed = Path::new("/etc/init.d/memcached").exists();
    let stop: &[&str] = &["/etc/init.d/memcached", "stop"];
    let commands = [stop, PURGE_MEMCACHED];
    let _cleanup = Cleanup::new(&commands[..if was_installed { 1 } else { 2 }]);
    converge_cx(&pkg, "install", false)
        .0
        .expect("memcached installs");
    let svc = resource("service", json!({"service_name": "memcached"}));
    let direct = "(init script run directly: PID 1 is no init system)";

    // Debian's policy-rc.d in containers keeps it from starting at install; elsewhere it runs.
    converge(&svc, "stop");
    wait_running(false);
    assert_eq!(why_run(&svc, "start"), [format!("started {direct}")]);
    assert!(memcached_pids().is_empty(), "why-run started it");
    assert_eq!(converge(&svc, "start"), [format!("started {direct}")]);
    let first = wait_running(true);
    assert_eq!(
        converge(&svc, "start"),
        Vec::<String>::new(),
        "second start"
    );

    assert_eq!(converge(&svc, "restart"), [format!("restarted {direct}")]);
    let second = wait_running(true);
    assert_ne!(first, second, "restart made a new process");
    // memcached's script has no reload: force-reload restarts it.
    assert_eq!(converge(&svc, "reload"), [format!("reloaded {direct}")]);
    wait_running(true);

    assert_eq!(start_links("memcached"), 4, "the package enables it");
    let links = "(rc links only: PID 1 is no init system to read them)";
    assert_eq!(converge(&svc, "disable"), [format!("disabled {links}")]);
    assert_eq!(start_links("memcached"), 0);
    assert_eq!(converge(&svc, "disable"), Vec::<String>::new());
    assert_eq!(converge(&svc, "enable"), [format!("enabled {links}")]);
    assert_eq!(start_links("memcached"), 4);
    assert_eq!(converge(&svc, "enable"), Vec::<String>::new());

    assert_eq!(converge(&svc, "stop"), [format!("stopped {direct}")]);
    wait_running(false);
    assert_eq!(converge(&svc, "stop"), Vec::<String>::new(), "second stop");
    assert_eq!(
        converge(&svc, "reload"),
        Vec::<String>::new(),
        "nothing to reload"
    );

    let missing = resource("service", json!({"service_name": "cm-no-such-service"}));
    let err = converge_cx(&missing, "start", false).0.unwrap_err();
    assert!(
        err.contains("no init script /etc/init.d/cm-no-such-service"),
        "{err}"
    );
    // Why-run cannot know whether an earlier package resource would ship it.
    assert_eq!(
        why_run(&missing, "start"),
        [
            "start (no init script /etc/init.d/cm-no-such-service yet: an earlier resource may install it)"
        ]
    );
}

/// `systemctl show -p NAME --value memcached`.
fn unit_property(name: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", name, "--value", "memcached"])
        .output()
        .expect("systemctl runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The systemd half, for a machine whose PID 1 is systemd (the systemd node
/// container: tests/cluster/providers.sh runs this binary there).
#[test]
#[ignore = "needs systemd as PID 1: tests/cluster/providers.sh runs it in a systemd node container"]
fn service_drives_a_real_unit_through_systemd() {
    if !support::require_root("installing and running a daemon") {
        return;
    }
    if !require_init(Init::Systemd) {
        return;
    }
    let was_installed = Path::new("/lib/systemd/system/memcached.service").exists();
    let commands = [PURGE_MEMCACHED];
    let _cleanup = Cleanup::new(&commands[..if was_installed { 0 } else { 1 }]);
    let pkg = resource(
        "package",
        json!({"package_name": "memcached", "lock_timeout": 600}),
    );
    converge_cx(&pkg, "install", false)
        .0
        .expect("memcached installs");
    let svc = resource("service", json!({"service_name": "memcached"}));

    converge(&svc, "stop");
    assert_eq!(unit_property("ActiveState"), "inactive");
    assert_eq!(why_run(&svc, "start"), ["started"]);
    assert_eq!(
        unit_property("ActiveState"),
        "inactive",
        "why-run started it"
    );
    assert_eq!(converge(&svc, "start"), ["started"]);
    assert_eq!(unit_property("ActiveState"), "active");
    let first = unit_property("MainPID");
    assert_eq!(
        converge(&svc, "start"),
        Vec::<String>::new(),
        "second start"
    );

    assert_eq!(converge(&svc, "restart"), ["restarted"]);
    assert_ne!(
        unit_property("MainPID"),
        first,
        "restart made a new process"
    );

    assert_eq!(converge(&svc, "disable"), ["disabled"]);
    assert_eq!(unit_property("UnitFileState"), "disabled");
    assert_eq!(converge(&svc, "disable"), Vec::<String>::new());
    assert_eq!(converge(&svc, "enable"), ["enabled"]);
    assert_eq!(unit_property("UnitFileState"), "enabled");

    assert_eq!(converge(&svc, "stop"), ["stopped"]);
    assert_eq!(unit_property("ActiveState"), "inactive");
    assert_eq!(converge(&svc, "stop"), Vec::<String>::new(), "second stop");

    let missing = resource("service", json!({"service_name": "cm-no-such-service"}));
    let err = converge_cx(&missing, "start", false).0.unwrap_err();
    assert!(err.contains("no systemd unit cm-no-such-service"), "{err}");
}

/// An init script whose daemon dies at once, as one with a bad
/// configuration does: `start` exits 0, `status` then says it is not running.
/// The status reads /proc, since PID 1 here may leave the dead daemon a zombie.
fn dying_init_script(name: &str) -> String {
    format!(
        r#"#!/bin/sh
### BEGIN INIT INFO
# Provides:          {name}
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
### END INIT INFO
PIDFILE=/run/{name}.pid
case "$1" in
  start)
    sh -c 'echo "{name}: cannot read its configuration" >&2; exit 1' &
    echo $! > $PIDFILE
    ;;
  stop) rm -f $PIDFILE ;;
  restart|force-reload) "$0" stop; "$0" start ;;
  status)
    pid=$(cat $PIDFILE 2>/dev/null)
    state=$([ -n "$pid" ] && cut -d' ' -f3 /proc/$pid/stat 2>/dev/null)
    if [ -n "$state" ] && [ "$state" != Z ]; then echo "{name} is running"; exit 0; fi
    echo "{name} is not running"
    exit 3
    ;;
  *) echo "Usage: $0 {{start|stop|restart|status}}" >&2; exit 3 ;;
esac
"#
    )
}

#[test]
fn init_script_service_that_dies_at_start_fails_with_its_status_on_every_run() {
    if !support::require_root("writing /etc/init.d") {
        return;
    }
    if !require_init(Init::Direct) {
        return;
    }
    let name = format!("cm-test-dies-{}", std::process::id());
    let script = format!("/etc/init.d/{name}");
    let pidfile = format!("/run/{name}.pid");
    let _cleanup = Cleanup::new(&[&["rm", "-f", &script, &pidfile]]);
    support::write(Path::new(&script), &dying_init_script(&name));
    assert!(sh("chmod", &["755", &script]));
    let svc = resource("service", json!({"service_name": name}));

    for run in ["first", "second"] {
        let err = converge_cx(&svc, "start", false).0.unwrap_err();
        assert!(
            err.starts_with(&format!("{name} is not running after start (")),
            "{run} run: {err}"
        );
        assert!(
            err.contains(&format!("status: exit 3: {name} is not running")),
            "{run} run: {err}"
        );
    }
    let err = converge_cx(&svc, "restart", false).0.unwrap_err();
    assert!(err.contains("is not running after restart"), "{err}");
    // Why-run starts nothing, so it has nothing to check.
    assert_eq!(
        why_run(&svc, "start"),
        ["started (init script run directly: PID 1 is no init system)"]
    );
}

/// The systemd half: a unit whose process exits at once (`Type=simple`, so
/// `systemctl start` itself succeeds). Runs in the systemd node container.
#[test]
#[ignore = "needs systemd as PID 1: tests/cluster/providers.sh runs it in a systemd node container"]
fn systemd_unit_that_dies_at_start_fails_with_its_state_on_every_run() {
    if !support::require_root("writing /etc/systemd/system") {
        return;
    }
    if !require_init(Init::Systemd) {
        return;
    }
    let name = format!("cm-test-dies-{}", std::process::id());
    let unit = format!("/etc/systemd/system/{name}.service");
    let _cleanup = Cleanup::new(&[
        &["systemctl", "stop", &name],
        &["rm", "-f", &unit],
        &["systemctl", "daemon-reload"],
        &["systemctl", "reset-failed", &name],
    ]);
    support::write(
        Path::new(&unit),
        "[Service]\nExecStart=/bin/sh -c 'echo cannot read its configuration >&2; exit 3'\n",
    );
    assert!(sh("systemctl", &["daemon-reload"]));
    let svc = resource("service", json!({"service_name": name}));

    for run in ["first", "second"] {
        let err = converge_cx(&svc, "start", false).0.unwrap_err();
        assert!(
            err.starts_with(&format!("{name} is not running after start (")),
            "{run} run: {err}"
        );
        assert!(
            err.contains("Result=exit-code ExecMainStatus=3"),
            "{run} run: {err}"
        );
    }
}
