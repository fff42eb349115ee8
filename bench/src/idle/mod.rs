//! `cm-bench idle`: how many idle agents one server holds, and at what
//! memory each. The server runs in this process; the simulated agents run
//! in a second process (this binary again, `idle-agents`), so this
//! process's memory is the server's alone. Each agent has its own key and
//! a certificate the server's CA signed (signed in the agents' process:
//! the Enroll RPC's cost is the boot storm's figure, not this one), holds a
//! Watch stream on its own mutual-TLS connection and beats every 60 s, as
//! the daemon does. Past 20,000 connections from one source address the
//! agents use the next one (127.0.0.2, …), so ephemeral ports never run
//! short. Then one plan change is fanned out to every watcher: each must
//! see its event and fetch the new plan.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use cm_server::store::NodeEnrollment;

use crate::fleet::ROLE;
use crate::node::Memory;
use crate::server::BenchServer;
use crate::stats::Samples;

mod agents;

pub use agents::{IdleAgentsArgs, run as run_agents};

#[derive(clap::Args)]
pub struct IdleArgs {
    /// Simulated agents, each with its own connection and Watch stream.
    #[arg(long, default_value_t = 10_000)]
    agents: usize,
    /// Seconds after the last stream opened before memory is read.
    #[arg(long, default_value_t = 20)]
    settle: u64,
    /// Plan changes fanned out to every watcher.
    #[arg(long, default_value_t = 3)]
    changes: usize,
    /// `postgres://…`; SQLite in a temp dir by default.
    #[arg(long, env = "CM_BENCH_DATABASE")]
    database: Option<String>,
}

/// Connections opened from one loopback source address.
pub const PER_SOURCE: usize = 20_000;

pub fn run(args: IdleArgs) -> Result<()> {
    // One loopback source address (127.0.0.1 to 127.0.0.254) a PER_SOURCE.
    if !(1..=PER_SOURCE * 254).contains(&args.agents) {
        bail!("--agents must be from 1 to {}", PER_SOURCE * 254);
    }
    // Each process holds one end of every connection.
    let want = args.agents as u64 + 1024;
    let limit = open_files(want)?;
    if limit < want {
        bail!("{limit} open files allowed, {want} needed: run as root or raise the hard limit");
    }
    let server = BenchServer::start(args.database.as_deref(), 2)?;
    let runtime = crate::cpu::client_runtime(1)?;
    let result = measure(&server, &runtime, &args);
    runtime.shutdown_timeout(Duration::from_secs(5));
    server.stop();
    result
}

fn measure(server: &BenchServer, rt: &tokio::runtime::Runtime, args: &IdleArgs) -> Result<()> {
    let dir = tempfile::tempdir().context("a temp dir")?;
    rt.block_on(crate::fleet::seed(server, 1))?;
    let ca = dir.path().join("ca.json");
    let pki = &server.state.pki;
    std::fs::write(
        &ca,
        serde_json::json!({"cert": pki.ca().cert_pem(), "key": pki.ca().key_pem(),
                           "url": server.url(), "ca_pem": server.credential.ca_pem})
        .to_string(),
    )?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["idle-agents", "--agents", &args.agents.to_string(), "--ca"])
        .arg(&ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the agents' process")?;
    let mut to_agents = child.stdin.take().context("stdin")?;
    let mut from_agents = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut next = || -> Result<String> {
        from_agents
            .next()
            .context("the agents' process ended")?
            .context("reading the agents' process")
    };

    // Their certificates, then their rows, then every plan resolved.
    let started = std::time::Instant::now();
    let mut nodes = Vec::with_capacity(args.agents);
    loop {
        let line = next()?;
        if line == "signed" {
            break;
        }
        let mut f = line.split(' ');
        let (Some(name), Some(serial), Some(expires)) = (f.next(), f.next(), f.next()) else {
            bail!("unexpected line from the agents' process: {line}");
        };
        nodes.push(NodeEnrollment {
            name: name.to_string(),
            facts_json: "{}".into(),
            cert_serial: serial.to_string(),
            cert_expires_at: expires.parse()?,
            now: cm_server::state::now(),
        });
    }
    println!(
        "idle: {} keys and certificates in {:.1} s",
        nodes.len(),
        started.elapsed().as_secs_f64()
    );
    let registered = rt.block_on(crate::fleet::register(server, nodes, 16))?;
    let (_, settled) = rt.block_on(crate::fleet::recompute_plans(server))?;
    println!(
        "idle: {} nodes registered in {:.1} s, every plan resolved in {:.1} s",
        args.agents,
        registered.as_secs_f64(),
        settled.as_secs_f64()
    );
    let before = Memory::of("self")?;
    let heap_before = crate::node::heap_in_use();

    writeln!(to_agents, "connect")?;
    let line = next()?;
    println!("idle: {line}");
    std::thread::sleep(Duration::from_secs(args.settle));
    let after = Memory::of("self")?;
    let heap_after = crate::node::heap_in_use();
    let agents_memory = Memory::of(&child.id().to_string())?;
    let per = |a: u64, b: u64| (a.saturating_sub(b)) as f64 * 1024.0 / args.agents as f64;
    println!(
        "idle: server RSS {:.1} MiB before, {:.1} MiB with {} streams (RssAnon {:.1} → {:.1} MiB): \
         {:.1} KiB per idle agent; {} threads",
        mib(before.vm_rss),
        mib(after.vm_rss),
        args.agents,
        mib(before.rss_anon),
        mib(after.rss_anon),
        per(after.vm_rss, before.vm_rss) / 1024.0,
        after.threads
    );
    println!(
        "idle: server heap in use {:.1} MiB before ({:.1} KiB a node), {:.1} MiB with the streams \
         ({:.1} KiB an agent)",
        mib(heap_before / 1024),
        heap_before as f64 / 1024.0 / args.agents as f64,
        mib(heap_after / 1024),
        heap_after.saturating_sub(heap_before) as f64 / 1024.0 / args.agents as f64,
    );
    let hundred_k =
        mib(before.vm_rss) + per(after.vm_rss, before.vm_rss) * 100_000.0 / 1024.0 / 1024.0;
    println!(
        "idle: at that rate 100,000 agents need about {:.0} MiB; the agents' process: {:.1} MiB",
        hundred_k,
        mib(agents_memory.vm_rss)
    );

    for change in 0..args.changes {
        let committed = rt.block_on(change_plan(server, change))?;
        writeln!(to_agents, "expect {committed}")?;
        for what in ["hears its event", "holds its new plan"] {
            let line = next()?;
            let mut samples = Samples::default();
            for micros in line.split(' ').skip(1) {
                samples.record(Duration::from_micros(micros.parse()?));
            }
            crate::cluster::print_line(
                &format!("fan-out {}: commit → watcher {what}", change + 1),
                samples,
            );
        }
    }
    drop(to_agents);
    let status = child.wait()?;
    if !status.success() {
        bail!("the agents' process failed: {status}");
    }
    Ok(())
}

/// Change the role every agent reads (its memcached memory share), as
/// Roles.Set does; the wall-clock time of the commit, in microseconds.
async fn change_plan(server: &BenchServer, change: usize) -> Result<u128> {
    let yaml = std::fs::read_to_string(crate::fleet::repo().join("roles/memcached.yaml"))?.replace(
        "memory_percent: 50",
        &format!("memory_percent: {}", 40 - change % 30),
    );
    let committed = crate::agent::commit_role(server, ROLE, yaml).await?;
    let wall = SystemTime::now().duration_since(UNIX_EPOCH)? - committed.elapsed();
    Ok(wall.as_micros())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Raise the open-files limit towards `want`: past the hard limit when
/// this process may (root with `CAP_SYS_RESOURCE`), else to the hard limit
/// as cm-server does; the limit now in force.
fn open_files(want: u64) -> Result<u64> {
    use nix::sys::resource::{Resource, setrlimit};
    if setrlimit(Resource::RLIMIT_NOFILE, want, want).is_ok() {
        return Ok(want);
    }
    Ok(cm_server::wire::raise_open_files_limit()?)
}
