//! `cmctl push cookbook DIR` and `cmctl cookbook list|show|delete`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use cm_model::cookbook::{Cookbook, read_tree};
use cm_model::features::required_agent;
use cm_proto::convert::manifest_to_wire;
use cm_proto::v1::cookbooks_client::CookbooksClient;
use cm_proto::v1::{
    BlobChunk, CommitRequest, CookbookId, ListCookbooksRequest, MissingBlobsRequest,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tonic::transport::Channel;

use crate::output::{self, Format};

const CHUNK: usize = 1 << 20;

#[derive(Serialize)]
struct PushResult {
    name: String,
    version: String,
    files: usize,
    uploaded: usize,
    uploaded_bytes: u64,
    already_stored: usize,
    created: bool,
    /// The lowest cm-agent that compiles it, computed as the server does.
    min_agent: String,
}

/// Validate locally, upload only what the server lacks, then commit.
pub async fn push(channel: Channel, dir: &Path, format: Format) -> Result<()> {
    let cookbook = Cookbook::load_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let files = read_tree(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let needs = required_agent(&cookbook);
    let mut client = CookbooksClient::new(channel).max_decoding_message_size(16 << 20);
    let digests: Vec<String> = cookbook
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
    let to_send: Vec<_> = cookbook
        .manifest
        .entries
        .iter()
        .filter(|e| missing.contains(&e.sha256))
        .fold(
            Vec::new(),
            |mut acc: Vec<&cm_model::manifest::ManifestEntry>, e| {
                if !acc.iter().any(|a| a.sha256 == e.sha256) {
                    acc.push(e);
                }
                acc
            },
        );
    let total: u64 = to_send.iter().map(|e| e.size).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
            .expect("a static template")
            .progress_chars("=> "),
    );
    bar.set_message(format!(
        "{}@{}",
        cookbook.metadata.name, cookbook.metadata.version
    ));
    if format == Format::Json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    for e in &to_send {
        let bytes = &files
            .get(&e.path)
            .with_context(|| format!("{} vanished while pushing", e.path))?
            .bytes;
        let mut chunks: Vec<BlobChunk> = bytes
            .chunks(CHUNK)
            .map(|c| BlobChunk {
                sha256: String::new(),
                size: 0,
                data: c.to_vec(),
            })
            .collect();
        if chunks.is_empty() {
            chunks.push(BlobChunk::default());
        }
        chunks[0].sha256 = e.sha256.clone();
        chunks[0].size = e.size;
        client
            .upload_blob(tokio_stream::iter(chunks))
            .await
            .with_context(|| format!("uploading {}", e.path))?;
        bar.inc(e.size);
    }
    bar.finish_and_clear();
    let manifest = manifest_to_wire(&cookbook.manifest);
    let created = client
        .commit(CommitRequest {
            name: cookbook.metadata.name.clone(),
            version: cookbook.metadata.version.to_string(),
            manifest,
        })
        .await?
        .into_inner()
        .created;
    let result = PushResult {
        name: cookbook.metadata.name.clone(),
        version: cookbook.metadata.version.to_string(),
        files: cookbook.manifest.entries.len(),
        uploaded: to_send.len(),
        uploaded_bytes: total,
        already_stored: cookbook.manifest.entries.len() - to_send.len(),
        created,
        min_agent: needs.agent.to_string(),
    };
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&result)?),
        Format::Human => println!(
            "{}@{}: {} files, {} uploaded ({} bytes), {} already stored; {}",
            result.name,
            result.version,
            result.files,
            result.uploaded,
            result.uploaded_bytes,
            result.already_stored,
            if created {
                "version created"
            } else {
                "identical version already there, nothing changed"
            }
        ),
    }
    if format == Format::Human && !needs.because.is_empty() {
        println!("needs {needs}");
    }
    Ok(())
}

pub async fn list(channel: Channel, name: Option<String>, format: Format) -> Result<()> {
    let versions = CookbooksClient::new(channel)
        .list(ListCookbooksRequest {
            name: name.unwrap_or_default(),
        })
        .await?
        .into_inner()
        .versions;
    let rows = versions
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                v.version.clone(),
                v.manifest.len().to_string(),
                output::time(v.created_at),
                v.pushed_by.clone(),
            ]
        })
        .collect();
    let json: Vec<_> = versions
        .iter()
        .map(|v| serde_json::json!({"name": v.name, "version": v.version, "files": v.manifest.len(), "created_at": v.created_at, "pushed_by": v.pushed_by}))
        .collect();
    output::print(
        format,
        &["NAME", "VERSION", "FILES", "PUSHED", "BY"],
        rows,
        &json,
    );
    Ok(())
}

pub async fn show(channel: Channel, name: String, version: String, format: Format) -> Result<()> {
    let v = CookbooksClient::new(channel)
        .show(CookbookId {
            name,
            version,
            force: false,
        })
        .await?
        .into_inner();
    let json = serde_json::json!({
        "name": v.name, "version": v.version, "description": v.description, "depends": v.depends,
        "created_at": v.created_at, "pushed_by": v.pushed_by,
        "min_agent": (!v.min_agent.is_empty()).then_some(&v.min_agent),
        "manifest": v.manifest.iter().map(|m| serde_json::json!({"path": m.path, "sha256": m.sha256, "size": m.size, "mode": format!("{:04o}", m.mode)})).collect::<Vec<_>>(),
    });
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!("{}@{}  {}", v.name, v.version, v.description);
    println!("pushed {} by {}", output::time(v.created_at), v.pushed_by);
    println!("{}", min_agent_line(&v.min_agent));
    for (k, req) in &v.depends {
        println!("depends {k} {req}");
    }
    let rows = v
        .manifest
        .iter()
        .map(|m| {
            vec![
                m.path.clone(),
                m.size.to_string(),
                format!("{:04o}", m.mode),
                m.sha256[..12].to_string(),
            ]
        })
        .collect::<Vec<_>>();
    println!(
        "{}",
        output::table(&["PATH", "SIZE", "MODE", "SHA256"], &rows)
    );
    Ok(())
}

/// What `cookbook show` says of the agent a version needs.
fn min_agent_line(min_agent: &str) -> String {
    if min_agent.is_empty() {
        "needs any cm-agent (pushed before servers recorded it: agents read its YAML as before)"
            .to_string()
    } else {
        format!("needs cm-agent >= {min_agent}")
    }
}

pub async fn delete(channel: Channel, name: String, version: String, force: bool) -> Result<()> {
    if version.is_empty() {
        bail!("name the version to delete");
    }
    CookbooksClient::new(channel)
        .delete(CookbookId {
            name: name.clone(),
            version: version.clone(),
            force,
        })
        .await?;
    println!("deleted {name}@{version}");
    Ok(())
}
