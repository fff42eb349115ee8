//! `cm-bench storm`: an autoscaling group's boot storm. N nodes start at
//! once, and each does what a booting agent does before its first
//! converge: a new key and CSR, the Enroll RPC with the group's token, a
//! mutual-TLS connection with its new certificate, its first plan, and
//! every blob of its cookbooks. The figure is the time until the last node
//! holds all of that, and how many were refused (none should be: the
//! server's handshake limit is 2,048 at once, and a node told to retry
//! counts as refused here).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cm_proto::v1::FetchBlobRequest;
use cm_proto::v1::agent_client::AgentClient;
use futures::StreamExt as _;

use crate::server::BenchServer;
use crate::stats::Samples;

#[derive(clap::Args)]
pub struct StormArgs {
    /// Nodes booting at once.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// `postgres://…`; SQLite in a temp dir by default.
    #[arg(long, env = "CM_BENCH_DATABASE")]
    database: Option<String>,
}

pub fn run(args: StormArgs) -> Result<()> {
    let server = BenchServer::start(args.database.as_deref(), 2)?;
    let runtime = crate::cpu::client_runtime(2)?;
    let result = runtime.block_on(storm(&server, args.nodes));
    runtime.shutdown_timeout(Duration::from_secs(5));
    server.stop();
    result
}

async fn storm(server: &BenchServer, nodes: usize) -> Result<()> {
    let token = crate::fleet::seed(server, nodes).await?;
    println!("storm: {nodes} nodes booting at once (2 cores shared by the server and the nodes)");
    let started = Instant::now();
    let boots = futures::stream::iter(0..nodes)
        .map(|i| {
            let token = token.clone();
            async move {
                let at = Instant::now();
                boot(server, &token, i)
                    .await
                    .map(|blobs| (at.elapsed(), blobs))
            }
        })
        .buffer_unordered(nodes);
    futures::pin_mut!(boots);
    let (mut done, mut refused, mut blobs) = (Samples::default(), Vec::new(), 0);
    while let Some(r) = boots.next().await {
        match r {
            Ok((took, fetched)) => {
                done.record(took);
                blobs += fetched;
            }
            Err(e) => refused.push(format!("{e:#}")),
        }
    }
    let all = started.elapsed();
    let s = done.summary(all);
    println!(
        "storm: {} of {nodes} nodes enrolled and hold their plan and {blobs} blobs in {:.1} s; \
         per node p50 {} p99 {} max {}",
        s.requests,
        all.as_secs_f64(),
        crate::stats::ms(s.p50),
        crate::stats::ms(s.p99),
        crate::stats::ms(s.max)
    );
    if let Some(first) = refused.first() {
        bail!("{} nodes refused; the first: {first}", refused.len());
    }
    Ok(())
}

/// One node's boot up to its first converge; the blobs it fetched.
async fn boot(server: &BenchServer, token: &str, i: usize) -> Result<usize> {
    let mut enroll = AgentClient::new(server.connect(None).await?);
    let id = crate::fleet::enroll(&mut enroll, token, i).await?;
    drop(enroll);
    let channel = server
        .connect(Some((&id.cert_pem, &id.key_pem)))
        .await
        .with_context(|| format!("{}: connecting with its certificate", id.name))?;
    let mut agent = AgentClient::new(channel);
    let plan = agent
        .get_plan(crate::plans::request(""))
        .await
        .with_context(|| format!("{}: its first plan", id.name))?
        .into_inner()
        .plan
        .context("a plan")?;
    let mut fetched = 0;
    for entry in plan.cookbooks.iter().flat_map(|c| &c.manifest) {
        let mut chunks = agent
            .fetch_blob(FetchBlobRequest {
                sha256: entry.sha256.clone(),
            })
            .await
            .with_context(|| format!("{}: blob {}", id.name, entry.path))?
            .into_inner();
        let mut size = 0;
        while let Some(chunk) = chunks.next().await {
            size += chunk?.data.len() as u64;
        }
        if size != entry.size {
            bail!(
                "{}: {} came with {size} bytes, not {}",
                id.name,
                entry.path,
                entry.size
            );
        }
        fetched += 1;
    }
    Ok(fetched)
}
