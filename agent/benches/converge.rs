//! Converge benchmark: a 200-resource cookbook (50 directories, 100 files of
//! 1 KiB, 40 templates with a 20-item loop, 5 installed packages, 5 guarded
//! commands) converged by the real `cm-agent apply` binary. Prints the median
//! wall time of first converges, no-op converges and the repair of one
//! drifted file, with the agent's own peak RSS (`VmHWM`, read at its exit)
//! and its private part (`RssAnon`). `CM_BENCH_AGENT=PATH` measures another
//! binary (the one nodes get: `target/agent/cm-agent`).
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
const FIRST_RUNS: usize = 5;

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

/// One converge as the agent saw it.
struct Run {
    wall: Duration,
    /// The agent's own peak RSS (`VmHWM`) and private part (`RssAnon`), KiB,
    /// read at its exit; its commands' memory is not in them.
    hwm_kib: u64,
    anon_kib: u64,
    summary: String,
}

/// Run one converge. The agent runs traced, only so that it stops once at
/// its exit (`PTRACE_EVENT_EXIT`, before its memory is released) for its
/// `/proc` status to be read; it is not stopped anywhere else.
#[allow(unsafe_code)]
// ptrace and wait4: docs/decisions.md
// The child is reaped by wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn converge(dir: &Path) -> Run {
    use nix::libc;
    use std::os::unix::process::CommandExt;
    let agent =
        std::env::var("CM_BENCH_AGENT").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cm-agent").into());
    let start = Instant::now();
    let mut cmd = Command::new(&agent);
    cmd.args(["apply", "--run-list", "bench", "--format", "json"])
        .arg("--cookbooks")
        .arg(dir.join("cookbooks"))
        .arg("--attributes")
        .arg(dir.join("attrs.yaml"))
        .arg("--backup-dir")
        .arg(dir.join("backup"))
        .arg("--lock-file")
        .arg(dir.join("lock"))
        .stdout(std::process::Stdio::piped());
    // SAFETY: PTRACE_TRACEME between fork and exec makes no allocation.
    unsafe {
        cmd.pre_exec(|| {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let mut child = cmd.spawn().expect("cm-agent starts");
    let pid = child.id() as i32;
    // Read its output meanwhile: a stopped reader would stall a large report.
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
        out
    });
    let (mut hwm_kib, mut anon_kib) = (0, 0);
    let mut status = 0;
    // SAFETY: rusage is plain data filled in by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4 on our own child; the kernel fills status and usage.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
        if !libc::WIFSTOPPED(status) {
            break;
        }
        let event = status >> 16;
        if event == 0 && libc::WSTOPSIG(status) == libc::SIGTRAP {
            // The stop after exec: from now on, stop only at the exit.
            // SAFETY: our tracee, stopped.
            unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, libc::PTRACE_O_TRACEEXIT) };
        } else if event == libc::PTRACE_EVENT_EXIT {
            (hwm_kib, anon_kib) = memory(pid);
        }
        let deliver = if event == 0 && libc::WSTOPSIG(status) != libc::SIGTRAP {
            libc::WSTOPSIG(status)
        } else {
            0
        };
        // SAFETY: our tracee, stopped; resume it with its own signal, if any.
        unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, deliver) };
    }
    let wall = start.elapsed();
    let out = reader.join().unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert_eq!(v["status"], "success", "{out}");
    let summary = format!(
        "{} resources, {} changed",
        v["resources_total"], v["resources_changed"]
    );
    Run {
        wall,
        hwm_kib,
        anon_kib,
        summary,
    }
}

/// `VmHWM` and `RssAnon` of a live process, KiB.
fn memory(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("RssAnon:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The median of several runs, with the range and the largest memory.
fn report(what: &str, mut runs: Vec<Run>) {
    runs.sort_by_key(|r| r.wall);
    let median = &runs[runs.len() / 2];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let hwm = runs.iter().map(|r| r.hwm_kib).max().unwrap_or(0);
    let anon = runs.iter().map(|r| r.anon_kib).max().unwrap_or(0);
    println!(
        "{what}: {:>6.1} ms median ({:.1} to {:.1}, {} runs)  VmHWM {:.1} MiB  RssAnon {:.1} MiB  ({})",
        ms(median.wall),
        ms(runs[0].wall),
        ms(runs[runs.len() - 1].wall),
        runs.len(),
        mib(hwm),
        mib(anon),
        median.summary
    );
}

fn main() {
    if let Ok(kept) = std::env::var("CM_BENCH_WORKLOAD") {
        let kept = Path::new(&kept);
        cookbook(kept);
        let run = converge(kept);
        println!("workload in {} ({})", kept.display(), run.summary);
        return;
    }
    // First converges each on a new workload; then no-ops and drift repairs
    // of one file (its content changed behind the agent's back) on the last.
    let mut firsts = Vec::new();
    let mut last = None;
    for _ in 0..FIRST_RUNS {
        let dir = tempfile::tempdir().unwrap();
        cookbook(dir.path());
        firsts.push(converge(dir.path()));
        last = Some(dir);
    }
    let dir = last.expect("at least one run");
    report("first converge", firsts);
    report(
        "no-op converge",
        (0..NOOP_RUNS).map(|_| converge(dir.path())).collect(),
    );
    let drifted = dir.path().join("root/d1/f1");
    let repairs = (0..NOOP_RUNS)
        .map(|_| {
            std::fs::write(&drifted, "drifted\n").unwrap();
            let run = converge(dir.path());
            assert_ne!(std::fs::read(&drifted).unwrap(), b"drifted\n");
            run
        })
        .collect();
    report("drift repair, one file", repairs);
}
