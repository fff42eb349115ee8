//! `cm-bench cluster`'s daemons: real `cm-agent daemon` processes on
//! loopback, all in `ring0`, each converging a template that lists the
//! ring's members into a directory of its own (set by a role of its own).
//! Nodes without agents join and leave the ring; each change is timed from
//! its commit to the members file rewritten on every daemon, read every
//! 2 ms.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cm_proto::v1::CreateTokenRequest;
use cm_proto::v1::tokens_client::TokensClient;

use crate::agent::converged;
use crate::cluster::{
    ClusterArgs, ENVIRONMENT, membership_change, print_line, register, ring, seed, set_role,
};
use crate::node::{AgentNode, Daemon};
use crate::server::BenchServer;
use crate::stats::Samples;

const POLL: Duration = Duration::from_millis(2);

fn churn_node(i: usize) -> String {
    format!("joiner-{i:03}")
}

pub async fn follow(server: &BenchServer, args: &ClusterArgs, binary: &Path) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("cm-bench-cluster.")
        .tempdir()
        .context("a temp dir")?;
    seed(server, dir.path(), 1).await?;
    let settings = format!(
        "server: {}\nca_fingerprint: {}\n",
        server.url(),
        server.state.pki.ca().fingerprint()
    );
    let mut daemons: Vec<(Daemon, PathBuf)> = Vec::new();
    for k in 0..args.daemons {
        let out = dir.path().join(format!("out-{k}"));
        let token = own_role_and_token(server, k, &out).await?;
        let node = AgentNode::fresh(
            binary,
            &dir.path().join(format!("node-{k}")),
            &format!("daemon-{k:02}"),
            &settings,
            &token,
        )?;
        let mut daemon = node.spawn_daemon()?;
        daemon
            .wait_for("converged", converged, 1, POLL, Duration::from_secs(60))
            .await?;
        daemons.push((daemon, out.join("members")));
    }
    // Every daemon joined the ring: wait until each lists all of them.
    let all = args.daemons;
    wait_until(&daemons, |text| text.lines().count() == all, Instant::now()).await?;
    let joiners = 4;
    register(server, 0..joiners, churn_node, |_| Vec::new()).await?;
    println!(
        "\ndaemons: {} cm-agent daemons ({}) in one ring, each converging its members file; \
         a join or a leave every {} ms",
        args.daemons,
        binary.display(),
        args.every_ms
    );

    let mut latency = Samples::default();
    let mut inside = [false; 4];
    for c in 0..args.changes {
        let slot = c % joiners;
        let join = !inside[slot];
        inside[slot] = join;
        let name = churn_node(slot);
        let next = Instant::now() + Duration::from_millis(args.every_ms);
        let (committed, _) = membership_change(server, name.clone(), ring(0), join, false).await?;
        let line = format!("{name}\n");
        let shows = |text: &str| text.contains(&line) == join;
        for at in wait_until(&daemons, shows, committed).await? {
            latency.record(at - committed);
        }
        tokio::time::sleep_until(next.into()).await;
    }
    print_line(
        &format!(
            "commit → members file rewritten on a daemon ({} changes)",
            args.changes
        ),
        latency,
    );
    for (daemon, _) in daemons {
        daemon.stop().await?;
    }
    Ok(())
}

/// A role `out-K` pointing the peers cookbook at `out`, and a token for one
/// node in `ring0` and `out-K`.
async fn own_role_and_token(server: &BenchServer, k: usize, out: &Path) -> Result<String> {
    set_role(
        server,
        format!(
            "name: out-{k}\nattributes:\n  peers:\n    dir: {}\n",
            out.display()
        ),
    )
    .await?;
    Ok(TokensClient::new(server.admin().await?)
        .create(CreateTokenRequest {
            roles: vec![ring(0), format!("out-{k}")],
            environment: ENVIRONMENT.into(),
            ttl_seconds: 3600,
            uses: 1,
        })
        .await
        .context("creating a token")?
        .into_inner()
        .token)
}

/// Read every daemon's members file every [`POLL`] until `check` holds for
/// each; when it first held for each. Fails after 60 s.
async fn wait_until(
    daemons: &[(Daemon, PathBuf)],
    check: impl Fn(&str) -> bool,
    since: Instant,
) -> Result<Vec<Instant>> {
    let mut seen: Vec<Option<Instant>> = vec![None; daemons.len()];
    loop {
        for (k, (_, file)) in daemons.iter().enumerate() {
            if seen[k].is_none() && check(&std::fs::read_to_string(file).unwrap_or_default()) {
                seen[k] = Some(Instant::now());
            }
        }
        if seen.iter().all(Option::is_some) {
            return Ok(seen.into_iter().flatten().collect());
        }
        if since.elapsed() > Duration::from_secs(60) {
            let (daemon, file) = &daemons[seen.iter().position(Option::is_none).unwrap_or(0)];
            bail!(
                "{} did not change within 60 s; the daemon's log:\n{}",
                file.display(),
                daemon.log_text()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
