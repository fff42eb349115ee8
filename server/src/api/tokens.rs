//! The Tokens service: enrollment tokens for autoscaling groups' user-data
//! (created, listed, revoked; only a hash of the secret is stored).

use std::sync::Arc;

use cm_proto::v1::tokens_server::Tokens;
use cm_proto::v1::{CreateTokenRequest, CreateTokenResponse, Empty, Name, Token, TokenList};
use rand::Rng;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::auth;
use super::status::status;
use crate::state::{State, now};
use crate::store::NewToken;

pub struct TokensApi {
    pub state: Arc<State>,
}

/// Longest token lifetime: a token in user-data should not outlive a quarter.
const MAX_TTL: u64 = 90 * 86400;

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
        let who = auth::operator_in(
            &self.state,
            &req,
            &[&req.get_ref().environment],
            "creating a token",
        )
        .await?;
        auth::may_hand_out(&self.state, &req, &req.get_ref().roles).await?;
        let r = req.into_inner();
        if r.roles.is_empty() {
            return Err(Status::invalid_argument("a token names at least one role"));
        }
        for role in r.roles.iter().chain(std::iter::once(&r.environment)) {
            cm_model::metadata::check_name(role).map_err(Status::invalid_argument)?;
        }
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
        auth::viewer(&self.state, &req).await?;
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
        auth::viewer(&self.state, &req).await?;
        let id = &req.get_ref().name;
        let tokens = self.state.store.tokens().await.map_err(status)?;
        // An unknown token is in no environment: only an unlimited
        // operator hears that it does not exist.
        let env = tokens
            .iter()
            .find(|t| &t.id == id)
            .map_or("", |t| t.environment.as_str());
        let who = auth::operator_in(&self.state, &req, &[env], "revoking a token").await?;
        self.state
            .store
            .revoke_token(&req.get_ref().name, &who)
            .await
            .map_err(status)?;
        Ok(Response::new(Empty {}))
    }
}
