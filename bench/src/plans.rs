//! `cm-bench plans`: the check-in load of a fleet. A server with the
//! memcached cookbook, role and environment and N nodes; C clients, each a
//! separate TLS connection with its own enrolled node certificate, calling
//! GetPlan back to back for a fixed time: first with `since` = the node's
//! current plan hash (the unchanged check-in that dominates a fleet's
//! traffic), then with `since` empty (a node's first plan request, the full
//! plan sent), then unchanged again while new nodes enroll one after another
//! (an autoscaling group scaling out: every enrollment is a change that
//! re-resolves every node's plan). Prints requests per second, latency
//! percentiles and where the CPU went.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cm_proto::v1::GetPlanRequest;
use cm_proto::v1::agent_client::AgentClient;
use tonic::transport::Channel;

use crate::cpu::CpuTimes;
use crate::fleet::{self, NodeIdentity};
use crate::server::BenchServer;
use crate::stats::{Samples, Summary, ms};

/// `cm-bench plans` options.
#[derive(Debug, Clone, clap::Args)]
pub struct PlansArgs {
    /// Nodes in the fleet.
    #[arg(long, default_value_t = 10_000)]
    pub nodes: usize,
    /// Concurrent clients: each a TLS connection with its own node identity.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Length of each measured phase.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Nodes enrolled through the Enroll RPC (at least --clients); the rest
    /// of the fleet is written straight into the store.
    #[arg(long)]
    pub enroll: Option<usize>,
    /// Skip the third phase (check-ins while nodes enroll one after another
    /// through the RPC), which is slow on a large fleet.
    #[arg(long)]
    pub no_enroll_phase: bool,
    /// PostgreSQL URL; default SQLite in a temp dir. Must be an empty
    /// database.
    #[arg(long, env = "CM_BENCH_DATABASE")]
    pub database: Option<String>,
    /// Worker threads of the server's runtime (and of the clients').
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// Which kind of check-in a phase sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckIn {
    /// `since` = the current hash: the answer is "unchanged", no plan.
    Unchanged,
    /// `since` empty: the whole plan comes back.
    FirstTime,
}

/// A client: one node, one connection, the node's current plan hash.
struct Client {
    agent: AgentClient<Channel>,
    plan_hash: String,
}

pub fn run(args: PlansArgs) -> Result<()> {
    if args.clients == 0 || args.nodes < args.clients {
        bail!("--nodes must be at least --clients, and --clients at least 1");
    }
    let server = BenchServer::start(args.database.as_deref(), args.threads)?;
    let clients = crate::cpu::client_runtime(args.threads)?;
    let result = clients.block_on(measure(&server, &args));
    clients.shutdown_timeout(Duration::from_secs(5));
    server.stop();
    result
}

async fn measure(server: &BenchServer, args: &PlansArgs) -> Result<()> {
    let engine = if args.database.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "cm-bench plans: {} nodes, {} clients, {} s per phase, {engine}, {cores} cores \
         (server and load generator share them)",
        args.nodes, args.clients, args.seconds
    );

    let pool = args
        .enroll
        .unwrap_or(args.clients)
        .clamp(args.clients, args.nodes);
    // Uses for the pool and for the third phase's enrollments.
    let token = fleet::seed(server, pool + ENROLL_PHASE_MAX).await?;
    let (identities, took) = fleet::enroll_many(server, &token, 0..pool).await?;
    println!(
        "enrolled {pool} nodes through the Enroll RPC in {:.1} s ({:.1} per second; \
         fleet growing from 0 to {pool})",
        took.as_secs_f64(),
        pool as f64 / took.as_secs_f64()
    );
    if args.nodes > pool {
        let took = fleet::register_directly(server, pool..args.nodes, 4).await?;
        println!(
            "registered {} more nodes directly in the store in {:.1} s",
            args.nodes - pool,
            took.as_secs_f64()
        );
    }
    fleet::check_fleet(server, args.nodes).await?;
    let (acknowledged, took) = fleet::recompute_plans(server).await?;
    println!(
        "a change (State::changed) returned in {} µs; its background pass re-resolved {} \
         plans (and recorded their new hashes) in {:.1} s ({:.0} per second)",
        acknowledged.as_micros(),
        args.nodes,
        took.as_secs_f64(),
        args.nodes as f64 / took.as_secs_f64()
    );
    let burst = fleet::change_burst(server, BURST).await?;
    println!(
        "a burst of {BURST} changes (no plan actually changing) returned in {} µs; {} \
         background pass(es), settled in {:.2} s",
        burst.acknowledged.as_micros(),
        burst.passes,
        burst.settled.as_secs_f64()
    );

    let started = Instant::now();
    let mut clients = connect_all(server, &identities[..args.clients]).await?;
    println!(
        "{} TLS connections with client certificates, each with a first GetPlan, in {:.2} s",
        args.clients,
        started.elapsed().as_secs_f64()
    );

    // Warm up (connections, allocator, caches); not measured.
    clients = phase(clients, CheckIn::Unchanged, Duration::from_secs(2))
        .await?
        .0;
    let (clients, unchanged, cpu_unchanged) = phase(
        clients,
        CheckIn::Unchanged,
        Duration::from_secs(args.seconds),
    )
    .await?;
    let (clients, first, cpu_first) = phase(
        clients,
        CheckIn::FirstTime,
        Duration::from_secs(args.seconds),
    )
    .await?;

    println!();
    report(
        "unchanged check-ins (since = current plan hash)",
        &unchanged,
        cpu_unchanged,
    );
    report(
        "first-time plan requests (since empty, full plan)",
        &first,
        cpu_first,
    );

    if !args.no_enroll_phase {
        let length = Duration::from_secs(args.seconds);
        let (checked_in, enrolled) = tokio::join!(
            phase(clients, CheckIn::Unchanged, length),
            enroll_for(server, &token, args.nodes, length),
        );
        let (_, during, cpu_during) = checked_in?;
        let (count, took) = enrolled?;
        report(
            "unchanged check-ins while nodes enroll one after another through the RPC",
            &during,
            cpu_during,
        );
        println!(
            "  meanwhile {count} enrollment(s) with {}+ nodes in the fleet: {:.2} s each \
             (each resolves the new node's plan)",
            args.nodes,
            took.as_secs_f64() / count.max(1) as f64
        );
        println!();
    }
    let target_ok = unchanged.errors == 0
        && unchanged.per_second() >= 5000.0
        && unchanged.p99 < Duration::from_millis(20);
    println!(
        "target (>= 5,000 unchanged check-ins/s, p99 < 20 ms): {}",
        if target_ok { "met" } else { "missed" }
    );
    Ok(())
}

/// Open one connection per identity (concurrently) and fetch each node's
/// plan once, as an agent does at start, to learn its hash.
async fn connect_all(server: &BenchServer, identities: &[NodeIdentity]) -> Result<Vec<Client>> {
    let connecting = identities.iter().map(|id| async move {
        let channel = server.connect(Some((&id.cert_pem, &id.key_pem))).await?;
        let mut agent = AgentClient::new(channel);
        let plan = agent
            .get_plan(request(""))
            .await
            .with_context(|| format!("first GetPlan of {}", id.name))?
            .into_inner()
            .plan
            .with_context(|| format!("{} got no plan", id.name))?;
        Ok::<_, anyhow::Error>(Client {
            agent,
            plan_hash: plan.hash,
        })
    });
    futures::future::try_join_all(connecting).await
}

/// At most this many enrollments in the third phase (the token's uses).
const ENROLL_PHASE_MAX: usize = 10_000;

/// Changes made back to back to show how the background recomputation
/// merges them.
const BURST: usize = 20;

/// Enroll new nodes (`first`, `first + 1`, ...) one after another until
/// `length` is over; returns how many and the time they took.
async fn enroll_for(
    server: &BenchServer,
    token: &str,
    first: usize,
    length: Duration,
) -> Result<(usize, Duration)> {
    let mut agent = AgentClient::new(server.connect(None).await?);
    let started = Instant::now();
    let mut count = 0;
    while started.elapsed() < length && count < ENROLL_PHASE_MAX {
        fleet::enroll(&mut agent, token, first + count).await?;
        count += 1;
    }
    Ok((count, started.elapsed()))
}

/// A GetPlan request since `since` (empty: the whole plan), as this agent version.
pub fn request(since: &str) -> GetPlanRequest {
    GetPlanRequest {
        since: since.to_string(),
        agent_version: cm_proto::VERSION.into(),
    }
}

/// Every client calls GetPlan back to back until `length` is over.
/// Returns the clients (to reuse their connections), the figures and the
/// CPU the phase used.
async fn phase(
    clients: Vec<Client>,
    kind: CheckIn,
    length: Duration,
) -> Result<(Vec<Client>, Summary, CpuTimes)> {
    let cpu_before = CpuTimes::now();
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut samples = Samples::default();
                let since = match kind {
                    CheckIn::Unchanged => c.plan_hash.clone(),
                    CheckIn::FirstTime => String::new(),
                };
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let answer = c.agent.get_plan(request(&since)).await;
                    let took = t.elapsed();
                    let ok = match (&answer, kind) {
                        (Ok(r), CheckIn::Unchanged) => r.get_ref().unchanged,
                        (Ok(r), CheckIn::FirstTime) => r
                            .get_ref()
                            .plan
                            .as_ref()
                            .is_some_and(|p| p.hash == c.plan_hash),
                        (Err(_), _) => false,
                    };
                    if ok {
                        samples.record(took);
                    } else {
                        if samples.errors == 0 {
                            eprintln!("cm-bench: unexpected answer: {answer:?}");
                        }
                        samples.errors += 1;
                    }
                }
                (c, samples)
            })
        })
        .collect();
    let mut all = Samples::default();
    let mut clients = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (c, s) = t.await.context("a client task panicked")?;
        all.merge(s);
        clients.push(c);
    }
    let elapsed = started.elapsed();
    let cpu = CpuTimes::now().since(cpu_before);
    Ok((clients, all.summary(elapsed), scale(cpu, elapsed)))
}

/// CPU time as cores busy over `elapsed`, kept in the `Duration` fields as
/// "core-seconds per second".
fn scale(cpu: CpuTimes, elapsed: Duration) -> CpuTimes {
    let per = |d: Duration| Duration::from_secs_f64(d.as_secs_f64() / elapsed.as_secs_f64());
    CpuTimes {
        server: per(cpu.server),
        clients: per(cpu.clients),
    }
}

fn report(title: &str, s: &Summary, cores: CpuTimes) {
    println!("{title}");
    println!(
        "  {} requests in {:.1} s, {} errors: {:.0} per second",
        s.requests,
        s.elapsed.as_secs_f64(),
        s.errors,
        s.per_second()
    );
    println!(
        "  latency p50 {}  p90 {}  p99 {}  max {}",
        ms(s.p50),
        ms(s.p90),
        ms(s.p99),
        ms(s.max)
    );
    let server_us = cores.server.as_secs_f64() * 1e6 / s.per_second().max(1e-9);
    println!(
        "  cpu: server {:.2} cores, load generator {:.2} cores; {:.0} µs of server CPU per request",
        cores.server.as_secs_f64(),
        cores.clients.as_secs_f64(),
        server_us
    );
    println!();
}
