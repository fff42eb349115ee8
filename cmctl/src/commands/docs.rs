//! `cmctl role set|show|list|history|delete` and `cmctl env set|show|list|history|delete`.

use std::path::Path;

use anyhow::{Context, Result};
use cm_model::role::{Environment, Role};
use cm_proto::v1::environments_client::EnvironmentsClient;
use cm_proto::v1::roles_client::RolesClient;
use cm_proto::v1::{Document, Empty, Name};
use tonic::transport::Channel;

use crate::output::{self, Format};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Role,
    Environment,
}

/// Validate locally (same checks as the server), then store; with `force`
/// even when it leaves nodes without a plan.
pub async fn set(
    channel: Channel,
    kind: Kind,
    file: &Path,
    force: bool,
    format: Format,
) -> Result<()> {
    let yaml =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let name = match kind {
        Kind::Role => Role::parse(file, &yaml).map(|r| r.name),
        Kind::Environment => Environment::parse(file, &yaml).map(|e| e.name),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let doc = Document {
        name,
        yaml,
        force,
        ..Default::default()
    };
    let stored = match kind {
        Kind::Role => RolesClient::new(channel).set(doc).await?.into_inner(),
        Kind::Environment => EnvironmentsClient::new(channel)
            .set(doc)
            .await?
            .into_inner(),
    };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({"name": stored.name, "revision": stored.revision})
        ),
        Format::Human => println!("{} is at revision {}", stored.name, stored.revision),
    }
    Ok(())
}

pub async fn show(channel: Channel, kind: Kind, name: String, format: Format) -> Result<()> {
    let (doc, unpinned) = match kind {
        Kind::Role => (
            RolesClient::new(channel)
                .show(Name { name })
                .await?
                .into_inner(),
            Default::default(),
        ),
        Kind::Environment => {
            let v = EnvironmentsClient::new(channel)
                .show(Name { name })
                .await?
                .into_inner();
            (v.document.unwrap_or_default(), v.unpinned)
        }
    };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({"name": doc.name, "revision": doc.revision, "updated_at": doc.updated_at, "updated_by": doc.updated_by, "yaml": doc.yaml, "unpinned": unpinned})
        ),
        Format::Human => {
            println!(
                "# {} revision {}, {} by {}",
                doc.name,
                doc.revision,
                output::time(doc.updated_at),
                doc.updated_by
            );
            print!("{}", doc.yaml);
            if kind == Kind::Environment {
                if unpinned.is_empty() {
                    println!("# every cookbook is pinned");
                }
                for (c, v) in &unpinned {
                    println!("# unpinned: {c} (resolves to its newest version that fits, now {v})");
                }
            }
        }
    }
    Ok(())
}

pub async fn list(
    channel: Channel,
    kind: Kind,
    history_of: Option<String>,
    format: Format,
) -> Result<()> {
    let docs = match (kind, history_of) {
        (Kind::Role, None) => RolesClient::new(channel).list(Empty {}).await?,
        (Kind::Role, Some(name)) => RolesClient::new(channel).history(Name { name }).await?,
        (Kind::Environment, None) => EnvironmentsClient::new(channel).list(Empty {}).await?,
        (Kind::Environment, Some(name)) => {
            EnvironmentsClient::new(channel)
                .history(Name { name })
                .await?
        }
    }
    .into_inner()
    .documents;
    let rows = docs
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.revision.to_string(),
                output::time(d.updated_at),
                d.updated_by.clone(),
            ]
        })
        .collect();
    let json: Vec<_> = docs
        .iter()
        .map(|d| serde_json::json!({"name": d.name, "revision": d.revision, "updated_at": d.updated_at, "updated_by": d.updated_by, "yaml": d.yaml}))
        .collect();
    output::print(format, &["NAME", "REVISION", "UPDATED", "BY"], rows, &json);
    Ok(())
}

/// Delete one nobody uses; the server names the users otherwise.
pub async fn delete(channel: Channel, kind: Kind, name: String, format: Format) -> Result<()> {
    let request = Name { name: name.clone() };
    let what = match kind {
        Kind::Role => {
            RolesClient::new(channel).delete(request).await?;
            "role"
        }
        Kind::Environment => {
            EnvironmentsClient::new(channel).delete(request).await?;
            "environment"
        }
    };
    match format {
        Format::Json => println!("{}", serde_json::json!({"deleted": what, "name": name})),
        Format::Human => println!("{what} {name} deleted"),
    }
    Ok(())
}
