//! `cmctl token|secret|admin ...`: who and what may join and read.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cm_model::credential::Credential;
use cm_proto::v1::admins_client::AdminsClient;
use cm_proto::v1::secrets_client::SecretsClient;
use cm_proto::v1::tokens_client::TokensClient;
use cm_proto::v1::{
    Admin, AdminLevel, CreateTokenRequest, CreateTokenResponse, Empty, Name, SetSecretRequest,
};
use tonic::transport::Channel;

use crate::output::{self, Format};

pub async fn create_token(
    channel: Channel,
    roles: Vec<String>,
    env: String,
    ttl: u64,
    uses: u32,
) -> Result<CreateTokenResponse> {
    Ok(TokensClient::new(channel)
        .create(CreateTokenRequest {
            roles,
            environment: env,
            ttl_seconds: ttl,
            uses,
        })
        .await?
        .into_inner())
}

pub async fn token_create(
    channel: Channel,
    roles: Vec<String>,
    env: String,
    ttl: u64,
    uses: u32,
    format: Format,
) -> Result<()> {
    let t = create_token(channel, roles, env, ttl, uses).await?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({"id": t.id, "token": t.token, "expires_at": t.expires_at})
        ),
        Format::Human => {
            println!("{}", t.token);
            eprintln!("token {} expires {}", t.id, output::when(t.expires_at));
        }
    }
    Ok(())
}

pub async fn token_list(channel: Channel, format: Format) -> Result<()> {
    let tokens = TokensClient::new(channel)
        .list(Empty {})
        .await?
        .into_inner()
        .tokens;
    let rows = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.roles.join(","),
                t.environment.clone(),
                output::when(t.expires_at),
                t.uses_left.to_string(),
                if t.revoked {
                    "revoked".into()
                } else {
                    "".into()
                },
                t.created_by.clone(),
            ]
        })
        .collect();
    let json: Vec<_> = tokens
        .iter()
        .map(|t| serde_json::json!({"id": t.id, "roles": t.roles, "environment": t.environment, "expires_at": t.expires_at, "uses_left": t.uses_left, "revoked": t.revoked, "created_by": t.created_by}))
        .collect();
    output::print(
        format,
        &[
            "ID",
            "ROLES",
            "ENVIRONMENT",
            "EXPIRES",
            "USES LEFT",
            "",
            "BY",
        ],
        rows,
        &json,
    );
    Ok(())
}

pub async fn token_revoke(channel: Channel, id: String) -> Result<()> {
    TokensClient::new(channel)
        .revoke(Name { name: id.clone() })
        .await?;
    println!("token {id} revoked");
    Ok(())
}

/// The value comes from a file or stdin, never from the command line (shell history).
pub async fn secret_set(
    channel: Channel,
    name: String,
    roles: Vec<String>,
    file: Option<PathBuf>,
    format: Format,
) -> Result<()> {
    if roles.is_empty() {
        bail!("name the roles whose nodes may read the secret with --role");
    }
    let mut value = Vec::new();
    match &file {
        Some(p) => value = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => {
            std::io::stdin()
                .read_to_end(&mut value)
                .context("reading the value from stdin")?;
        }
    }
    // A trailing newline from `echo` or an editor is not part of the secret.
    while value.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        value.pop();
    }
    if value.is_empty() {
        bail!("the secret's value is empty");
    }
    let info = SecretsClient::new(channel)
        .set(SetSecretRequest { name, value, roles })
        .await?
        .into_inner();
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({"name": info.name, "roles": info.roles})
        ),
        Format::Human => println!(
            "secret {} set for roles {}",
            info.name,
            info.roles.join(", ")
        ),
    }
    Ok(())
}

pub async fn secret_list(channel: Channel, format: Format) -> Result<()> {
    let secrets = SecretsClient::new(channel)
        .list(Empty {})
        .await?
        .into_inner()
        .secrets;
    let rows = secrets
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.roles.join(","),
                output::time(s.updated_at),
                s.updated_by.clone(),
            ]
        })
        .collect();
    let json: Vec<_> = secrets
        .iter()
        .map(|s| serde_json::json!({"name": s.name, "roles": s.roles, "updated_at": s.updated_at, "updated_by": s.updated_by}))
        .collect();
    output::print(format, &["NAME", "ROLES", "UPDATED", "BY"], rows, &json);
    Ok(())
}

pub async fn secret_delete(channel: Channel, name: String) -> Result<()> {
    SecretsClient::new(channel)
        .delete(Name { name: name.clone() })
        .await?;
    println!("secret {name} deleted");
    Ok(())
}

/// Issue a credential for a new admin and write it to `out` (mode 0600).
pub async fn admin_add(
    channel: Channel,
    me: &Credential,
    wanted: AdminLevel,
    out: &Path,
) -> Result<()> {
    if out.exists() {
        bail!("{} exists; not overwriting a credential", out.display());
    }
    let name = wanted.name.clone();
    let what = level_text(&wanted.level, &wanted.environments);
    let c = AdminsClient::new(channel).add(wanted).await?.into_inner();
    let cred = Credential {
        name: c.name,
        server: me.server.clone(),
        ca_fingerprint: me.ca_fingerprint.clone(),
        ca_pem: c.ca_pem,
        certificate_pem: c.certificate_pem,
        key_pem: c.key_pem,
    };
    cred.write(out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "admin {name} added as {what}; their credential is in {} (hand it over privately)",
        out.display()
    );
    Ok(())
}

/// `operator of staging, production`, `owner of every environment`.
fn level_text(level: &str, environments: &[String]) -> String {
    match environments {
        [] => format!("{level} of every environment"),
        envs => format!("{level} of {}", envs.join(", ")),
    }
}

fn admin_json(a: &Admin) -> serde_json::Value {
    serde_json::json!({"name": a.name, "level": a.level, "environments": a.environments,
        "created_at": a.created_at, "created_by": a.created_by})
}

pub async fn admin_set(channel: Channel, wanted: AdminLevel, format: Format) -> Result<()> {
    let a = AdminsClient::new(channel).set(wanted).await?.into_inner();
    match format {
        Format::Json => println!("{}", admin_json(&a)),
        Format::Human => println!(
            "admin {} is now {}",
            a.name,
            level_text(&a.level, &a.environments)
        ),
    }
    Ok(())
}

pub async fn admin_list(channel: Channel, format: Format) -> Result<()> {
    let admins = AdminsClient::new(channel)
        .list(Empty {})
        .await?
        .into_inner()
        .admins;
    let rows = admins
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.level.clone(),
                match a.environments.is_empty() {
                    true => "all".to_string(),
                    false => a.environments.join(","),
                },
                output::time(a.created_at),
                a.created_by.clone(),
            ]
        })
        .collect();
    let json: Vec<_> = admins.iter().map(admin_json).collect();
    output::print(
        format,
        &["NAME", "LEVEL", "ENVIRONMENTS", "ADDED", "BY"],
        rows,
        &json,
    );
    Ok(())
}

pub async fn admin_remove(channel: Channel, name: String) -> Result<()> {
    AdminsClient::new(channel)
        .remove(Name { name: name.clone() })
        .await?;
    println!("admin {name} removed; their credential no longer works");
    Ok(())
}

pub async fn dashboard(channel: Channel, format: Format) -> Result<()> {
    let login = AdminsClient::new(channel)
        .dashboard_link(Empty {})
        .await?
        .into_inner();
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({"url": login.url, "expires_at": login.expires_at})
        ),
        Format::Human => {
            println!("{}", login.url);
            eprintln!(
                "open it before {} (it works once); the browser must trust the dashboard's \
                 certificate (docs/dashboard.md)",
                output::time(login.expires_at)
            );
        }
    }
    Ok(())
}
