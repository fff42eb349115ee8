//! The Runs service: the run reports nodes sent, newest first.

use std::sync::Arc;

use cm_proto::v1::runs_server::Runs;
use cm_proto::v1::{ListRunsRequest, RunList};
use tonic::{Request, Response, Status};

use super::auth;
use super::convert;
use super::status::status;
use crate::state::State;

pub struct RunsApi {
    pub state: Arc<State>,
}

#[tonic::async_trait]
impl Runs for RunsApi {
    async fn list(&self, req: Request<ListRunsRequest>) -> Result<Response<RunList>, Status> {
        auth::viewer(&self.state, &req).await?;
        let r = req.into_inner();
        let limit = if r.limit == 0 { 20 } else { r.limit.min(1000) };
        let store = &self.state.store;
        // A node's runs are its current identity's unless asked for all.
        let rows = match (r.node.as_str(), r.all_identities) {
            ("", _) => store.runs(None, limit).await,
            (node, true) => store.runs(Some(node), limit).await,
            (node, false) => store.current_runs(node, limit).await,
        }
        .map_err(status)?;
        Ok(Response::new(RunList {
            runs: rows.iter().map(convert::run_to_pb).collect(),
        }))
    }
}
