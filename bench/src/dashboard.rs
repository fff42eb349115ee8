//! The dashboard at fleet size: a server with `--nodes` nodes, each with a
//! last run (one in twenty failed, with a report saying why), then each
//! page fetched `--requests` times over HTTPS with a session, one request
//! at a time: the time to the last byte, as a browser waits for it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cm_proto::v1::admins_client::AdminsClient;
use cm_server::store::RunRow;

use crate::cluster::print_line;
use crate::fleet::{ROLE, node_name, register_directly, seed};
use crate::server::BenchServer;
use crate::stats::Samples;

#[derive(clap::Args)]
pub struct DashboardArgs {
    /// Nodes in the fleet.
    #[arg(long, default_value_t = 10_000)]
    nodes: usize,
    /// Requests per page.
    #[arg(long, default_value_t = 30)]
    requests: usize,
    /// postgres://... instead of SQLite in a temp dir.
    #[arg(long, env = "CM_TEST_POSTGRES_URL")]
    database: Option<String>,
}

pub fn run(args: DashboardArgs) -> Result<()> {
    if args.nodes < 10 || args.requests == 0 {
        bail!("--nodes must be at least 10 and --requests at least 1");
    }
    let server = BenchServer::start(args.database.as_deref(), 2)?;
    let runtime = crate::cpu::client_runtime(2)?;
    let result = runtime.block_on(measure(&server, &args));
    runtime.shutdown_timeout(Duration::from_secs(5));
    server.stop();
    result
}

async fn measure(server: &BenchServer, args: &DashboardArgs) -> Result<()> {
    let engine = if args.database.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "cm-bench dashboard: {} nodes, {engine}, in-process server",
        args.nodes
    );
    seed(server, 1).await?;
    let took = register_directly(server, 0..args.nodes, 8).await?;
    println!(
        "  registered {} nodes in {:.1} s",
        args.nodes,
        took.as_secs_f64()
    );
    let took = report_runs(server, args.nodes).await?;
    println!("  reported one run per node in {:.1} s", took.as_secs_f64());

    let link = AdminsClient::new(server.admin().await?)
        .dashboard_link(cm_proto::v1::Empty {})
        .await
        .context("asking for a login link")?
        .into_inner()
        .url;
    let base = link.split("/login").next().unwrap_or_default().to_string();
    let client = client(server)?;
    let token = link.split("token=").nth(1).context("a token in the link")?;
    let login = client
        .post(format!("{base}/login"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!("token={token}"))
        .send()
        .await
        .context("logging in")?;
    let cookie = login
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("the login set no cookie")?
        .to_string();
    let middle = node_name(args.nodes / 2);
    let pages = [
        ("fleet, first page", "/".to_string()),
        (
            "fleet, last page",
            format!("/?page={}", (args.nodes - 1) / 50),
        ),
        ("fleet, failed runs only", "/?run=failed".to_string()),
        (
            "fleet, search by name",
            format!("/?q={}", &middle[..middle.len() - 1]),
        ),
        (
            "fleet, role and state",
            format!("/?role={ROLE}&state=active"),
        ),
        ("node", format!("/nodes/{middle}")),
        ("roles", "/roles".to_string()),
        ("cookbooks", "/cookbooks".to_string()),
        ("audit", "/audit".to_string()),
        ("cluster view, first 100 members", "/cluster".to_string()),
        (
            "cluster view, last page",
            format!("/cluster?role={ROLE}&page={}", (args.nodes - 1) / 100),
        ),
    ];
    for (what, path) in pages {
        let mut samples = Samples::default();
        let mut bytes = 0;
        for _ in 0..args.requests {
            let started = Instant::now();
            let answer = client
                .get(format!("{base}{path}"))
                .header(reqwest::header::COOKIE, &cookie)
                .send()
                .await
                .with_context(|| format!("GET {path}"))?;
            if !answer.status().is_success() {
                bail!("GET {path}: {}", answer.status());
            }
            bytes = answer
                .bytes()
                .await
                .with_context(|| format!("GET {path}"))?
                .len();
            samples.record(started.elapsed());
        }
        print_line(&format!("{what} ({} KiB)", bytes / 1024), samples);
    }
    Ok(())
}

/// One run per node, straight into the store: every twentieth failed.
async fn report_runs(server: &BenchServer, nodes: usize) -> Result<Duration> {
    let state = server.state.clone();
    server
        .run(async move {
            let started = Instant::now();
            let now = cm_server::state::now();
            for i in 0..nodes {
                let failed = i % 20 == 0;
                let report = match failed {
                    true => serde_json::json!({"status": "failed", "resources": [
                        {"type": "service", "name": "memcached", "action": "start",
                         "changed": false, "duration_ms": 40,
                         "error": "exit 1: Job for memcached.service failed"}]}),
                    false => serde_json::json!({"status": "success", "resources": []}),
                };
                let run = RunRow {
                    node: node_name(i),
                    at: now,
                    status: if failed { "failed" } else { "success" }.into(),
                    resources_total: 12,
                    resources_failed: i64::from(failed),
                    duration_ms: 20,
                    cause: "new_plan".into(),
                    report_json: report.to_string(),
                    received_at: now,
                    ..RunRow::default()
                };
                state.store.insert_run(&run).await?;
            }
            Ok::<_, anyhow::Error>(started.elapsed())
        })
        .await?
}

/// HTTPS trusting the server's CA only.
fn client(server: &BenchServer) -> Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(server.state.pki.ca().cert_der().clone())
        .context("the CA")?;
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    // HTTP/1.1, one request at a time: what each browser tab's fetch costs.
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("an HTTPS client")
}
