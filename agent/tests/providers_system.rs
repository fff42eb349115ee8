//! The user, group, apt_repository and service providers against this
//! machine's real tools and files. They need root: CI runs as root, and
//! elsewhere each test says why it did nothing (`support::require`).
//!
//! The service tests need a given init system as PID 1. The machine the
//! tests run on has none (its PID 1 is neither systemd nor init), so the
//! init-script tests run here; the systemd tests are `#[ignore]`d here and
//! run in a systemd node container by tests/cluster/providers.sh, which
//! fails unless every test of this file ran in one node kind or another.
//! Every test uses names of its own and cleans up after itself, also when
//! it fails.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cm_agent::engine::CompiledResource;
use cm_agent::resources::{Cx, Init, Outcome};
use serde_json::{Value, json};

/// `init` is PID 1 here; otherwise the test says it did nothing.
fn require_init(init: Init) -> bool {
    let found = Init::detect();
    support::require(
        found == init,
        &format!("written for {init:?} as the init system, found {found:?}"),
    )
}

fn resource(kind: &str, properties: Value) -> CompiledResource {
    CompiledResource {
        kind: cm_model::resources::lookup(kind).unwrap(),
        name: "test".into(),
        properties: properties.as_object().unwrap().clone(),
        content: None,
        actions: Vec::new(),
        only_if: None,
        not_if: None,
        creates: None,
        notifies: Vec::new(),
        ignore_failure: false,
        sensitive: false,
        holds_secret: false,
        origin: "providers_system.rs".into(),
    }
}

/// Converge `r` to `action` with a fresh run context, which is returned too.
fn converge_cx(r: &CompiledResource, action: &str, why_run: bool) -> (Result<Outcome, String>, Cx) {
    let backup = std::env::temp_dir().join(format!("cm-test-backup-{}", std::process::id()));
    let mut cx = Cx::new(why_run, backup);
    let provider = cm_agent::resources::lookup(r.kind.name).unwrap();
    let mut p = (provider.build)(r).unwrap_or_else(|e| panic!("{}: {}", e.field, e.message));
    (p.converge(action, &mut cx), cx)
}

fn converge(r: &CompiledResource, action: &str) -> Vec<String> {
    converge_cx(r, action, false).0.unwrap().changes
}

fn why_run(r: &CompiledResource, action: &str) -> Vec<String> {
    converge_cx(r, action, true).0.unwrap().changes
}

/// Run a command by hand (drift, setup, cleanup); its failure is returned, not fatal.
fn sh(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs its commands when dropped, so a failing test still cleans up.
struct Cleanup(Vec<Vec<String>>);

impl Cleanup {
    /// Each command is a program and its arguments.
    fn new(commands: &[&[&str]]) -> Cleanup {
        Cleanup(
            commands
                .iter()
                .map(|c| c.iter().map(|s| s.to_string()).collect())
                .collect(),
        )
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for argv in &self.0 {
            let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
            sh(&argv[0], &args);
        }
    }
}

fn user(name: &str) -> Option<nix::unistd::User> {
    nix::unistd::User::from_name(name).unwrap()
}

fn group_line(name: &str) -> Option<(u32, Vec<String>)> {
    let text = std::fs::read_to_string("/etc/group").unwrap();
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() == 4 && f[0] == name).then(|| {
            let members = f[3].split(',').filter(|m| !m.is_empty()).map(String::from);
            (f[2].parse().unwrap(), members.collect())
        })
    })
}

/// A gid no group has, so the test can ask for one.
fn free_gid(from: u32) -> u32 {
    let text = std::fs::read_to_string("/etc/group").unwrap();
    (from..)
        .find(|g| !text.contains(&format!(":{g}:")))
        .unwrap()
}

#[test]
fn user_is_created_then_unchanged_then_repaired_then_removed() {
    if !support::require_root("managing accounts") {
        return;
    }
    let name = format!("cmtu{}", std::process::id());
    let extra = format!("cmtx{}", std::process::id());
    let home = format!("/home/{name}");
    let _cleanup = Cleanup::new(&[
        &["userdel", "-r", &name],
        &["groupdel", &name],
        &["groupdel", &extra],
    ]);
    assert!(sh("groupadd", &[&extra]));
    let spec = json!({"username": name, "shell": "/bin/sh", "comment": "cm test",
        "home": home, "manage_home": true, "groups": [extra]});
    let r = resource("user", spec.clone());

    assert_eq!(why_run(&r, "create"), ["created"]);
    assert!(user(&name).is_none(), "why-run created the user");

    assert_eq!(converge(&r, "create"), ["created"]);
    let u = user(&name).expect("user exists");
    assert_eq!(u.shell, PathBuf::from("/bin/sh"));
    assert_eq!(u.gecos.to_str().unwrap(), "cm test");
    assert!(Path::new(&home).is_dir(), "manage_home made the home");
    // Without `group`, useradd gave the user a group of its own name.
    assert_eq!(group_line(&name).map(|g| g.0), Some(u.gid.as_raw()));
    assert!(group_line(&extra).unwrap().1.contains(&name));

    assert_eq!(converge(&r, "create"), Vec::<String>::new(), "second run");

    // Drift by hand: a shell and a supplementary group.
    assert!(sh("usermod", &["-s", "/bin/bash", &name]));
    assert!(sh("gpasswd", &["-d", &name, &extra]));
    assert_eq!(
        converge(&r, "create"),
        [
            "shell \"/bin/bash\" -> \"/bin/sh\"".to_string(),
            format!("added to groups {extra}")
        ]
    );
    assert_eq!(user(&name).unwrap().shell, PathBuf::from("/bin/sh"));
    assert!(group_line(&extra).unwrap().1.contains(&name));

    // A changed spec changes only what differs.
    let mut changed = spec.clone();
    changed["comment"] = json!("cm test, changed");
    let r2 = resource("user", changed);
    assert_eq!(
        converge(&r2, "create"),
        ["comment \"cm test\" -> \"cm test, changed\""]
    );
    assert_eq!(converge(&r2, "create"), Vec::<String>::new());

    assert_eq!(why_run(&r, "remove"), ["removed with its home directory"]);
    assert!(user(&name).is_some());
    assert_eq!(converge(&r, "remove"), ["removed with its home directory"]);
    assert!(user(&name).is_none() && !Path::new(&home).exists());
    assert_eq!(converge(&r, "remove"), Vec::<String>::new());
}

#[test]
fn group_members_are_appended_or_made_exact_and_drift_is_repaired() {
    if !support::require_root("managing groups") {
        return;
    }
    let pid = std::process::id();
    let (name, a, b) = (
        format!("cmtg{pid}"),
        format!("cmta{pid}"),
        format!("cmtb{pid}"),
    );
    let _cleanup = Cleanup::new(&[&["groupdel", &name], &["userdel", &a], &["userdel", &b]]);
    for m in [&a, &b] {
        assert!(sh("useradd", &["-M", "-U", m]), "useradd {m}");
    }
    let gid = free_gid(23000);
    let r = resource(
        "group",
        json!({"group_name": name, "gid": gid, "members": [a]}),
    );

    assert_eq!(
        why_run(&r, "create"),
        [format!("created with gid {gid}"), format!("members {a}")]
    );
    assert!(group_line(&name).is_none(), "why-run created the group");
    converge(&r, "create");
    assert_eq!(group_line(&name), Some((gid, vec![a.clone()])));
    assert_eq!(converge(&r, "create"), Vec::<String>::new(), "second run");

    let append = resource("group", json!({"group_name": name, "members": [b]}));
    assert_eq!(converge(&append, "create"), [format!("added members {b}")]);
    assert_eq!(group_line(&name).unwrap().1, [a.clone(), b.clone()]);

    let exact = resource(
        "group",
        json!({"group_name": name, "members": [b], "append": false}),
    );
    assert_eq!(converge(&exact, "create"), [format!("removed members {a}")]);
    assert_eq!(group_line(&name).unwrap().1, std::slice::from_ref(&b));
    assert!(sh("gpasswd", &["-a", &a, &name]), "drift by hand");
    assert_eq!(converge(&exact, "create"), [format!("removed members {a}")]);
    assert_eq!(converge(&exact, "create"), Vec::<String>::new());

    let new_gid = free_gid(gid + 1);
    let moved = resource("group", json!({"group_name": name, "gid": new_gid}));
    assert_eq!(
        converge(&moved, "create"),
        [format!("gid {gid} -> {new_gid}")]
    );
    assert_eq!(group_line(&name).unwrap().0, new_gid);

    assert_eq!(converge(&r, "remove"), ["removed"]);
    assert!(group_line(&name).is_none());
    assert_eq!(converge(&r, "remove"), Vec::<String>::new());
}

const KEY: &str =
    "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZtest\n-----END PGP PUBLIC KEY BLOCK-----\n";

fn repo_paths(name: &str) -> (PathBuf, PathBuf) {
    (
        PathBuf::from(format!("/etc/apt/keyrings/{name}.asc")),
        PathBuf::from(format!("/etc/apt/sources.list.d/{name}.sources")),
    )
}

fn repo_cleanup(name: &str) -> Cleanup {
    let (key, sources) = repo_paths(name);
    Cleanup::new(&[&[
        "rm",
        "-f",
        &sources.to_string_lossy(),
        &key.to_string_lossy(),
    ]])
}

#[test]
fn apt_repository_writes_a_source_apt_reads_then_removes_it() {
    if !support::require_root("writing /etc/apt") {
        return;
    }
    let name = format!("cm-test-{}", std::process::id());
    let _cleanup = repo_cleanup(&name);
    let (key, sources) = repo_paths(&name);
    // Loopback's discard port: an apt-get update running meanwhile only warns.
    let r = resource(
        "apt_repository",
        json!({"repo_name": name, "uris": ["http://127.0.0.1:9/debian"],
            "suites": ["cmtest"], "components": ["main"], "key": KEY}),
    );
    let (out, cx) = converge_cx(&r, "add", true);
    assert!(
        out.unwrap()
            .changes
            .contains(&"sources: created".to_string())
    );
    assert!(cx.apt_sources_changed && !sources.exists() && !key.exists());

    let (out, cx) = converge_cx(&r, "add", false);
    let out = out.unwrap();
    assert!(
        out.changes.contains(&"key: created".to_string()),
        "{:?}",
        out.changes
    );
    assert!(
        out.diff
            .unwrap()
            .contains(&format!("+Signed-By: {}", key.display()))
    );
    assert!(
        cx.apt_sources_changed,
        "the next install refreshes the lists"
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap(), KEY);
    for p in [&key, &sources] {
        let m = std::fs::metadata(p).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid()), (0o644, 0), "{}", p.display());
    }
    // apt itself reads the stanza (offline: no lists are fetched).
    let targets = Command::new("apt-get")
        .args(["indextargets", "--no-release-info"])
        .output()
        .unwrap();
    let targets = String::from_utf8_lossy(&targets.stdout);
    assert!(
        targets.contains(&format!("Sourcesentry: {}:", sources.display())),
        "apt did not take {}",
        sources.display()
    );

    let (out, cx) = converge_cx(&r, "add", false);
    assert_eq!(out.unwrap().changes, Vec::<String>::new(), "second run");
    assert!(!cx.apt_sources_changed);

    std::fs::write(&sources, "Types: deb\nURIs: http://127.0.0.1:9/other\n").unwrap();
    assert_eq!(converge(&r, "add"), ["sources: content"]);

    let (out, cx) = converge_cx(&r, "remove", false);
    assert_eq!(out.unwrap().changes.len(), 2);
    assert!(cx.apt_sources_changed && !key.exists() && !sources.exists());
    assert_eq!(converge(&r, "remove"), Vec::<String>::new());
}

#[test]
fn apt_repository_key_source_comes_from_the_cookbook_files() {
    if !support::require_root("writing /etc/apt") {
        return;
    }
    let name = format!("cm-test-ks-{}", std::process::id());
    let _cleanup = repo_cleanup(&name);
    let s = support::Sandbox::new();
    let recipe = |action: &str| {
        format!(
            "- apt_repository: {name}\n  uris: [\"http://127.0.0.1:9/debian\"]\n  suites: [cmtest]\n  key_source: repo.asc\n  action: {action}\n"
        )
    };
    s.cookbook(
        "repo",
        &[
            ("files/repo.asc", KEY),
            ("recipes/default.yaml", &recipe("add")),
            ("recipes/remove.yaml", &recipe("remove")),
        ],
    );
    support::ok(&s.apply("repo"));
    let (key, sources) = repo_paths(&name);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), KEY);
    assert!(
        !std::fs::read_to_string(&sources)
            .unwrap()
            .contains("Components")
    );
    assert_eq!(support::ok(&s.apply("repo")).resources_changed, 0);
    support::ok(&s.apply("repo::remove"));
    assert!(!key.exists() && !sources.exists());
}

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
