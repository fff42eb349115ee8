//! `cm-bench agent`: the figures docs/agent.md gives for the agent, measured
//! the same way every time. A real cm-agent binary (the one to ship, at any
//! path) runs against an in-process server on 127.0.0.1 with a small `demo`
//! cookbook (a directory, a file and a template, their paths from the
//! role's attributes, all under the bench's temp dir): `run --once` on fresh
//! nodes and again unchanged, then a daemon whose idle memory is read from
//! /proc and which follows role changes made through the server's store.
//!
//! It fails on wrong answers only: a run that fails or converges the wrong
//! thing, a daemon that misses a change or does not stop cleanly. How slow
//! anything is only gets printed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cm_proto::v1::environments_client::EnvironmentsClient;
use cm_proto::v1::roles_client::RolesClient;
use cm_proto::v1::tokens_client::TokensClient;
use cm_proto::v1::{CreateTokenRequest, Document};
use cm_server::store::DocKind;

use crate::fleet::push_cookbook;
use crate::node::{AgentNode, Daemon, Memory, RunOnce};
use crate::server::BenchServer;
use crate::stats::{Samples, ms};

/// `cm-bench agent` options.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// The cm-agent binary to measure; default: the one built next to
    /// cm-bench (`cargo build --profile agent -p cm-agent` makes
    /// target/agent/cm-agent, the binary nodes get).
    #[arg(long)]
    pub agent: Option<PathBuf>,
    /// Fresh nodes: each runs `run --once` twice (enroll, sync, converge;
    /// then unchanged).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Role changes the daemon follows.
    #[arg(long, default_value_t = 10)]
    pub changes: usize,
    /// Seconds the daemon stays idle after its first converge before its
    /// memory is read (its blocking thread exits 10 s after a run).
    #[arg(long, default_value_t = 15)]
    pub idle: u64,
    /// Milliseconds between reads of the daemon's log while waiting for a
    /// line: the latencies are measured to within this.
    #[arg(long, default_value_t = 5)]
    pub poll_ms: u64,
}

/// The role every bench node gets, and its environment.
const ROLE: &str = "bench-agent";
const ENVIRONMENT: &str = "production";

pub fn run(args: AgentArgs) -> Result<()> {
    let binary = binary(args.agent.as_deref())?;
    if args.runs == 0 || args.changes == 0 {
        bail!("--runs and --changes must be at least 1");
    }
    let server = BenchServer::start(None, 2)?;
    let runtime = crate::cpu::client_runtime(2)?;
    let result = runtime.block_on(measure(&server, &args, &binary));
    runtime.shutdown_timeout(Duration::from_secs(5));
    server.stop();
    result
}

async fn measure(server: &BenchServer, args: &AgentArgs, binary: &Path) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("cm-bench-agent.")
        .tempdir()
        .context("creating a temp dir")?;
    let out = dir.path().join("out");
    let poll = Duration::from_millis(args.poll_ms.max(1));
    let token = seed(server, dir.path(), &out, args.runs + 1).await?;
    let settings = format!(
        "server: {}\nca_fingerprint: {}\n",
        server.url(),
        server.state.pki.ca().fingerprint()
    );
    let size = std::fs::metadata(binary)
        .with_context(|| format!("reading {}", binary.display()))?
        .len();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "cm-bench agent: {} against an in-process server (SQLite) on 127.0.0.1, the demo \
         cookbook (a directory, a file, a template), {cores} cores, the daemon's log read \
         every {} ms",
        binary.display(),
        poll.as_millis()
    );
    println!(
        "  binary size                                  {size} bytes ({:.1} MiB)",
        size as f64 / (1 << 20) as f64
    );

    let mut fresh = Samples::default();
    let mut unchanged = Samples::default();
    for i in 0..args.runs {
        remove_dir(&out)?;
        let node = AgentNode::fresh(
            binary,
            &dir.path().join(format!("node-{i}")),
            &format!("bench-agent-{i}"),
            &settings,
            &token,
        )?;
        let first = node.run_once().await?;
        expect_run(&node, &first, "new_plan", 3)?;
        expect_files(&out, "hello")?;
        let again = node.run_once().await?;
        expect_run(&node, &again, "drift_repair", 0)?;
        fresh.record(first.wall);
        unchanged.record(again.wall);
    }
    print_summary("run --once, fresh node (enroll, sync, converge)", fresh);
    print_summary("run --once, unchanged second run", unchanged);

    remove_dir(&out)?;
    let node = AgentNode::fresh(
        binary,
        &dir.path().join("daemon"),
        "bench-agent-daemon",
        &settings,
        &token,
    )?;
    let started = Instant::now();
    let mut daemon = node.spawn_daemon()?;
    let first = daemon
        .wait_for("converged", converged, 1, poll, Duration::from_secs(60))
        .await?;
    expect_files(&out, "hello")?;
    println!(
        "  daemon, fresh node: start to first converged {}",
        ms(first - started)
    );
    tokio::time::sleep(Duration::from_secs(args.idle)).await;
    let idle = daemon.memory()?;
    print_memory(
        &format!("daemon, idle {} s after its first converge", args.idle),
        &idle,
    );

    let (wake, done) = follow_role_changes(server, &mut daemon, &out, args.changes, poll).await?;
    print_summary("role change committed → converging (plan changed)", wake);
    print_summary("role change committed → converged", done);
    let after = daemon.memory()?;
    println!(
        "  peak RSS of the daemon (VmHWM) after {} changes: {}",
        args.changes,
        mib(after.vm_hwm)
    );
    daemon.stop().await
}

/// The demo cookbook, an unpinned production environment with splay 0,
/// the role writing into `out`, and a token for `uses` enrollments.
async fn seed(server: &BenchServer, dir: &Path, out: &Path, uses: usize) -> Result<String> {
    let admin = server.admin().await?;
    push_cookbook(admin.clone(), &demo_cookbook(dir)?).await?;
    EnvironmentsClient::new(admin.clone())
        .set(Document {
            yaml: format!("name: {ENVIRONMENT}\nsplay_seconds: 0\n"),
            ..Default::default()
        })
        .await
        .context("setting the production environment")?;
    RolesClient::new(admin.clone())
        .set(Document {
            yaml: demo_role(out, "hello"),
            ..Default::default()
        })
        .await
        .context("setting the role")?;
    let token = TokensClient::new(admin)
        .create(CreateTokenRequest {
            roles: vec![ROLE.into()],
            environment: ENVIRONMENT.into(),
            ttl_seconds: 3600,
            uses: u32::try_from(uses).context("too many runs for one token")?,
        })
        .await
        .context("creating an enrollment token")?
        .into_inner()
        .token;
    Ok(token)
}

/// Change the role's message `count` times; for each, the time from the
/// store's commit to the daemon's `converging cause="plan changed"` and to
/// its next `converged`.
async fn follow_role_changes(
    server: &BenchServer,
    daemon: &mut Daemon,
    out: &Path,
    count: usize,
    poll: Duration,
) -> Result<(Samples, Samples)> {
    let (mut wake, mut done) = (Samples::default(), Samples::default());
    let timeout = Duration::from_secs(60);
    for i in 1..=count {
        let message = format!("change-{i}");
        let committed = commit_role(server, ROLE, demo_role(out, &message)).await?;
        let woke = daemon
            .wait_for("converging after a plan change", woken, i, poll, timeout)
            .await?;
        let converged_at = daemon
            .wait_for("converged", converged, i + 1, poll, timeout)
            .await?;
        expect_files(out, &message)?;
        wake.record(woke - committed);
        done.record(converged_at - committed);
        // The next change finds the daemon waiting, not finishing its run.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok((wake, done))
}

/// What the Roles.Set RPC does, called on the server's state directly so
/// that the clock starts when the new role is committed: validate, store,
/// then `State::changed`. Returns the instant of the commit.
pub async fn commit_role(
    server: &BenchServer,
    role: &'static str,
    yaml: String,
) -> Result<Instant> {
    let state = server.state.clone();
    server
        .run(async move {
            cm_model::role::Role::parse(Path::new("role.yaml"), &yaml)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let saved = state
                .store
                .put_document(DocKind::Role, role, &yaml, "cm-bench")
                .await
                .context("storing the role")?;
            let committed = Instant::now();
            if !saved.changed {
                bail!("the role did not change");
            }
            state
                .changed_keeping_view(&format!("role {role} changed"))
                .await;
            Ok(committed)
        })
        .await?
}

/// The cm-agent to measure: `path`, or the one built next to cm-bench.
pub fn binary(path: Option<&Path>) -> Result<PathBuf> {
    let binary = match path {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .context("cm-bench's directory")?
            .join("cm-agent"),
    };
    if !binary.is_file() {
        bail!(
            "{} is not built: run `cargo build --profile agent -p cm-agent` (or --release) \
             first, and pass --agent PATH",
            binary.display()
        );
    }
    Ok(binary)
}

/// The daemon's `converged` line (not `converging`).
pub fn converged(line: &str) -> bool {
    line.split_whitespace().any(|w| w == "converged")
}

/// The daemon starting a converge because the watch stream said so.
fn woken(line: &str) -> bool {
    line.contains("converging cause=\"plan changed\"")
}

/// A successful run with the expected cause, nothing fetched on an
/// unchanged run, and `changed` of the demo's three resources changed.
fn expect_run(node: &AgentNode, run: &RunOnce, cause: &str, changed: u64) -> Result<()> {
    let j = &run.json;
    let report = &j["report"];
    let fetched = j["blobs_fetched"].as_u64();
    let ok = j["node"] == node.name.as_str()
        && j["cause"] == cause
        && report["resources_total"].as_u64() == Some(3)
        && report["resources_changed"].as_u64() == Some(changed)
        && (changed == 0) == (fetched == Some(0));
    if !ok {
        bail!(
            "{}: expected a {cause} run changing {changed} of 3 resources, got {j}",
            node.name
        );
    }
    Ok(())
}

/// The demo's files in `out` carry `message`.
fn expect_files(out: &Path, message: &str) -> Result<()> {
    for (file, expected) in [
        ("message", format!("{message}\n")),
        ("node.conf", format!("cookbook 1.0.0, role {message}\n")),
    ] {
        let path = out.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        if text != expected {
            bail!("{}: expected {expected:?}, found {text:?}", path.display());
        }
    }
    Ok(())
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Write the `demo` cookbook under `dir`: a directory, a file and a
/// template, all under `attrs.demo.dir`.
fn demo_cookbook(dir: &Path) -> Result<PathBuf> {
    let root = dir.join("demo");
    let files = [
        (
            "metadata.yaml",
            "name: demo\nversion: 1.0.0\ndescription: cm-bench agent's cookbook\n",
        ),
        (
            "attributes.yaml",
            "demo:\n  dir: /nonexistent\n  message: hello\n",
        ),
        (
            "recipes/default.yaml",
            "- directory: \"{{attrs.demo.dir}}\"\n\
             - file: \"{{attrs.demo.dir}}/message\"\n  content: \"{{attrs.demo.message}}\\n\"\n\
             - template: \"{{attrs.demo.dir}}/node.conf\"\n  source: node.conf.hbs\n",
        ),
        (
            "templates/node.conf.hbs",
            "cookbook 1.0.0, role {{attrs.demo.message}}\n",
        ),
    ];
    for (rel, text) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("every file here is in a directory"))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(root)
}

/// The role: the demo cookbook writing `message` into `out`.
fn demo_role(out: &Path, message: &str) -> String {
    format!(
        "name: {ROLE}\nrun_list: [demo]\nattributes:\n  demo:\n    dir: {}\n    message: {message}\n",
        out.display()
    )
}

fn print_summary(what: &str, samples: Samples) {
    let s = samples.summary(Duration::ZERO);
    println!(
        "  {what:<52} median {:>8}  (min {}, max {}, {} samples)",
        ms(s.p50),
        ms(s.min),
        ms(s.max),
        s.requests
    );
}

fn print_memory(when: &str, m: &Memory) {
    println!(
        "  {when:<52} VmRSS {} (RssAnon {}, RssFile {}), {} thread(s)",
        mib(m.vm_rss),
        mib(m.rss_anon),
        mib(m.rss_file),
        m.threads
    );
}

/// KiB from /proc as `8.6 MiB`.
fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
