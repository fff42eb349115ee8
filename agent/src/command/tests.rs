use super::*;

#[test]
fn captures_output_and_exit_code() {
    let f = Cmd::shell("echo out; echo err >&2; exit 3").run().unwrap();
    assert_eq!(
        (f.code, f.stdout.as_str(), f.stderr.as_str()),
        (Some(3), "out\n", "err\n")
    );
}

/// Whether `pid` is a live (not zombie) process named `comm`.
fn alive(pid: &str, comm: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit(") ")
            .next()
            .and_then(|rest| rest.chars().next());
        stat.contains(&format!("({comm})")) && state != Some('Z')
    })
}

/// The pids a command printed, one a line.
fn pids(stdout: &str) -> Vec<String> {
    stdout.lines().map(str::to_string).collect()
}

#[test]
fn hanging_command_is_killed_at_its_timeout_with_its_children() {
    let f = Cmd::shell("sleep 300 & echo $!; echo $$; sleep 300; echo never")
        .timeout(Duration::from_millis(300))
        .run()
        .unwrap();
    assert!(f.timed_out);
    assert!(!f.stdout.contains("never"));
    assert!(matches!(f.clone().ok(), Err(CommandError::TimedOut { .. })));
    assert!(f.error().to_string().contains("timeout"));
    // The shell and the child it left in the background: both are killed
    // (a killed process is gone once it is scheduled, or a zombie).
    let group = pids(&f.stdout);
    assert_eq!(group.len(), 2, "{:?}", f.stdout);
    let deadline = Instant::now() + Duration::from_secs(60);
    for (pid, comm) in group.iter().zip(["sleep", "sh"]) {
        while alive(pid, comm) {
            assert!(
                Instant::now() < deadline,
                "{comm} (pid {pid}) outlived the timeout"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn background_child_holding_the_pipes_does_not_hang_the_run() {
    let f = Cmd::shell("sleep 600 & echo $!")
        .timeout(Duration::from_secs(1200))
        .run()
        .unwrap();
    assert!(f.success() && !f.timed_out);
    let child = pids(&f.stdout);
    assert_eq!(child.len(), 1, "{:?}", f.stdout);
    // The run is over while the child that holds its pipes still runs.
    let still_running = alive(&child[0], "sleep");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child[0].parse().unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(still_running, "the run waited for the background child");
}

#[test]
fn missing_program_is_a_spawn_error_naming_it() {
    let e = Cmd::new("/nonexistent/prog", &[]).run().unwrap_err();
    assert!(matches!(e, CommandError::Spawn { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/prog"), "{e}");
}

#[test]
fn how_a_command_ended_is_a_typed_error_with_its_output_tail() {
    let exited = Cmd::shell("echo why >&2; exit 4").run().unwrap();
    let e = exited.ok().unwrap_err();
    assert!(
        matches!(&e, CommandError::Exited { code: 4, tail } if tail == "why"),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "exit 4: why");

    let killed = Cmd::shell("kill -9 $$").run().unwrap();
    assert_eq!(killed.signal, Some(9));
    assert!(matches!(
        killed.error(),
        CommandError::Killed { signal: 9, .. }
    ));
    assert_eq!(killed.error().to_string(), "killed by signal 9");

    assert!(Cmd::shell("true").run().unwrap().ok().is_ok());
}

#[test]
fn status_says_how_it_ended_without_what_it_printed() {
    let e = Cmd::shell("echo the-secret >&2; exit 4")
        .run()
        .unwrap()
        .error();
    assert_eq!(e.status(), "exit 4");
    let e = Cmd::shell("echo the-secret; sleep 30")
        .timeout(Duration::from_millis(200))
        .run()
        .unwrap()
        .error();
    assert_eq!(e.status(), "killed after its 0s timeout");
    assert!(e.to_string().contains("the-secret"), "{e}");
}

#[test]
fn apt_and_dpkg_are_left_to_finish_by_file_name() {
    for p in [
        "apt-get",
        "/usr/bin/apt-get",
        "dpkg",
        "/tmp/x/apt",
        "aptitude",
    ] {
        assert!(Cmd::new(p, &[]).left_to_finish(), "{p}");
    }
    for p in ["dpkg-query", "/bin/sh", "apt-cache", "/usr/bin/dpkg.sh"] {
        assert!(!Cmd::new(p, &[]).left_to_finish(), "{p}");
    }
}

#[test]
fn the_watcher_of_a_finished_command_is_reaped() {
    let me = std::process::id();
    for _ in 0..3 {
        assert!(Cmd::new("true", &[]).run().unwrap().success());
    }
    // No watcher is left, alive or zombie: it is a fork of this test binary,
    // so it has this process's name, unlike the commands (they exec).
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let left: Vec<String> = std::fs::read_dir(format!("/proc/{me}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter(|stat| stat.contains(&format!("({})", comm.trim())))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

// Reads the process-wide idle watcher: nextest runs each test in a process
// of its own, as the README's test command does.
#[test]
fn commands_one_after_another_share_one_watcher_until_the_run_ends() {
    let idle = || IDLE_WATCHER.lock().unwrap().as_ref().map(|w| w.pid());
    let dir = tempfile::tempdir().unwrap();
    let run = crate::lock::RunLock::acquire(&dir.path().join("lock"), Duration::ZERO)
        .unwrap()
        .shared_with_commands();
    Cmd::shell("true").run().unwrap();
    let first = idle().expect("an idle watcher after a command");
    Cmd::shell("exit 3").run().unwrap();
    assert_eq!(idle(), Some(first), "the second command forked another");
    // A watcher that may have heard half a command is retired, never reused.
    let _ = Cmd::new("/no/such/program", &[]).run().unwrap_err();
    assert_eq!(idle(), None);
    assert!(!std::path::Path::new(&format!("/proc/{first}")).exists());
    Cmd::shell("true").run().unwrap();
    let second = idle().expect("a new idle watcher");
    assert_ne!(second, first);
    drop(run);
    assert_eq!(idle(), None, "the run's end retires its watcher");
    // Reaped, not a zombie: no such process at all.
    assert!(!std::path::Path::new(&format!("/proc/{second}")).exists());
}
