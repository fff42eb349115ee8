//! `cm-bench cluster`: the cluster view's figures (issue 11). Three
//! measurements on an in-process server (SQLite) on 127.0.0.1:
//!
//! 1. **pass**: the background pass at `--nodes` nodes (10,000) in roles of
//!    `--role-size` (1,000) when one role's membership changes: every
//!    member's plan lists the role, so a join or a leave changes 1,000 plans.
//! 2. **churn** ([`crate::watchers`]): `--watchers` (1,000) simulated agents,
//!    each enrolled through the Enroll RPC and holding a Watch stream on its
//!    own mutual-TLS connection, in `--rings` roles; nodes join and leave
//!    the roles at a steady rate. From the change's commit to each affected
//!    watcher holding its new plan (event, then GetPlan).
//! 3. **daemons** ([`crate::daemons`]): `--daemons` (10) real `cm-agent
//!    daemon` processes converging a template that lists their role's
//!    members; from the change's commit to the file rewritten on each.
//!
//! Joins and leaves are `node assign` / `node unassign` made on the
//! server's state (commit, then `State::changed`): a liveness verdict takes
//! the same path from the store to the streams (`membership_pass` commits
//! the verdict, then calls `changed`). The environment's timers are set to
//! a day so that the bench's nodes, rows without agents, are not judged
//! while it runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cm_proto::v1::Document;
use cm_proto::v1::environments_client::EnvironmentsClient;
use cm_proto::v1::roles_client::RolesClient;
use cm_server::store::NodeEnrollment;

use crate::fleet::push_cookbook;
use crate::server::BenchServer;
use crate::stats::{Samples, ms};

/// `cm-bench cluster` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Which measurements: pass, churn, daemons (repeat, or all by default).
    #[arg(long = "only", value_parser = ["pass", "churn", "daemons"])]
    pub only: Vec<String>,
    /// Nodes in the pass measurement.
    #[arg(long, default_value_t = 10_000)]
    pub nodes: usize,
    /// Members of each role in the pass measurement.
    #[arg(long, default_value_t = 1_000)]
    pub role_size: usize,
    /// Joins and leaves timed in the pass measurement.
    #[arg(long, default_value_t = 10)]
    pub passes: usize,
    /// Watchers (simulated agents with a Watch stream) in the churn measurement.
    #[arg(long, default_value_t = 1_000)]
    pub watchers: usize,
    /// Roles the watchers are spread over; each reads its own role.
    #[arg(long, default_value_t = 4)]
    pub rings: usize,
    /// Joins and leaves in the churn and daemons measurements.
    #[arg(long, default_value_t = 60)]
    pub changes: usize,
    /// Milliseconds between two joins or leaves (the churn rate).
    #[arg(long, default_value_t = 500)]
    pub every_ms: u64,
    /// Real cm-agent daemons in the daemons measurement.
    #[arg(long, default_value_t = 10)]
    pub daemons: usize,
    /// The cm-agent binary for the daemons (default: next to cm-bench).
    #[arg(long)]
    pub agent: Option<PathBuf>,
}

/// The bench's environment: no splay, timers of a day (see the module doc).
pub const ENVIRONMENT: &str = "production";

/// `ring3`.
pub fn ring(i: usize) -> String {
    format!("ring{i}")
}

pub fn run(args: ClusterArgs) -> Result<()> {
    let all = args.only.is_empty();
    let wants = |what: &str| all || args.only.iter().any(|o| o == what);
    if [
        args.rings,
        args.role_size,
        args.changes,
        args.watchers,
        args.daemons,
        args.passes,
    ]
    .contains(&0)
    {
        bail!(
            "--rings, --role-size, --changes, --watchers, --daemons and --passes must be at least 1"
        );
    }
    if args.nodes <= args.role_size {
        bail!("--nodes must be more than --role-size: the joiner comes from another role");
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("cm-bench cluster: in-process server (SQLite) on 127.0.0.1, {cores} cores");
    if wants("pass") {
        with_server(|server, runtime| runtime.block_on(pass(server, &args)))?;
    }
    if wants("churn") {
        with_server(|server, runtime| runtime.block_on(crate::watchers::churn(server, &args)))?;
    }
    if wants("daemons") {
        let binary = crate::agent::binary(args.agent.as_deref())?;
        with_server(|server, runtime| {
            runtime.block_on(crate::daemons::follow(server, &args, &binary))
        })?;
    }
    Ok(())
}

/// A fresh server and a client runtime for one measurement.
fn with_server(f: impl FnOnce(&BenchServer, &tokio::runtime::Runtime) -> Result<()>) -> Result<()> {
    let server = BenchServer::start(None, 2)?;
    let runtime = crate::cpu::client_runtime(2)?;
    let result = f(&server, &runtime);
    runtime.shutdown_timeout(Duration::from_secs(5));
    server.stop();
    result
}

/// Push one `peersN` cookbook per ring (declaring and listing `ringN`),
/// set the environment and one role per ring running it. `dir` holds the
/// cookbooks' sources; `extra_roles` are set as given (YAML).
pub async fn seed(server: &BenchServer, dir: &Path, rings: usize) -> Result<()> {
    let admin = server.admin().await?;
    for i in 0..rings {
        push_cookbook(admin.clone(), &peers_cookbook(dir, i)?).await?;
        set_role(server, format!("name: {}\nrun_list: [peers{i}]\n", ring(i))).await?;
    }
    EnvironmentsClient::new(admin)
        .set(Document {
            yaml: format!(
                "name: {ENVIRONMENT}\nsplay_seconds: 0\nunreachable_after_seconds: 86400\n\
                 expire_after_seconds: 172800\n"
            ),
            ..Default::default()
        })
        .await
        .context("setting the environment")?;
    Ok(())
}

pub async fn set_role(server: &BenchServer, yaml: String) -> Result<()> {
    RolesClient::new(server.admin().await?)
        .set(Document {
            yaml,
            ..Default::default()
        })
        .await
        .context("setting a role")?;
    Ok(())
}

/// Cookbook `peersN`: reads `ringN` and writes its members' names, one a
/// line, to `{{attrs.peers.dir}}/members`.
fn peers_cookbook(dir: &Path, i: usize) -> Result<PathBuf> {
    let root = dir.join(format!("peers{i}"));
    let files = [
        (
            "metadata.yaml".to_string(),
            format!("name: peers{i}\nversion: 1.0.0\ncluster: [ring{i}]\n"),
        ),
        (
            "attributes.yaml".into(),
            "peers:\n  dir: /nonexistent\n".into(),
        ),
        (
            "recipes/default.yaml".into(),
            "- directory: \"{{attrs.peers.dir}}\"\n\
             - template: \"{{attrs.peers.dir}}/members\"\n  source: members.hbs\n"
                .into(),
        ),
        (
            "templates/members.hbs".into(),
            format!("{{{{#each cluster.ring{i}}}}}{{{{name}}}}\n{{{{/each}}}}"),
        ),
    ];
    for (rel, text) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().context("a file in a directory")?)?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(root)
}

/// Write nodes straight into the store (no agent behind them): `name(i)`
/// for `i` in `range`, with the roles `roles(i)`.
pub async fn register(
    server: &BenchServer,
    range: std::ops::Range<usize>,
    name: fn(usize) -> String,
    roles: impl Fn(usize) -> Vec<String>,
) -> Result<()> {
    let expires = cm_server::state::now() + 90 * 86400;
    for i in range {
        let e = NodeEnrollment {
            name: name(i),
            facts_json: crate::fleet::facts(i),
            cert_serial: format!("c0{i:030x}"),
            cert_expires_at: expires,
            now: cm_server::state::now(),
        };
        let state = server.state.clone();
        let roles = roles(i);
        server
            .run(async move {
                state
                    .store
                    .enroll_node(&e, ENVIRONMENT, &roles, "cm-bench")
                    .await
                    .with_context(|| format!("registering {}", e.name))
            })
            .await??;
    }
    Ok(())
}

/// A join (`assign`) or a leave (`unassign`) of `node` in `role`, as the
/// Nodes RPCs make it: commit, then `State::changed`. Returns the instant
/// of the commit and, once the pass that follows has finished, how long
/// that pass took from the commit and how many Watch events it sent.
pub async fn membership_change(
    server: &BenchServer,
    node: String,
    role: String,
    join: bool,
    wait_for_pass: bool,
) -> Result<(Instant, Option<(Duration, u64)>)> {
    let state = server.state.clone();
    server
        .run(async move {
            let published = state.hub.published();
            let saved = match join {
                true => state.store.assign_role(&node, &role, "cm-bench").await,
                false => state.store.unassign_role(&node, &role, "cm-bench").await,
            }
            .with_context(|| format!("{node} joining or leaving {role}"))?;
            let committed = Instant::now();
            if !saved.changed {
                bail!(
                    "{node} was already {} {role}",
                    if join { "in" } else { "out of" }
                );
            }
            state.changed(&format!("node {node} role {role}")).await;
            if !wait_for_pass {
                return Ok((committed, None));
            }
            state.recompute.settled().await;
            let events = state.hub.published() - published;
            Ok((committed, Some((committed.elapsed(), events))))
        })
        .await?
}

fn pass_node(i: usize) -> String {
    format!("pass-{i:05}")
}

/// The background pass at `--nodes` when one role of `--role-size` changes.
async fn pass(server: &BenchServer, args: &ClusterArgs) -> Result<()> {
    let dir = tempfile::tempdir().context("a temp dir")?;
    let rings = args.nodes.div_ceil(args.role_size);
    seed(server, dir.path(), rings).await?;
    let started = Instant::now();
    let size = args.role_size;
    register(server, 0..args.nodes, pass_node, |i| vec![ring(i / size)]).await?;
    println!(
        "\npass: {} nodes in {rings} roles of {size} (each member's plan lists its role), \
         registered in {:.1} s",
        args.nodes,
        started.elapsed().as_secs_f64()
    );
    let state = server.state.clone();
    server
        .run(async move {
            state.changed("cm-bench: first plans").await;
            state.recompute.settled().await;
        })
        .await?;
    // The joiner: a node of another role joining ring0 and leaving it again.
    let joiner = pass_node(args.nodes - 1);
    let (mut joins, mut leaves) = (Samples::default(), Samples::default());
    let mut events = (0, 0);
    for _ in 0..args.passes {
        let (_, pass) = membership_change(server, joiner.clone(), ring(0), true, true).await?;
        let (took, sent) = pass.context("a pass")?;
        joins.record(took);
        events.0 = sent;
        let (_, pass) = membership_change(server, joiner.clone(), ring(0), false, true).await?;
        let (took, sent) = pass.context("a pass")?;
        leaves.record(took);
        events.1 = sent;
    }
    let quiet = crate::fleet::change_burst(server, 1).await?;
    print_line(
        &format!(
            "a node joins a role of {size}: commit → pass done ({} events)",
            events.0
        ),
        joins,
    );
    print_line(
        &format!("it leaves again: commit → pass done ({} events)", events.1),
        leaves,
    );
    println!(
        "  a change that moves no plan: pass {} ({} pass)",
        ms(quiet.settled),
        quiet.passes
    );
    Ok(())
}

/// `  what   p50 .. (p99 .., max .., n samples)`.
pub fn print_line(what: &str, samples: Samples) {
    let s = samples.summary(Duration::ZERO);
    println!(
        "  {what:<60} p50 {:>8}  p99 {:>8}  max {:>8}  ({} samples)",
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
        s.requests
    );
}
