//! Filling the server with a fleet: the repository's memcached cookbook,
//! role and production environment pushed through the admin gRPC API (the
//! calls cmctl makes), nodes enrolled through the real Enroll RPC with their
//! own keys and CSRs, and the rest of the fleet registered straight into the
//! store.
//!
//! Why two ways: each Enroll costs a CSR signature and a TLS connection,
//! too slow for 10,000 nodes in a bench run, so the identities the clients
//! use are real enrolled certificates and the remaining nodes are rows
//! written with `Store::enroll_node` (no certificate anyone holds),
//! followed by one `changed` and its background pass, so that every node
//! has a recorded plan hash, as after any change on a live server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cm_model::cookbook::{Cookbook, read_tree};
use cm_proto::convert::manifest_to_wire;
use cm_proto::v1::agent_client::AgentClient;
use cm_proto::v1::cookbooks_client::CookbooksClient;
use cm_proto::v1::environments_client::EnvironmentsClient;
use cm_proto::v1::roles_client::RolesClient;
use cm_proto::v1::tokens_client::TokensClient;
use cm_proto::v1::{
    BlobChunk, CommitRequest, CreateTokenRequest, Document, EnrollRequest, MissingBlobsRequest,
};
use cm_server::store::NodeEnrollment;
use tonic::transport::Channel;

use crate::server::BenchServer;

/// The role and environment every benchmark node gets.
pub const ROLE: &str = "memcached";
pub const ENVIRONMENT: &str = "production";

/// The repository root (cookbooks/, roles/, environments/).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ sits in the repository")
        .to_path_buf()
}

/// A node the load generator can act as: its enrolled certificate and key.
pub struct NodeIdentity {
    pub name: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Node names: `bench-00042`, sortable, valid everywhere.
pub fn node_name(i: usize) -> String {
    format!("bench-{i:05}")
}

/// A node's facts: its host name and a unique private address.
pub fn facts(i: usize) -> String {
    serde_json::json!({
        "hostname": node_name(i),
        "ipaddress": format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
        "platform": "debian",
    })
    .to_string()
}

/// Push a cookbook directory as cmctl does: ask which blobs are missing,
/// upload those, commit the manifest.
pub async fn push_cookbook(admin: Channel, dir: &Path) -> Result<()> {
    let cookbook = Cookbook::load_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let files = read_tree(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut client = CookbooksClient::new(admin);
    let digests = cookbook
        .manifest
        .entries
        .iter()
        .map(|e| e.sha256.clone())
        .collect();
    let missing = client
        .missing_blobs(MissingBlobsRequest { sha256: digests })
        .await?
        .into_inner()
        .sha256;
    for e in cookbook
        .manifest
        .entries
        .iter()
        .filter(|e| missing.contains(&e.sha256))
    {
        let data = files.get(&e.path).context("file vanished")?.bytes.clone();
        let chunk = BlobChunk {
            sha256: e.sha256.clone(),
            size: e.size,
            data,
        };
        client
            .upload_blob(tokio_stream::iter([chunk]))
            .await
            .with_context(|| format!("uploading {}", e.path))?;
    }
    let manifest = manifest_to_wire(&cookbook.manifest);
    client
        .commit(CommitRequest {
            name: cookbook.metadata.name.clone(),
            version: cookbook.metadata.version.to_string(),
            manifest,
        })
        .await
        .with_context(|| format!("committing {}", dir.display()))?;
    Ok(())
}

/// The memcached cookbook, role and production environment from the
/// repository, and a token for `uses` enrollments into them.
pub async fn seed(server: &BenchServer, uses: usize) -> Result<String> {
    let admin = server.admin().await?;
    push_cookbook(admin.clone(), &repo().join("cookbooks/memcached")).await?;
    let read =
        |p: &str| std::fs::read_to_string(repo().join(p)).with_context(|| format!("reading {p}"));
    RolesClient::new(admin.clone())
        .set(Document {
            yaml: read("roles/memcached.yaml")?,
            ..Default::default()
        })
        .await
        .context("setting the memcached role")?;
    EnvironmentsClient::new(admin.clone())
        .set(Document {
            yaml: read("environments/production.yaml")?,
            ..Default::default()
        })
        .await
        .context("setting the production environment")?;
    let token = TokensClient::new(admin)
        .create(CreateTokenRequest {
            roles: vec![ROLE.into()],
            environment: ENVIRONMENT.into(),
            ttl_seconds: 24 * 3600,
            uses: u32::try_from(uses).context("too many enrollments for one token")?,
        })
        .await
        .context("creating an enrollment token")?
        .into_inner()
        .token;
    Ok(token)
}

/// Enroll node `i` through the Enroll RPC with a fresh key and CSR.
pub async fn enroll(
    agent: &mut AgentClient<Channel>,
    token: &str,
    i: usize,
) -> Result<NodeIdentity> {
    let name = node_name(i);
    let (key_pem, csr_pem) = cm_server::pki::new_key_and_csr(&name)?;
    let r = agent
        .enroll(EnrollRequest {
            token: token.to_string(),
            node_name: name.clone(),
            csr_pem,
            facts_json: facts(i),
            agent_version: cm_proto::VERSION.into(),
        })
        .await
        .with_context(|| format!("enrolling {name}"))?
        .into_inner();
    Ok(NodeIdentity {
        name,
        cert_pem: r.certificate_pem,
        key_pem,
    })
}

/// Enroll nodes `range` one after another through the RPC, as a fleet's
/// agents do at boot; returns their identities and the time it took.
pub async fn enroll_many(
    server: &BenchServer,
    token: &str,
    range: std::ops::Range<usize>,
) -> Result<(Vec<NodeIdentity>, Duration)> {
    let mut agent = AgentClient::new(server.connect(None).await?);
    let started = Instant::now();
    let mut out = Vec::with_capacity(range.len());
    for i in range {
        out.push(enroll(&mut agent, token, i).await?);
    }
    Ok((out, started.elapsed()))
}

/// Write nodes `range` straight into the store (no RPC, no plan
/// computation), `parallel` at a time. Returns the time it took.
pub async fn register_directly(
    server: &BenchServer,
    range: std::ops::Range<usize>,
    parallel: usize,
) -> Result<Duration> {
    let expires = cm_server::state::now() + 90 * 86400;
    let nodes = range
        .map(|i| NodeEnrollment {
            name: node_name(i),
            facts_json: facts(i),
            // Not a certificate anyone holds: only the serial column.
            cert_serial: format!("b0{i:030x}"),
            cert_expires_at: expires,
            now: cm_server::state::now(),
        })
        .collect();
    register(server, nodes, parallel).await
}

/// Write `nodes` into the store in the benchmark's role and environment,
/// `parallel` at a time. Returns the time it took.
pub async fn register(
    server: &BenchServer,
    nodes: Vec<NodeEnrollment>,
    parallel: usize,
) -> Result<Duration> {
    let started = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(nodes));
    let mut tasks = Vec::new();
    for _ in 0..parallel.max(1) {
        let state = server.state.clone();
        let queue = queue.clone();
        tasks.push(server.run(async move {
            loop {
                let Some(e) = queue.lock().expect("not poisoned").pop() else {
                    return Ok::<_, anyhow::Error>(());
                };
                state
                    .store
                    .enroll_node(&e, ENVIRONMENT, &[ROLE.to_string()], "cm-bench")
                    .await
                    .with_context(|| format!("registering {}", e.name))?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

/// What one change costs on a server with this fleet: the time
/// `State::changed` takes to return (what the admin call waits for) and the
/// time until its background pass has re-resolved every node's plan.
pub async fn recompute_plans(server: &BenchServer) -> Result<(Duration, Duration)> {
    let burst = change_burst(server, 1).await?;
    Ok((burst.acknowledged, burst.settled))
}

/// A burst of changes and what the background recomputation made of it.
#[derive(Debug, Clone, Copy)]
pub struct Burst {
    /// Until every `State::changed` of the burst returned.
    pub acknowledged: Duration,
    /// Until the passes covering all of them finished.
    pub settled: Duration,
    /// How many passes that took.
    pub passes: u64,
}

/// `changes` calls of `State::changed` back to back (as that many admin
/// changes would make, without their commits), then wait for the
/// background recomputation to settle.
pub async fn change_burst(server: &BenchServer, changes: usize) -> Result<Burst> {
    let state = server.state.clone();
    server
        .run(async move {
            let passes = state.recompute.passes();
            let started = Instant::now();
            for i in 0..changes {
                state.changed(&format!("cm-bench change {i}")).await;
            }
            let acknowledged = started.elapsed();
            state.recompute.settled().await;
            Burst {
                acknowledged,
                settled: started.elapsed(),
                passes: state.recompute.passes() - passes,
            }
        })
        .await
}

/// Check that the fleet is what the figures claim.
pub async fn check_fleet(server: &BenchServer, nodes: usize) -> Result<()> {
    let state = server.state.clone();
    let count = server
        .run(async move { state.store.nodes(None, None).await.map(|n| n.len()) })
        .await??;
    if count != nodes {
        bail!("the server has {count} nodes, expected {nodes}");
    }
    Ok(())
}
