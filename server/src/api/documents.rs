//! The Roles and Environments services: YAML documents with revisions and
//! history, deleted only when nothing uses them, validated with cm-model before they are stored. A set that
//! would leave nodes without a plan is refused unless forced (the plan
//! check, `crate::plan::check`).

use std::path::Path;
use std::sync::Arc;

use cm_model::role::{Environment, Role};
use cm_model::yaml::Reading;
use cm_proto::v1::environments_server::Environments;
use cm_proto::v1::roles_server::Roles;
use cm_proto::v1::{Document, DocumentList, Empty, EnvironmentView, Name};
use tonic::{Request, Response, Status};

use super::auth;
use super::status::status;
use crate::plan::check::PlanChange;
use crate::state::State;
use crate::store::{DocKind, Document as DocumentRow};

pub struct RolesApi {
    pub state: Arc<State>,
}

pub struct EnvironmentsApi {
    pub state: Arc<State>,
}

fn to_pb(d: &DocumentRow) -> Document {
    Document {
        name: d.name.clone(),
        yaml: d.yaml.clone(),
        revision: d.revision as u64,
        updated_at: d.updated_at,
        updated_by: d.updated_by.clone(),
        force: false,
    }
}

/// Validate and store a document (the name inside the YAML is the name),
/// unless it leaves nodes without a plan and `force` is not set.
async fn set(state: &State, kind: DocKind, who: &str, doc: &Document) -> Result<Document, Status> {
    let yaml = &doc.yaml;
    let file = Path::new(match kind {
        DocKind::Role => "role.yaml",
        DocKind::Environment => "environment.yaml",
    });
    let (name, change) = match kind {
        DocKind::Role => Role::parse(file, yaml).map(|r| (r.name.clone(), PlanChange::SetRole(r))),
        DocKind::Environment => {
            Environment::parse(file, yaml).map(|e| (e.name.clone(), PlanChange::SetEnvironment(e)))
        }
    }
    .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let guard = state.plan_guard(change, doc.force);
    let saved = state
        .store
        .put_document_checked(kind, &name, yaml, who, Some(guard))
        .await
        .map_err(status)?;
    if saved.changed {
        state
            .changed_keeping_view(&format!("{} {name} changed", kind.as_str()))
            .await;
    }
    Ok(to_pb(&saved.value))
}

/// Delete a role or an environment nobody uses (the store names the users
/// otherwise). Plans list every role the server knows (empty where they do
/// not read it), so their hashes move.
async fn delete(state: &State, kind: DocKind, who: &str, name: &str) -> Result<Empty, Status> {
    cm_model::metadata::check_name(name).map_err(Status::invalid_argument)?;
    state
        .store
        .delete_document(kind, name, who)
        .await
        .map_err(status)?;
    state
        .changed_keeping_view(&format!("{} {name} deleted", kind.as_str()))
        .await;
    Ok(Empty {})
}

async fn show(state: &State, kind: DocKind, name: &str) -> Result<DocumentRow, Status> {
    state.store.document(kind, name).await.map_err(status)
}

async fn list(state: &State, kind: DocKind) -> Result<DocumentList, Status> {
    let docs = state.store.documents(kind).await.map_err(status)?;
    Ok(DocumentList {
        documents: docs.iter().map(to_pb).collect(),
    })
}

async fn history(state: &State, kind: DocKind, name: &str) -> Result<DocumentList, Status> {
    let docs = state.store.history(kind, name).await.map_err(status)?;
    Ok(DocumentList {
        documents: docs.iter().map(to_pb).collect(),
    })
}

#[tonic::async_trait]
impl Roles for RolesApi {
    async fn set(&self, req: Request<Document>) -> Result<Response<Document>, Status> {
        let who = auth::operator(&self.state, &req, "setting a role").await?;
        Ok(Response::new(
            set(&self.state, DocKind::Role, &who, req.get_ref()).await?,
        ))
    }
    async fn show(&self, req: Request<Name>) -> Result<Response<Document>, Status> {
        auth::viewer(&self.state, &req).await?;
        Ok(Response::new(to_pb(
            &show(&self.state, DocKind::Role, &req.get_ref().name).await?,
        )))
    }
    async fn list(&self, req: Request<Empty>) -> Result<Response<DocumentList>, Status> {
        auth::viewer(&self.state, &req).await?;
        Ok(Response::new(list(&self.state, DocKind::Role).await?))
    }
    async fn history(&self, req: Request<Name>) -> Result<Response<DocumentList>, Status> {
        auth::viewer(&self.state, &req).await?;
        Ok(Response::new(
            history(&self.state, DocKind::Role, &req.get_ref().name).await?,
        ))
    }
    async fn delete(&self, req: Request<Name>) -> Result<Response<Empty>, Status> {
        let who = auth::operator(&self.state, &req, "deleting a role").await?;
        Ok(Response::new(
            delete(&self.state, DocKind::Role, &who, &req.get_ref().name).await?,
        ))
    }
}

#[tonic::async_trait]
impl Environments for EnvironmentsApi {
    async fn set(&self, req: Request<Document>) -> Result<Response<Document>, Status> {
        // The environment the document names (an unparsable one names none
        // and is refused below, or here for a limited admin).
        auth::viewer(&self.state, &req).await?;
        let named = Environment::parse(Path::new("environment"), &req.get_ref().yaml)
            .map(|e| e.name)
            .unwrap_or_default();
        let who = auth::operator_in(&self.state, &req, &[&named], "setting an environment").await?;
        Ok(Response::new(
            set(&self.state, DocKind::Environment, &who, req.get_ref()).await?,
        ))
    }
    async fn show(&self, req: Request<Name>) -> Result<Response<EnvironmentView>, Status> {
        auth::viewer(&self.state, &req).await?;
        let name = &req.get_ref().name;
        let row = show(&self.state, DocKind::Environment, name).await?;
        // As stored (State::roles says why).
        let env = Environment::parse_with(Path::new(name), &row.yaml, Reading::AsBefore)
            .map_err(|e| Status::internal(e.to_string()))?;
        // What the unpinned cookbooks resolve to: the newest version, as a node would get it.
        let catalog = self.state.catalog().await?;
        let unpinned = catalog
            .cookbooks
            .iter()
            .filter(|(n, _)| !env.cookbooks.contains_key(*n))
            .filter_map(|(n, versions)| {
                versions
                    .iter()
                    .map(|e| &e.version)
                    .max()
                    .map(|v| (n.clone(), v.to_string()))
            })
            .collect();
        Ok(Response::new(EnvironmentView {
            document: Some(to_pb(&row)),
            unpinned,
        }))
    }
    async fn list(&self, req: Request<Empty>) -> Result<Response<DocumentList>, Status> {
        auth::viewer(&self.state, &req).await?;
        Ok(Response::new(
            list(&self.state, DocKind::Environment).await?,
        ))
    }
    async fn history(&self, req: Request<Name>) -> Result<Response<DocumentList>, Status> {
        auth::viewer(&self.state, &req).await?;
        Ok(Response::new(
            history(&self.state, DocKind::Environment, &req.get_ref().name).await?,
        ))
    }
    async fn delete(&self, req: Request<Name>) -> Result<Response<Empty>, Status> {
        let env = &req.get_ref().name;
        let who = auth::operator_in(&self.state, &req, &[env], "deleting an environment").await?;
        Ok(Response::new(
            delete(&self.state, DocKind::Environment, &who, &req.get_ref().name).await?,
        ))
    }
}
