//! Converge benchmark: a 200-resource cookbook (50 directories, 100 files of
//! 1 KiB, 40 templates with a 20-item loop, 5 installed packages, 5 guarded
//! commands) converged by the real `cm-agent apply` binary. Prints the first
//! converge and the median of the no-op converges, wall time and peak RSS.
//!
//! `cargo bench -p cm-agent --bench converge` (as root, for the lock in /run
//! and so dpkg-query sees the packages; any user works with the flags below).
//! With `CM_BENCH_WORKLOAD=DIR` the workload is written there and kept, and
//! only the first converge runs: `scripts/profile-agent.sh` profiles the
//! no-op converges of it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const NOOP_RUNS: usize = 30;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn cookbook(dir: &Path) {
    let cb = dir.join("cookbooks/bench");
    write(&cb.join("metadata.yaml"), "name: bench\nversion: 1.0.0\n");
    let items: Vec<String> = (0..20).map(|i| format!("item{i}")).collect();
    write(
        &cb.join("attributes.yaml"),
        &format!("bench:\n  items: [{}]\n", items.join(", ")),
    );
    write(&cb.join("files/blob"), &format!("{}\n", "x".repeat(1023)));
    write(
        &cb.join("templates/t.hbs"),
        "# generated\n{{#each attrs.bench.items}}key_{{@index}} = {{this}} on {{../node.hostname}}\n{{/each}}",
    );
    let mut r = String::new();
    for d in 0..50 {
        r += &format!("- directory: \"{{{{attrs.root}}}}/d{d}\"\n  mode: \"0755\"\n");
    }
    for f in 0..100 {
        let d = f % 50;
        if f % 2 == 0 {
            r += &format!(
                "- file: \"{{{{attrs.root}}}}/d{d}/f{f}\"\n  source: blob\n  mode: \"0644\"\n"
            );
        } else {
            r += &format!(
                "- file: \"{{{{attrs.root}}}}/d{d}/f{f}\"\n  content: \"{}\\n\"\n",
                "y".repeat(1023)
            );
        }
    }
    for t in 0..40 {
        r += &format!(
            "- template: \"{{{{attrs.root}}}}/d{}/t{t}.conf\"\n  source: t.hbs\n",
            t % 50
        );
    }
    for p in ["bash", "coreutils", "dpkg", "tar", "grep"] {
        r += &format!("- package: {p}\n");
    }
    for c in 0..5 {
        r += &format!(
            "- execute: \"touch {{{{attrs.root}}}}/never{c}\"\n  not_if: \"test -d {{{{attrs.root}}}}\"\n"
        );
    }
    write(&cb.join("recipes/default.yaml"), &r);
    write(
        &dir.join("attrs.yaml"),
        &format!("root: {}\n", dir.join("root").display()),
    );
    std::fs::create_dir_all(dir.join("root")).unwrap();
}

/// Run one converge; wall time and the agent's own peak RSS in KiB.
// The child is reaped by wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
#[allow(unsafe_code)] // wait4 for the child's rusage: docs/decisions.md
fn converge(dir: &Path) -> (Duration, i64, String) {
    let agent = env!("CARGO_BIN_EXE_cm-agent");
    let start = Instant::now();
    let child = Command::new(agent)
        .args(["apply", "--run-list", "bench", "--format", "json"])
        .arg("--cookbooks")
        .arg(dir.join("cookbooks"))
        .arg("--attributes")
        .arg(dir.join("attrs.yaml"))
        .arg("--backup-dir")
        .arg(dir.join("backup"))
        .arg("--lock-file")
        .arg(dir.join("lock"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cm-agent starts");
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: rusage is plain data filled in by the kernel; wait4 reaps our own child.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    let mut stdout = child.stdout.expect("piped");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    // SAFETY: see above.
    unsafe { nix::libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert_eq!(v["status"], "success", "{out}");
    let summary = format!(
        "{} resources, {} changed",
        v["resources_total"], v["resources_changed"]
    );
    (wall, usage.ru_maxrss, summary)
}

fn main() {
    if let Ok(kept) = std::env::var("CM_BENCH_WORKLOAD") {
        let kept = Path::new(&kept);
        cookbook(kept);
        let (_, _, what) = converge(kept);
        println!("workload in {} ({what})", kept.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    cookbook(dir.path());
    let (wall, rss, what) = converge(dir.path());
    println!(
        "first converge: {:>7.1} ms  peak RSS {:>6.1} MiB  ({what})",
        wall.as_secs_f64() * 1e3,
        rss as f64 / 1024.0
    );
    let mut walls = Vec::new();
    let mut peak = 0;
    let mut last = String::new();
    for _ in 0..NOOP_RUNS {
        let (w, r, s) = converge(dir.path());
        walls.push(w);
        peak = peak.max(r);
        last = s;
    }
    walls.sort();
    let median = walls[walls.len() / 2];
    println!(
        "no-op converge: {:>7.1} ms median, {:.1} ms min, {:.1} ms max over {NOOP_RUNS} runs  peak RSS {:>6.1} MiB  ({last})",
        median.as_secs_f64() * 1e3,
        walls[0].as_secs_f64() * 1e3,
        walls[walls.len() - 1].as_secs_f64() * 1e3,
        peak as f64 / 1024.0
    );
}
