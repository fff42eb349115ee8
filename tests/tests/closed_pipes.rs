//! `cmctl ... | head` and `cm-agent ... | head`: a reader that goes away
//! early never makes a binary panic. cmctl ends quietly, as any Unix filter
//! does; the agent finishes its converge, since stopping half way through a
//! run because nobody reads its log would be worse than not printing.

use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};

use cm_e2e::{TestServer, bin, repo};

/// Run `cmd` with stdout on a pipe whose read end is already closed, so the
/// first write fails whatever the pipe's buffer size.
fn with_closed_stdout(mut cmd: Command) -> Output {
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
    drop(read);
    cmd.stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

fn assert_quiet(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{what} complained about the closed pipe: {stderr}"
    );
}

#[test]
fn cmctl_ends_quietly_when_its_reader_goes_away() {
    let mut c = Command::new(bin("cmctl"));
    c.args(["completions", "bash"]);
    let out = with_closed_stdout(c);
    assert_quiet(&out, "cmctl completions");
    assert_eq!(
        out.status.signal(),
        Some(nix::libc::SIGPIPE),
        "cmctl should end by SIGPIPE like any filter: {:?}",
        out.status
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cmctl_tables_end_quietly_when_their_reader_goes_away() {
    let s = TestServer::start().await;
    let mut c = Command::new(bin("cmctl"));
    c.arg("--credential")
        .arg(&s.credential)
        .args(["token", "list"]);
    let out = tokio::task::spawn_blocking(move || with_closed_stdout(c))
        .await
        .expect("cmctl finishes");
    assert_quiet(&out, "cmctl token list");
    assert_eq!(out.status.signal(), Some(nix::libc::SIGPIPE));
}

#[test]
fn the_agent_finishes_its_run_when_its_reader_goes_away() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("out");
    let attrs = dir.path().join("attrs.yaml");
    std::fs::write(&attrs, format!("root: {}\n", dir.path().display())).expect("attrs");
    let cookbooks = dir.path().join("cookbooks");
    std::fs::create_dir_all(cookbooks.join("hello/recipes")).expect("cookbook dir");
    std::fs::write(
        cookbooks.join("hello/metadata.yaml"),
        "name: hello\nversion: 1.0.0\n",
    )
    .expect("metadata");
    std::fs::write(
        cookbooks.join("hello/recipes/default.yaml"),
        "- file: \"{{attrs.root}}/out\"\n  content: \"hello\\n\"\n",
    )
    .expect("recipe");
    let mut c = Command::new(bin("cm-agent"));
    c.arg("apply")
        .arg("--cookbooks")
        .arg(&cookbooks)
        .args(["--run-list", "hello", "--attributes"])
        .arg(&attrs)
        .arg("--backup-dir")
        .arg(dir.path().join("backup"))
        .arg("--lock-file")
        .arg(dir.path().join("lock"))
        .current_dir(repo());
    let out = with_closed_stdout(c);
    assert_quiet(&out, "cm-agent apply");
    assert!(
        out.status.success(),
        "the run's own status: {:?}",
        out.status
    );
    assert_eq!(
        std::fs::read_to_string(&target).expect("the run wrote its file"),
        "hello\n"
    );
}

/// With stdout and stderr both gone, a failing command still ends with its
/// own exit code, not a panic's 101.
#[test]
fn the_agent_and_the_server_keep_their_exit_codes_when_stderr_is_gone() {
    for (name, args) in [
        (
            "cm-agent",
            vec!["run", "--once", "--config", "/nonexistent/agent.yaml"],
        ),
        ("cm-server", vec!["--data-dir", "/proc/cm-cannot-be-here"]),
    ] {
        let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
        drop(read);
        let status = Command::new(bin(name))
            .args(&args)
            .stdout(Stdio::from(write.try_clone().expect("dup")))
            .stderr(Stdio::from(write))
            .status()
            .expect("the binary runs");
        assert!(
            matches!(status.code(), Some(1..=5)),
            "{name} {args:?}: {status:?}"
        );
    }
}
