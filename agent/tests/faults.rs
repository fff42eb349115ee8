//! Faults during a run: a full disk, a signal, a cron job in the real /etc/cron.d.

mod support;

use std::process::Command as Process;
use std::time::Duration;

use support::{Sandbox, ok};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A tmpfs of 64 KiB mounted for the test, unmounted on drop.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    fn mount(at: std::path::PathBuf) -> Option<TinyDisk> {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Process::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&at)
            .status()
            .ok()?
            .success();
        ok.then_some(TinyDisk(at))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg(&self.0).status();
    }
}

#[test]
fn disk_full_during_a_write_leaves_the_old_file_intact() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let s = Sandbox::new();
    let Some(disk) = TinyDisk::mount(s.root()) else {
        eprintln!("skipped: cannot mount tmpfs here");
        return;
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

#[test]
fn sigterm_finishes_the_resource_in_hand_then_stops_and_reports() {
    let s = Sandbox::new();
    s.cookbook(
        "slow",
        &[(
            "recipes/default.yaml",
            "- execute: \"sleep 1 && touch {{attrs.root}}/slept\"\n- file: \"{{attrs.root}}/after\"\n",
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
    std::thread::sleep(Duration::from_millis(400));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
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
    assert!(
        s.path("slept").exists(),
        "the resource in hand was not finished"
    );
    assert!(!s.path("after").exists(), "the run went on after SIGTERM");
}

#[test]
fn cron_job_lands_in_cron_d_and_is_removed() {
    if !is_root() {
        eprintln!("skipped: /etc/cron.d needs root");
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
