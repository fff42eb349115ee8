//! Getting and keeping an identity: enrollment with the token, and asking
//! the server whether a stored identity still holds.

use std::time::Duration;

use cm_model::secrets::SecretString;
use cm_proto::v1::FactsRequest;
use cm_proto::v1::agent_client::AgentClient;

use super::{Fatal, node_name};
use crate::config::{Config, forget_token};
use crate::facts::Facts;
use crate::remote::RemoteError;
use crate::remote::identity::{self, Enrollment, Identity};

pub(super) fn expired(id: &Identity, config: &Config) -> String {
    format!(
        "the certificate of node {} expired {}; it must enroll again: \
         put a new token in {} (`cmctl token create`) and run `cm-agent start`",
        id.name,
        cm_model::time::utc_and_relative(id.expires_at, cm_model::time::now()),
        config.file.display()
    )
}

/// Ask the server whether it still takes `id` (reporting facts on the way).
pub(super) async fn revoked_on_server(id: &Identity, facts: &Facts) -> Result<bool, RemoteError> {
    let channel = id.channel().map_err(RemoteError::Refused)?;
    let facts_json = serde_json::to_string(facts).unwrap_or_default();
    let mut request = tonic::Request::new(FactsRequest { facts_json });
    request.set_timeout(Duration::from_secs(30));
    match AgentClient::new(channel).report_facts(request).await {
        Ok(_) => Ok(false),
        Err(s) => match RemoteError::from(s) {
            RemoteError::Revoked(_) => Ok(true),
            RemoteError::Unreachable(m) => Err(RemoteError::Unreachable(m)),
            _ => Ok(false),
        },
    }
}

pub(super) fn revoked(m: String) -> Fatal {
    Fatal::Revoked(format!(
        "the server no longer accepts this node's certificate ({m}); \
         it was retired or its certificate expired: enroll again with a new token"
    ))
}

pub(super) async fn enroll(config: &Config, facts: &Facts) -> Result<Identity, RemoteError> {
    // Missing settings are a usage error (exit 2), not a refusal (exit 3):
    // no server has been asked anything.
    let missing = |what: &str| {
        RemoteError::Local(format!(
            "this node is not enrolled and has no {what}: set `{what}:` in {} \
             (`cmctl userdata` writes a complete file)",
            config.file.display()
        ))
    };
    let server = config.server_url().map_err(RemoteError::Local)?;
    let pin = config
        .ca_fingerprint
        .as_deref()
        .ok_or_else(|| missing("ca_fingerprint"))?;
    let token = config
        .token
        .as_ref()
        .map(SecretString::expose)
        .ok_or_else(|| missing("token"))?;
    let name = node_name(config, facts);
    let identity = identity::enroll(Enrollment {
        server,
        ca_fingerprint: pin,
        token,
        name: &name,
        facts_json: serde_json::to_string(facts).unwrap_or_default(),
    })
    .await?;
    identity
        .save(&config.state_dir)
        .map_err(|e| RemoteError::Local(format!("cannot keep the identity: {e}")))?;
    if let Err(e) = forget_token(&config.file) {
        tracing::warn!(file = %config.file.display(), error = %e, "cannot remove the used token");
    }
    tracing::info!(node = %name, "enrolled");
    Ok(identity)
}
