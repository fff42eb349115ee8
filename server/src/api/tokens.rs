//! The Tokens, Secrets, Admins, Runs and Audit services: thin admin calls.

use std::sync::Arc;

use cm_proto::v1::admins_server::Admins;
use cm_proto::v1::audit_server::Audit;
use cm_proto::v1::runs_server::Runs;
use cm_proto::v1::secrets_server::Secrets;
use cm_proto::v1::tokens_server::Tokens;
use cm_proto::v1::{
    Admin, AdminCredential, AdminList, AuditEvent, AuditList, CreateTokenRequest,
    CreateTokenResponse, Empty, ListAuditRequest, ListRunsRequest, Name, RunList, SecretInfo,
    SecretList, SetSecretRequest, Token, TokenList,
};
use rand::Rng;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::convert;
use crate::auth;
use crate::state::{State, now, status};
use crate::store::{DocKind, NewToken};

pub struct TokensApi {
    pub state: Arc<State>,
}
pub struct SecretsApi {
    pub state: Arc<State>,
}
pub struct AdminsApi {
    pub state: Arc<State>,
}
pub struct RunsApi {
    pub state: Arc<State>,
}
pub struct AuditApi {
    pub state: Arc<State>,
}

/// Longest token lifetime: a token in user-data should not outlive a quarter.
const MAX_TTL: u64 = 90 * 86400;

/// A token whose nodes would enroll into a role or an environment that does
/// not exist is refused: every node it enrolls would have no plan. Roles
/// and environments are never deleted, so checking before the insert holds.
async fn refuse_unknown_documents(
    state: &State,
    roles: &[String],
    environment: &str,
) -> Result<(), Status> {
    let names = |docs: Vec<crate::store::Document>| -> Vec<String> {
        docs.into_iter().map(|d| d.name).collect()
    };
    let known_roles = names(state.store.documents(DocKind::Role).await.map_err(status)?);
    let missing: Vec<&str> = roles
        .iter()
        .filter(|r| !known_roles.contains(r))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Status::failed_precondition(format!(
            "role {} does not exist: its nodes would have no plan (cmctl role set first)",
            missing.join(", ")
        )));
    }
    let known_environments = names(
        state
            .store
            .documents(DocKind::Environment)
            .await
            .map_err(status)?,
    );
    if !known_environments.iter().any(|e| e == environment) {
        return Err(Status::failed_precondition(format!(
            "environment {environment} does not exist: set it first (cmctl env set)"
        )));
    }
    Ok(())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    hex::encode(buf)
}

#[tonic::async_trait]
impl Tokens for TokensApi {
    async fn create(
        &self,
        req: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let who = auth::admin(&self.state, &req).await?;
        let r = req.into_inner();
        if r.roles.is_empty() {
            return Err(Status::invalid_argument("a token names at least one role"));
        }
        for role in r.roles.iter().chain(std::iter::once(&r.environment)) {
            cm_model::metadata::check_name(role).map_err(Status::invalid_argument)?;
        }
        refuse_unknown_documents(&self.state, &r.roles, &r.environment).await?;
        let ttl = if r.ttl_seconds == 0 {
            3600
        } else {
            r.ttl_seconds
        };
        if ttl > MAX_TTL {
            return Err(Status::invalid_argument("ttl longer than 90 days"));
        }
        let uses = if r.uses == 0 { 1 } else { r.uses };
        let id = random_hex(4);
        // The token a node presents: id (for listing and revoking) and secret.
        let token = format!("cmt_{id}_{}", random_hex(24));
        let secret_hash = hex::encode(Sha256::digest(token.as_bytes()));
        let expires_at = now() + ttl as i64;
        self.state
            .store
            .create_token(
                &NewToken {
                    id: id.clone(),
                    secret_hash,
                    roles: r.roles.clone(),
                    environment: r.environment.clone(),
                    expires_at,
                    uses,
                },
                &who,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(CreateTokenResponse {
            id,
            token,
            expires_at,
        }))
    }

    async fn list(&self, req: Request<Empty>) -> Result<Response<TokenList>, Status> {
        auth::admin(&self.state, &req).await?;
        let tokens = self.state.store.tokens().await.map_err(status)?;
        Ok(Response::new(TokenList {
            tokens: tokens
                .into_iter()
                .map(|t| Token {
                    id: t.id,
                    roles: t.roles,
                    environment: t.environment,
                    expires_at: t.expires_at,
                    uses_left: t.uses_left as u32,
                    revoked: t.revoked,
                    created_by: t.created_by,
                })
                .collect(),
        }))
    }

    async fn revoke(&self, req: Request<Name>) -> Result<Response<Empty>, Status> {
        let who = auth::admin(&self.state, &req).await?;
        self.state
            .store
            .revoke_token(&req.get_ref().name, &who)
            .await
            .map_err(status)?;
        Ok(Response::new(Empty {}))
    }
}

#[tonic::async_trait]
impl Secrets for SecretsApi {
    async fn set(&self, req: Request<SetSecretRequest>) -> Result<Response<SecretInfo>, Status> {
        let who = auth::admin(&self.state, &req).await?;
        let r = req.into_inner();
        cm_model::metadata::check_name(&r.name).map_err(Status::invalid_argument)?;
        if r.roles.is_empty() {
            return Err(Status::invalid_argument(
                "name the roles whose nodes may read the secret (--role)",
            ));
        }
        if std::str::from_utf8(&r.value).is_err() {
            return Err(Status::invalid_argument("secret values are UTF-8 text"));
        }
        let sealed = self
            .state
            .secrets_key
            .seal(&r.name, &r.value)
            .map_err(|e| Status::internal(e.to_string()))?;
        self.state
            .store
            .put_secret(&r.name, &sealed, &r.roles, &who)
            .await
            .map_err(status)?;
        self.state
            .changed(&format!("secret {} changed", r.name))
            .await;
        Ok(Response::new(SecretInfo {
            name: r.name,
            roles: r.roles,
            updated_at: now(),
            updated_by: who,
        }))
    }

    async fn list(&self, req: Request<Empty>) -> Result<Response<SecretList>, Status> {
        auth::admin(&self.state, &req).await?;
        let rows = self.state.store.secrets().await.map_err(status)?;
        Ok(Response::new(SecretList {
            secrets: rows
                .into_iter()
                .map(|s| SecretInfo {
                    name: s.name,
                    roles: s.roles,
                    updated_at: s.updated_at,
                    updated_by: s.updated_by,
                })
                .collect(),
        }))
    }

    async fn delete(&self, req: Request<Name>) -> Result<Response<Empty>, Status> {
        let who = auth::admin(&self.state, &req).await?;
        let name = req.into_inner().name;
        self.state
            .store
            .delete_secret(&name, &who)
            .await
            .map_err(status)?;
        self.state.changed(&format!("secret {name} deleted")).await;
        Ok(Response::new(Empty {}))
    }
}

#[tonic::async_trait]
impl Admins for AdminsApi {
    async fn add(&self, req: Request<Name>) -> Result<Response<AdminCredential>, Status> {
        let who = auth::admin(&self.state, &req).await?;
        let name = req.into_inner().name;
        cm_model::metadata::check_name(&name).map_err(Status::invalid_argument)?;
        let cert = self
            .state
            .pki
            .ca()
            .issue_admin(&name, std::time::Duration::from_secs(365 * 86400))
            .map_err(|e| Status::internal(e.to_string()))?;
        self.state
            .store
            .add_admin(&name, &cert.cert.serial, &who)
            .await
            .map_err(status)?;
        Ok(Response::new(AdminCredential {
            name,
            certificate_pem: cert.cert.cert_pem,
            key_pem: cert.key_pem,
            ca_pem: self.state.pki.ca().cert_pem().to_string(),
        }))
    }

    async fn list(&self, req: Request<Empty>) -> Result<Response<AdminList>, Status> {
        auth::admin(&self.state, &req).await?;
        let rows = self.state.store.admins().await.map_err(status)?;
        Ok(Response::new(AdminList {
            admins: rows
                .into_iter()
                .map(|a| Admin {
                    name: a.name,
                    created_at: a.created_at,
                    created_by: a.created_by,
                })
                .collect(),
        }))
    }

    async fn remove(&self, req: Request<Name>) -> Result<Response<Empty>, Status> {
        let who = auth::admin(&self.state, &req).await?;
        let name = req.into_inner().name;
        if name == who {
            return Err(Status::failed_precondition(
                "you cannot remove yourself; ask another admin",
            ));
        }
        self.state
            .store
            .remove_admin(&name, &who)
            .await
            .map_err(status)?;
        self.state.changed(&format!("admin {name} removed")).await;
        Ok(Response::new(Empty {}))
    }
}

#[tonic::async_trait]
impl Runs for RunsApi {
    async fn list(&self, req: Request<ListRunsRequest>) -> Result<Response<RunList>, Status> {
        auth::admin(&self.state, &req).await?;
        let r = req.into_inner();
        let limit = if r.limit == 0 { 20 } else { r.limit.min(1000) };
        let rows = self
            .state
            .store
            .runs((!r.node.is_empty()).then_some(r.node.as_str()), limit)
            .await
            .map_err(status)?;
        Ok(Response::new(RunList {
            runs: rows.iter().map(convert::run_to_pb).collect(),
        }))
    }
}

#[tonic::async_trait]
impl Audit for AuditApi {
    async fn list(&self, req: Request<ListAuditRequest>) -> Result<Response<AuditList>, Status> {
        auth::admin(&self.state, &req).await?;
        let r = req.into_inner();
        let limit = if r.limit == 0 { 50 } else { r.limit.min(1000) };
        let rows = self
            .state
            .store
            .audit(limit, (!r.who.is_empty()).then_some(r.who.as_str()))
            .await
            .map_err(status)?;
        Ok(Response::new(AuditList {
            events: rows
                .into_iter()
                .map(|a| AuditEvent {
                    at: a.at,
                    who: a.who,
                    what: a.what,
                    before: a.before_json.unwrap_or_default(),
                    after: a.after_json.unwrap_or_default(),
                })
                .collect(),
        }))
    }
}
