//! The Audit service: who changed what, newest first.

use std::sync::Arc;

use cm_proto::v1::audit_server::Audit;
use cm_proto::v1::{AuditEvent, AuditList, ListAuditRequest};
use tonic::{Request, Response, Status};

use super::auth;
use super::status::status;
use crate::state::State;

pub struct AuditApi {
    pub state: Arc<State>,
}

#[tonic::async_trait]
impl Audit for AuditApi {
    async fn list(&self, req: Request<ListAuditRequest>) -> Result<Response<AuditList>, Status> {
        auth::viewer(&self.state, &req).await?;
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
