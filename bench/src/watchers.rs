//! `cm-bench cluster`'s churn: simulated agents, each enrolled through the
//! Enroll RPC with its own key, holding a Watch stream on its own mutual-TLS
//! connection and beating every 60 s as the daemon does. On each event a
//! watcher fetches its plan (GetPlan since its hash) and reports when it
//! holds the new one. Nodes without agents join and leave the rings at a
//! steady rate; each change is timed from its commit to every affected
//! watcher holding its new plan, and a watcher woken by a change to a role
//! its plan does not read is counted as a stray wake-up.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cm_proto::v1::agent_client::AgentClient;
use cm_proto::v1::tokens_client::TokensClient;
use cm_proto::v1::{CreateTokenRequest, Empty, WatchRequest};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::cluster::{
    ClusterArgs, ENVIRONMENT, membership_change, print_line, register, ring, seed,
};
use crate::fleet::{NodeIdentity, enroll};
use crate::server::BenchServer;
use crate::stats::Samples;

/// A watcher holding a new plan: which watcher, and when.
struct Held {
    watcher: usize,
    at: Instant,
}

fn churn_node(i: usize) -> String {
    format!("churn-{i:04}")
}

pub async fn churn(server: &BenchServer, args: &ClusterArgs) -> Result<()> {
    let dir = tempfile::tempdir().context("a temp dir")?;
    seed(server, dir.path(), args.rings).await?;
    let identities = enroll_watchers(server, args).await?;
    // Churn nodes: one per change slot, in no ring until they join one.
    let churners = args.rings * 4;
    register(server, 0..churners, churn_node, |_| Vec::new()).await?;

    let (held_tx, mut held_rx) = mpsc::unbounded_channel();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, id) in identities.into_iter().enumerate() {
        let channel = server
            .connect(Some((&id.cert_pem, &id.key_pem)))
            .await
            .with_context(|| format!("connecting as {}", id.name))?;
        let (held, ready) = (held_tx.clone(), ready_tx.clone());
        tasks.push(tokio::spawn(watch(i, channel, held, ready)));
    }
    for _ in 0..tasks.len() {
        ready_rx
            .recv()
            .await
            .context("a watcher ended before its stream opened")?;
    }
    println!(
        "\nchurn: {} watchers (mutual TLS, one connection each) in {} rings, streams open in \
         {:.1} s; a join or a leave every {} ms",
        tasks.len(),
        args.rings,
        started.elapsed().as_secs_f64(),
        args.every_ms
    );

    let mut latency = Samples::default();
    let mut stray = 0usize;
    let mut in_ring = vec![None::<usize>; churners];
    let watchers = tasks.len();
    for c in 0..args.changes {
        let slot = c % churners;
        let (ring_index, join) = match in_ring[slot] {
            Some(r) => (r, false),
            None => ((c / churners + slot) % args.rings, true),
        };
        in_ring[slot] = join.then_some(ring_index);
        let next = Instant::now() + Duration::from_millis(args.every_ms);
        let (committed, _) =
            membership_change(server, churn_node(slot), ring(ring_index), join, false).await?;
        // Every watcher in the ring must hold its new plan; nobody else moves.
        let affected: Vec<usize> = (0..watchers)
            .filter(|w| w % args.rings == ring_index)
            .collect();
        let mut waiting = affected.len();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while waiting > 0 {
            let held = tokio::time::timeout_at(deadline, held_rx.recv())
                .await
                .with_context(|| {
                    format!("change {c}: {waiting} watchers without their plan after 60 s")
                })?
                .context("every watcher ended")?;
            if held.watcher % args.rings == ring_index {
                latency.record(held.at - committed);
                waiting -= 1;
            } else {
                stray += 1;
            }
        }
        tokio::time::sleep_until(next.into()).await;
    }
    // Late strays from the last change.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while held_rx.try_recv().is_ok() {
        stray += 1;
    }
    for t in &tasks {
        t.abort();
    }
    print_line(
        &format!(
            "commit → affected watcher holds its plan ({} changes)",
            args.changes
        ),
        latency,
    );
    println!("  watchers woken by a change to a role their plan does not read: {stray}");
    Ok(())
}

/// Enroll the watchers through the Enroll RPC, watcher `i` in ring `i % rings`.
async fn enroll_watchers(server: &BenchServer, args: &ClusterArgs) -> Result<Vec<NodeIdentity>> {
    let admin = server.admin().await?;
    let mut agent = AgentClient::new(server.connect(None).await?);
    let started = Instant::now();
    let mut out = Vec::with_capacity(args.watchers);
    for r in 0..args.rings {
        let count = (r..args.watchers).step_by(args.rings).count();
        let token = TokensClient::new(admin.clone())
            .create(CreateTokenRequest {
                roles: vec![ring(r)],
                environment: ENVIRONMENT.into(),
                ttl_seconds: 3600,
                uses: u32::try_from(count.max(1)).context("too many watchers")?,
            })
            .await
            .context("creating a token")?
            .into_inner()
            .token;
        for i in (r..args.watchers).step_by(args.rings) {
            out.push((i, enroll(&mut agent, &token, i).await?));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    println!(
        "\nchurn: {} watchers enrolled through the Enroll RPC in {:.1} s",
        out.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(out.into_iter().map(|(_, id)| id).collect())
}

/// One simulated agent: its plan, a Watch stream from its hash, a GetPlan
/// on each event, a heartbeat every 60 s.
async fn watch(
    i: usize,
    channel: tonic::transport::Channel,
    held: mpsc::UnboundedSender<Held>,
    ready: mpsc::UnboundedSender<()>,
) -> Result<()> {
    let mut agent = AgentClient::new(channel);
    let (hash, stream) = open_watch(&mut agent).await?;
    let _ = ready.send(());
    follow(agent, stream, hash, |step| {
        if step == Step::Held {
            let _ = held.send(Held {
                watcher: i,
                at: Instant::now(),
            });
        }
    })
    .await
    .with_context(|| format!("watcher {i}"))
}

/// The first plan's hash, and a Watch stream from it.
pub async fn open_watch(
    agent: &mut AgentClient<tonic::transport::Channel>,
) -> Result<(String, tonic::Streaming<cm_proto::v1::WatchEvent>)> {
    let hash = get_plan(agent, "").await?.context("a first plan")?;
    let stream = agent
        .watch(WatchRequest {
            plan_hash: hash.clone(),
        })
        .await
        .context("opening the Watch stream")?
        .into_inner();
    Ok((hash, stream))
}

/// A watcher's progress on one plan change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Its Watch stream told it of a plan it does not hold.
    Heard,
    /// It holds that plan (GetPlan answered with the event's hash).
    Held,
}

/// Follow a Watch stream as the daemon does: a heartbeat every 60 s; on an
/// event, `on(Heard)`, GetPlan since the plan held (whose hash must be the
/// event's), then `on(Held)`.
pub async fn follow(
    mut agent: AgentClient<tonic::transport::Channel>,
    mut stream: tonic::Streaming<cm_proto::v1::WatchEvent>,
    mut hash: String,
    mut on: impl FnMut(Step),
) -> Result<()> {
    let mut beat = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = beat.tick() => {
                agent.heartbeat(Empty {}).await.context("a heartbeat")?;
            }
            event = stream.next() => {
                let event = event.context("the Watch stream ended")??;
                if event.plan_hash == hash {
                    continue;
                }
                on(Step::Heard);
                let Some(new) = get_plan(&mut agent, &hash).await? else {
                    continue;
                };
                if new != event.plan_hash {
                    bail!("told {} but given {new}", event.plan_hash);
                }
                hash = new;
                on(Step::Held);
            }
        }
    }
}

/// GetPlan since `since`: the new hash, or None when unchanged.
pub async fn get_plan(
    agent: &mut AgentClient<tonic::transport::Channel>,
    since: &str,
) -> Result<Option<String>> {
    let r = agent
        .get_plan(crate::plans::request(since))
        .await
        .context("GetPlan")?
        .into_inner();
    Ok(match r.unchanged {
        true => None,
        false => Some(r.plan.context("a plan")?.hash),
    })
}
