//! What becomes of a run's commands when the agent is killed: no orphan is
//! left, the next run waits until they are gone, and apt and dpkg are left
//! to finish. Real `cm-agent apply` processes are killed with SIGKILL; for
//! commands no recipe can name (apt-get), a helper process of this test
//! binary runs them and is killed instead.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::Sandbox;

/// A hang guard, not a timing assertion: the events awaited come within
/// seconds, and a broken build shows as a failure instead of a stuck test.
const PATIENCE: Duration = Duration::from_secs(90);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pid a command wrote to `path`, once it has written it whole.
fn pid_in(path: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.strip_suffix('\n')?.trim().parse().ok()
}

fn await_pid(path: &Path) -> i32 {
    let mut pid = None;
    wait_for(&format!("{} to hold a pid", path.display()), || {
        pid = pid_in(path);
        pid.is_some()
    });
    pid.unwrap()
}

/// No such process, or a zombie (PID 1 here may never reap orphans).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// SIGKILLs what a test started, also when it fails.
struct KillOnDrop(Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
    }
}

fn apply(s: &Sandbox, run_list: &str, lock_wait: u64) -> Command {
    let opts = s.run_opts(run_list, false);
    let mut c = Command::new(env!("CARGO_BIN_EXE_cm-agent"));
    c.arg("apply")
        .arg("--cookbooks")
        .arg(&opts.cookbooks)
        .arg("--run-list")
        .arg(run_list)
        .arg("--attributes")
        .arg(opts.attributes.unwrap())
        .arg("--backup-dir")
        .arg(&opts.backup_dir)
        .arg("--lock-file")
        .arg(s.dir.path().join("run.lock"))
        .arg("--lock-wait")
        .arg(lock_wait.to_string())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

/// SIGKILL the agent and reap it.
fn kill_agent(mut agent: Child) {
    kill(Pid::from_raw(agent.id() as i32), Signal::SIGKILL).unwrap();
    agent.wait().unwrap();
}

#[test]
fn killed_agent_leaves_no_orphan_of_a_running_command() {
    let s = Sandbox::new();
    s.cookbook(
        "busy",
        &[(
            "recipes/default.yaml",
            // Two commands first: the third's watcher is the run's, reused.
            "- execute: first\n  command: \"true\"\n  not_if: \"false\"\n- execute: shell-with-a-grandchild\n  command: \"sleep 300 & echo $! > {{attrs.root}}/grandchild.pid; echo $$ > {{attrs.root}}/shell.pid; wait\"\n",
        )],
    );
    let agent = apply(&s, "busy", 0).stdout(Stdio::null()).spawn().unwrap();
    let shell = await_pid(&s.path("shell.pid"));
    let grandchild = await_pid(&s.path("grandchild.pid"));
    let _cleanup = KillOnDrop(vec![shell, grandchild]);
    assert!(!gone(shell) && !gone(grandchild));

    kill_agent(agent);
    wait_for(
        "the command's shell and its grandchild to be killed",
        || gone(shell) && gone(grandchild),
    );
}

#[test]
fn next_run_waits_until_the_killed_runs_commands_are_gone() {
    let s = Sandbox::new();
    // It ignores SIGTERM, so only the SIGKILL that follows ends it.
    s.cookbook(
        "stubborn",
        &[(
            "recipes/default.yaml",
            "- execute: first\n  command: \"true\"\n- execute: ignores-sigterm\n  command: \"trap '' TERM; echo $$ > {{attrs.root}}/stubborn.pid; while :; do sleep 1; done\"\n",
        )],
    );
    // The next run fails if the stubborn command still runs beside it.
    s.cookbook(
        "after",
        &[(
            "recipes/default.yaml",
            "- execute: leftover-is-gone\n  command: \"state=$(cut -d' ' -f3 /proc/$(cat {{attrs.root}}/stubborn.pid)/stat 2>/dev/null); test -z \\\"$state\\\" -o \\\"$state\\\" = Z\"\n",
        )],
    );
    let agent = apply(&s, "stubborn", 0)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stubborn = await_pid(&s.path("stubborn.pid"));
    let _cleanup = KillOnDrop(vec![stubborn]);

    kill_agent(agent);
    let next = apply(&s, "after", 120).output().unwrap();
    assert!(
        next.status.success(),
        "the next run overlapped the leftover command:\n{}",
        String::from_utf8_lossy(&next.stdout)
    );
    assert!(gone(stubborn));
}

/// Not a test: the "agent" of the test below. Runs each program named in
/// CM_TEST_PROGRAMS (colon-separated) on its own thread, until killed.
#[test]
#[ignore = "helper process of apt_and_dpkg_are_left_to_finish_when_the_agent_dies"]
fn helper_runs_commands_until_killed() {
    let Ok(programs) = std::env::var("CM_TEST_PROGRAMS") else {
        return;
    };
    let threads: Vec<_> = programs
        .split(':')
        .map(|p| {
            let cmd = cm_agent::command::Cmd::new(p, &[]);
            std::thread::spawn(move || cmd.run())
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn apt_and_dpkg_are_left_to_finish_when_the_agent_dies() {
    let dir = tempfile::tempdir().unwrap();
    // Stand-ins: the exemption goes by file name, wherever the program is.
    let script = |name: &str| -> PathBuf {
        let path = dir.path().join(name);
        let pid_file = dir.path().join(format!("{name}.pid"));
        support::write(
            &path,
            &format!(
                "#!/bin/sh\necho $$ > {}\nexec sleep 300\n",
                pid_file.display()
            ),
        );
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    };
    let (apt, dpkg, other) = (script("apt-get"), script("dpkg"), script("other-tool"));
    let programs = [&apt, &dpkg, &other].map(|p| p.display().to_string());
    let helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_runs_commands_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env("CM_TEST_PROGRAMS", programs.join(":"))
        .stdout(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pids =
        ["apt-get", "dpkg", "other-tool"].map(|n| await_pid(&dir.path().join(format!("{n}.pid"))));
    let _cleanup = KillOnDrop(pids.to_vec());

    kill_agent(helper);
    wait_for("the watcher to kill other-tool", || gone(pids[2]));
    // other-tool's watcher has acted: apt-get and dpkg had none.
    assert!(!gone(pids[0]), "apt-get was killed");
    assert!(!gone(pids[1]), "dpkg was killed");
}
