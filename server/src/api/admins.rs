//! The Admins service: issue an admin credential with its level, list,
//! change and remove admins. Only an owner of every environment may; any
//! admin may ask for a dashboard login link for themselves.

use std::sync::Arc;

use cm_proto::v1::admins_server::Admins;
use cm_proto::v1::{Admin, AdminCredential, AdminLevel, AdminList, DashboardLogin, Empty, Name};
use tonic::{Request, Response, Status};

use super::auth;
use super::status::status;
use crate::state::State;
use crate::store::{AdminRow, Level};

pub struct AdminsApi {
    pub state: Arc<State>,
}

/// The level and environments asked for, checked. An empty level is an
/// owner when adding: what a cmctl from before levels asks for.
fn wanted(r: &AdminLevel, empty: Option<Level>) -> Result<(Level, Vec<String>), Status> {
    cm_model::metadata::check_name(&r.name).map_err(Status::invalid_argument)?;
    let level = match (r.level.as_str(), empty) {
        ("", Some(level)) => level,
        ("", None) => return Err(Status::invalid_argument("level: viewer, operator or owner")),
        (text, _) => Level::parse(text).ok_or_else(|| {
            Status::invalid_argument(format!("level {text:?}: viewer, operator or owner"))
        })?,
    };
    if level == Level::Owner && !r.environments.is_empty() {
        return Err(Status::invalid_argument(
            "an owner is an owner of every environment: admins and secrets are shared; \
             give --level operator to limit an admin to environments",
        ));
    }
    let mut environments = r.environments.clone();
    for env in &environments {
        cm_model::metadata::check_name(env)
            .map_err(|e| Status::invalid_argument(format!("environment {env:?}: {e}")))?;
    }
    environments.sort();
    environments.dedup();
    Ok((level, environments))
}

fn to_pb(a: AdminRow) -> Admin {
    Admin {
        name: a.name,
        created_at: a.created_at,
        created_by: a.created_by,
        level: a.level.as_str().to_string(),
        environments: a.environments,
    }
}

#[tonic::async_trait]
impl Admins for AdminsApi {
    async fn add(&self, req: Request<AdminLevel>) -> Result<Response<AdminCredential>, Status> {
        let who = auth::owner(&self.state, &req, "adding an admin").await?;
        let r = req.into_inner();
        let (level, environments) = wanted(&r, Some(Level::Owner))?;
        let cert = self
            .state
            .pki
            .ca()
            .issue_admin(&r.name, std::time::Duration::from_secs(365 * 86400))
            .map_err(|e| Status::internal(e.to_string()))?;
        self.state
            .store
            .add_admin(&r.name, &cert.cert.serial, level, &environments, &who)
            .await
            .map_err(status)?;
        Ok(Response::new(AdminCredential {
            name: r.name,
            certificate_pem: cert.cert.cert_pem,
            key_pem: cert.key_pem,
            ca_pem: self.state.pki.ca().cert_pem().to_string(),
        }))
    }

    async fn list(&self, req: Request<Empty>) -> Result<Response<AdminList>, Status> {
        auth::viewer(&self.state, &req).await?;
        let rows = self.state.store.admins().await.map_err(status)?;
        Ok(Response::new(AdminList {
            admins: rows.into_iter().map(to_pb).collect(),
        }))
    }

    async fn remove(&self, req: Request<Name>) -> Result<Response<Empty>, Status> {
        let who = auth::owner(&self.state, &req, "removing an admin").await?;
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

    async fn set(&self, req: Request<AdminLevel>) -> Result<Response<Admin>, Status> {
        let who = auth::owner(&self.state, &req, "changing an admin's level").await?;
        let r = req.into_inner();
        let (level, environments) = wanted(&r, None)?;
        let admin = self
            .state
            .store
            .set_admin_level(&r.name, level, &environments, &who)
            .await
            .map_err(status)?;
        Ok(Response::new(to_pb(admin)))
    }

    async fn dashboard_link(
        &self,
        req: Request<Empty>,
    ) -> Result<Response<DashboardLogin>, Status> {
        let admin = auth::admin(&self.state, &req).await?;
        let link = crate::dashboard::session::issue_link(&self.state, &admin)
            .await
            .map_err(status)?;
        let Some((url, expires_at)) = link else {
            return Err(Status::failed_precondition(
                "this server serves no dashboard (--dashboard-listen off, or it could not start: \
                 see the server's log)",
            ));
        };
        Ok(Response::new(DashboardLogin { url, expires_at }))
    }
}
