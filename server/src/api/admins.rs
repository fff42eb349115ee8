//! The Admins service: issue an admin credential, list and remove admins.

use std::sync::Arc;

use cm_proto::v1::admins_server::Admins;
use cm_proto::v1::{Admin, AdminCredential, AdminList, Empty, Name};
use tonic::{Request, Response, Status};

use super::auth;
use super::status::status;
use crate::state::State;

pub struct AdminsApi {
    pub state: Arc<State>,
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
