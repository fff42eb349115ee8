use super::*;

#[test]
fn captures_output_and_exit_code() {
    let f = Cmd::shell("echo out; echo err >&2; exit 3").run().unwrap();
    assert_eq!(
        (f.code, f.stdout.as_str(), f.stderr.as_str()),
        (Some(3), "out\n", "err\n")
    );
}

#[test]
fn hanging_command_is_killed_at_its_timeout_with_its_children() {
    let f = Cmd::shell("sleep 30 & sleep 30; echo never")
        .timeout(Duration::from_millis(300))
        .run()
        .unwrap();
    assert!(f.timed_out);
    assert!(!f.stdout.contains("never"));
    assert!(matches!(f.clone().ok(), Err(CommandError::TimedOut { .. })));
    assert!(f.error().to_string().contains("timeout"));
}

#[test]
fn background_child_holding_the_pipes_does_not_hang_the_run() {
    let start = Instant::now();
    let f = Cmd::shell("sleep 8 & echo started")
        .timeout(Duration::from_secs(20))
        .run()
        .unwrap();
    assert!(f.success() && !f.timed_out);
    assert_eq!(f.stdout, "started\n");
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
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
