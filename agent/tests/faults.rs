//! Faults during a run: a full disk, a signal, a cron job in the real /etc/cron.d.

mod support;

use std::process::Command as Process;
use std::time::{Duration, Instant};

use support::{Sandbox, ok};

/// A tmpfs of 64 KiB mounted for the test, unmounted on drop.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    /// Mounted, or why not (mount's own words).
    fn mount(at: std::path::PathBuf) -> Result<TinyDisk, String> {
        std::fs::create_dir_all(&at).unwrap();
        let out = Process::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(TinyDisk(at))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg(&self.0).status();
    }
}

#[test]
fn disk_full_during_a_write_leaves_the_old_file_intact() {
    if !support::require_root("mounting a small tmpfs") {
        return;
    }
    let s = Sandbox::new();
    let disk = match TinyDisk::mount(s.root()) {
        Ok(disk) => disk,
        Err(why) => {
            support::require(false, &format!("a tmpfs mount ({why})"));
            return;
        }
    };
    std::fs::write(disk.0.join("app.conf"), "old content\n").unwrap();
    s.cookbook(
        "big",
        &[(
            "recipes/default.yaml",
            "- file: \"{{attrs.root}}/app.conf\"\n  content: \"{{attrs.big}}\"\n  backup: 0\n",
        )],
    );
    s.attributes(&format!("big: \"{}\"\n", "x".repeat(200_000)));
    let r = s.apply("big");
    assert!(!r.succeeded());
    let e = r.resources[0].error.as_deref().unwrap();
    assert!(e.contains("No space left"), "{e}");
    assert_eq!(
        std::fs::read_to_string(disk.0.join("app.conf")).unwrap(),
        "old content\n"
    );
    let names: Vec<_> = std::fs::read_dir(&disk.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "a temp file was left behind: {names:?}");
}

/// Poll `done` until it holds; not within a minute is a failure (a hang),
/// never a measurement.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` has a handler for SIGTERM (`SigCgt` in its status).
fn catches_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let caught = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .unwrap_or(0);
    caught & (1 << (nix::libc::SIGTERM - 1)) != 0
}

#[test]
fn sigterm_finishes_the_resource_in_hand_then_stops_and_reports() {
    let s = Sandbox::new();
    // The first resource says it has started, then holds until the test lets it go.
    s.cookbook(
        "slow",
        &[(
            "recipes/default.yaml",
            "- execute: \"touch {{attrs.root}}/started && while [ ! -e {{attrs.root}}/go ]; do sleep 0.05; done && touch {{attrs.root}}/finished\"\n\
             - file: \"{{attrs.root}}/after\"\n",
        )],
    );
    let opts = s.run_opts("slow", false);
    let child = Process::new(env!("CARGO_BIN_EXE_cm-agent"))
        .args(["apply", "--run-list", "slow", "--format", "json"])
        .arg("--cookbooks")
        .arg(&opts.cookbooks)
        .arg("--attributes")
        .arg(opts.attributes.unwrap())
        .arg("--backup-dir")
        .arg(&opts.backup_dir)
        .arg("--lock-file")
        .arg(s.dir.path().join("lock"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the first resource starts", || s.path("started").exists());
    assert!(catches_sigterm(child.id()), "the agent handles SIGTERM");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // The handler is installed with SA_RESETHAND: once SIGTERM is no longer
    // caught, the agent has taken it, and the resource is still in hand.
    wait_until("the agent takes SIGTERM", || !catches_sigterm(child.id()));
    std::fs::write(s.path("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("stopped by a signal after 1 of 2"),
        "{report}"
    );
    assert_eq!(report["resources"][0]["changed"], true, "{report}");
    assert!(
        s.path("finished").exists(),
        "the resource in hand was not finished"
    );
    assert!(!s.path("after").exists(), "the run went on after SIGTERM");
}

#[test]
fn cron_job_lands_in_cron_d_and_is_removed() {
    if !support::require_root("writing /etc/cron.d") {
        return;
    }
    let name = format!("cm-test-{}", std::process::id());
    let s = Sandbox::new();
    s.cookbook(
        "jobs",
        &[
            ("recipes/default.yaml", &format!("- cron: {name}\n  minute: \"*/10\"\n  command: /bin/true\n  environment:\n    MAILTO: ops\n")),
            ("recipes/remove.yaml", &format!("- cron: {name}\n  command: /bin/true\n  action: delete\n")),
        ],
    );
    let path = std::path::Path::new("/etc/cron.d").join(&name);
    let first = s.apply("jobs");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let second = s.apply("jobs");
    std::fs::write(&path, "tampered\n").unwrap();
    let repaired = s.apply("jobs");
    let removed = s.apply("jobs::remove");
    let _ = std::fs::remove_file(&path);
    assert_eq!(ok(&first).resources_changed, 1);
    assert!(
        text.ends_with("MAILTO=ops\n*/10 * * * * root /bin/true\n"),
        "{text}"
    );
    assert_eq!(ok(&second).resources_changed, 0);
    assert_eq!(ok(&repaired).resources_changed, 1);
    assert_eq!(ok(&removed).resources_changed, 1);
    assert!(!path.exists());
}
