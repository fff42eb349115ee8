//! The Secrets service: set, list and delete secrets (sealed with the
//! server's key before they are stored; values never come back out).

use std::sync::Arc;

use cm_proto::v1::secrets_server::Secrets;
use cm_proto::v1::{Empty, Name, SecretInfo, SecretList, SetSecretRequest};
use tonic::{Request, Response, Status};

use super::auth;
use super::status::status;
use crate::state::{State, now};

pub struct SecretsApi {
    pub state: Arc<State>,
}

#[tonic::async_trait]
impl Secrets for SecretsApi {
    async fn set(&self, req: Request<SetSecretRequest>) -> Result<Response<SecretInfo>, Status> {
        let who = auth::owner(&self.state, &req, "setting a secret").await?;
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
            .changed_keeping_view(&format!("secret {} changed", r.name))
            .await;
        Ok(Response::new(SecretInfo {
            name: r.name,
            roles: r.roles,
            updated_at: now(),
            updated_by: who,
        }))
    }

    async fn list(&self, req: Request<Empty>) -> Result<Response<SecretList>, Status> {
        auth::viewer(&self.state, &req).await?;
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
        let who = auth::owner(&self.state, &req, "deleting a secret").await?;
        let name = req.into_inner().name;
        self.state
            .store
            .delete_secret(&name, &who)
            .await
            .map_err(status)?;
        self.state
            .changed_keeping_view(&format!("secret {name} deleted"))
            .await;
        Ok(Response::new(Empty {}))
    }
}
