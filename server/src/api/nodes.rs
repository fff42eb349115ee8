//! The Nodes service: inventory, role assignment, moves between
//! environments, admin-set attributes, retirement (revokes the certificate
//! at once) and `explain`. An assignment or a move that would leave the node
//! without a plan is refused unless forced; attributes cannot make
//! resolution fail and are not checked.

use std::sync::Arc;

use cm_proto::v1::nodes_server::Nodes;
use cm_proto::v1::{
    AssignRequest, ClusterRequest, ClusterView, Contribution, ExplainRequest, ExplainResponse,
    ListNodesRequest, Member, MoveRequest, Name, Node, NodeList, SetAttributeRequest,
};
use tonic::{Request, Response, Status};

use super::auth;
use super::convert;
use super::status::status;
use crate::plan::check::PlanChange;
use crate::state::{State, StateError};
use crate::store::{Actor, MemberRow, NodeRow};

pub struct NodesApi {
    pub state: Arc<State>,
}

fn to_pb(n: &NodeRow) -> Node {
    let last_run = n.last_run.as_ref().map(convert::run_to_pb);
    Node {
        name: n.name.clone(),
        environment: n.environment.clone(),
        roles: n.roles.clone(),
        state: n.state.as_str().to_string(),
        facts_json: n.facts.to_string(),
        attributes_json: serde_json::Value::Object(n.attributes.clone()).to_string(),
        last_seen: n.last_seen,
        last_run,
        plan_hash: n.plan_hash.clone(),
        enrolled_at: n.enrolled_at,
        cert_expires_at: n.cert_expires_at,
        plan_error: n.plan_error.clone(),
        memberships: Vec::new(),
    }
}

fn member_to_pb(m: &MemberRow, node: Option<&NodeRow>) -> Member {
    Member {
        environment: m.environment.clone(),
        role: m.role.clone(),
        ordinal: m.ordinal,
        node: m.node.clone(),
        state: node
            .map(|n| n.state.as_str().to_string())
            .unwrap_or_default(),
        address: node
            .and_then(|n| {
                crate::cluster_view::address(&n.facts)
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_default(),
        last_seen: node.map_or(0, |n| n.last_seen),
        joined_at: m.joined_at,
        replaces: m.replaces.clone(),
    }
}

/// The admin, held to the environment they were allowed to change the
/// node in, when they are limited to some (see `auth::operator_of_node`).
fn actor<'a>(who: &'a str, seen: &'a Option<String>) -> Actor<'a> {
    Actor {
        name: who,
        environment: seen.as_deref(),
    }
}

impl NodesApi {
    async fn node(&self, name: &str) -> Result<NodeRow, Status> {
        self.state.store.node(name).await.map_err(status)
    }

    /// A node as `show` answers: its stored row and its ordinals.
    async fn shown(&self, name: &str) -> Result<Node, Status> {
        let row = self.node(name).await?;
        let members = self
            .state
            .store
            .memberships_of(&row.name)
            .await
            .map_err(status)?;
        let mut node = to_pb(&row);
        node.memberships = members
            .iter()
            .map(|m| member_to_pb(m, Some(&row)))
            .collect();
        Ok(node)
    }

    /// The reply to a change of a node's roles or environment: as `show`,
    /// with the plan the change made (or why it has none), not the hash
    /// stored before the background pass records the new one.
    async fn after_change(&self, name: &str) -> Result<Node, Status> {
        let plan = self.state.plan_for(name).await;
        let mut node = self.shown(name).await?;
        match plan {
            Ok(plan) => {
                node.plan_hash = plan.hash.clone();
                node.plan_error.clear();
            }
            Err(StateError::NoPlan(e)) => node.plan_error = e.reason(),
            Err(e) => return Err(e.into()),
        }
        Ok(node)
    }

    /// Flush pending check-ins so `last_seen` is current in what we show.
    async fn flush(&self) {
        self.state.flush_check_ins().await;
    }
}

#[tonic::async_trait]
impl Nodes for NodesApi {
    async fn list(&self, req: Request<ListNodesRequest>) -> Result<Response<NodeList>, Status> {
        auth::viewer(&self.state, &req).await?;
        self.flush().await;
        let r = req.into_inner();
        let rows = self
            .state
            .store
            .nodes(
                (!r.role.is_empty()).then_some(r.role.as_str()),
                (!r.environment.is_empty()).then_some(r.environment.as_str()),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(NodeList {
            nodes: rows.iter().map(to_pb).collect(),
        }))
    }

    async fn show(&self, req: Request<Name>) -> Result<Response<Node>, Status> {
        auth::viewer(&self.state, &req).await?;
        self.flush().await;
        Ok(Response::new(self.shown(&req.get_ref().name).await?))
    }

    async fn cluster(&self, req: Request<ClusterRequest>) -> Result<Response<ClusterView>, Status> {
        auth::viewer(&self.state, &req).await?;
        self.flush().await;
        let r = req.into_inner();
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let (environment, role) = (some(&r.environment), some(&r.role));
        let members = self
            .state
            .store
            .members(environment.as_deref(), role.as_deref())
            .await
            .map_err(status)?;
        let nodes = self
            .state
            .store
            .nodes(role.as_deref(), environment.as_deref())
            .await
            .map_err(status)?;
        let by_name: std::collections::HashMap<&str, &NodeRow> =
            nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        Ok(Response::new(ClusterView {
            members: members
                .iter()
                .map(|m| member_to_pb(m, by_name.get(m.node.as_str()).copied()))
                .collect(),
        }))
    }

    async fn assign(&self, req: Request<AssignRequest>) -> Result<Response<Node>, Status> {
        let (who, seen) =
            auth::operator_of_node(&self.state, &req, &req.get_ref().node, "assigning a role")
                .await?;
        auth::may_hand_out(&self.state, &req, std::slice::from_ref(&req.get_ref().role)).await?;
        let r = req.into_inner();
        cm_model::metadata::check_name(&r.role).map_err(Status::invalid_argument)?;
        let guard = self.state.plan_guard(PlanChange::OneNode, r.force);
        self.state
            .store
            .assign_role_checked(&r.node, &r.role, actor(&who, &seen), Some(guard))
            .await
            .map_err(status)?;
        self.state
            .changed(&format!("node {} assigned role {}", r.node, r.role))
            .await;
        Ok(Response::new(self.after_change(&r.node).await?))
    }

    async fn unassign(&self, req: Request<AssignRequest>) -> Result<Response<Node>, Status> {
        let (who, seen) =
            auth::operator_of_node(&self.state, &req, &req.get_ref().node, "unassigning a role")
                .await?;
        let r = req.into_inner();
        let guard = self.state.plan_guard(PlanChange::OneNode, r.force);
        self.state
            .store
            .unassign_role_checked(&r.node, &r.role, actor(&who, &seen), Some(guard))
            .await
            .map_err(status)?;
        self.state
            .changed(&format!("node {} left role {}", r.node, r.role))
            .await;
        Ok(Response::new(self.after_change(&r.node).await?))
    }

    async fn r#move(&self, req: Request<MoveRequest>) -> Result<Response<Node>, Status> {
        let (who, from) = {
            auth::viewer(&self.state, &req).await?;
            let from = auth::node_environment(&self.state, &req.get_ref().node).await?;
            let envs = [from.as_str(), req.get_ref().environment.as_str()];
            let who = auth::operator_in(&self.state, &req, &envs, "moving a node").await?;
            (who, from)
        };
        let r = req.into_inner();
        cm_model::metadata::check_name(&r.environment).map_err(Status::invalid_argument)?;
        let guard = self.state.plan_guard(PlanChange::OneNode, r.force);
        self.state
            .store
            .move_node(
                &r.node,
                &r.environment,
                actor(&who, &Some(from)),
                Some(guard),
            )
            .await
            .map_err(status)?;
        self.state
            .changed(&format!("node {} moved to {}", r.node, r.environment))
            .await;
        Ok(Response::new(self.after_change(&r.node).await?))
    }

    async fn set_attribute(
        &self,
        req: Request<SetAttributeRequest>,
    ) -> Result<Response<Node>, Status> {
        let (who, seen) = auth::operator_of_node(
            &self.state,
            &req,
            &req.get_ref().node,
            "setting a node attribute",
        )
        .await?;
        let r = req.into_inner();
        let value: serde_json::Value = serde_json::from_str(&r.value_json)
            .map_err(|e| Status::invalid_argument(format!("value is not JSON: {e}")))?;
        self.state
            .store
            .set_node_attribute(&r.node, &r.key, &value.to_string(), actor(&who, &seen))
            .await
            .map_err(status)?;
        self.state
            .changed_keeping_view(&format!("node {} attribute {} set", r.node, r.key))
            .await;
        Ok(Response::new(to_pb(&self.node(&r.node).await?)))
    }

    async fn unset_attribute(
        &self,
        req: Request<SetAttributeRequest>,
    ) -> Result<Response<Node>, Status> {
        let (who, seen) = auth::operator_of_node(
            &self.state,
            &req,
            &req.get_ref().node,
            "unsetting a node attribute",
        )
        .await?;
        let r = req.into_inner();
        self.state
            .store
            .unset_node_attribute(&r.node, &r.key, actor(&who, &seen))
            .await
            .map_err(status)?;
        self.state
            .changed_keeping_view(&format!("node {} attribute {} unset", r.node, r.key))
            .await;
        Ok(Response::new(to_pb(&self.node(&r.node).await?)))
    }

    async fn retire(&self, req: Request<Name>) -> Result<Response<Node>, Status> {
        let (who, seen) =
            auth::operator_of_node(&self.state, &req, &req.get_ref().name, "retiring a node")
                .await?;
        let name = req.into_inner().name;
        self.state
            .store
            .retire_node(&name, actor(&who, &seen))
            .await
            .map_err(status)?;
        self.state.changed(&format!("node {name} retired")).await;
        Ok(Response::new(to_pb(&self.node(&name).await?)))
    }

    async fn explain(
        &self,
        req: Request<ExplainRequest>,
    ) -> Result<Response<ExplainResponse>, Status> {
        auth::viewer(&self.state, &req).await?;
        let r = req.into_inner();
        let plan = self.state.plan_for(&r.node).await?;
        let value = plan
            .body
            .attributes
            .get(&r.key)
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let contributions = plan
            .body
            .attributes
            .explain(&r.key)
            .into_iter()
            .map(|c| Contribution {
                source: c.source.to_string(),
                value_json: c.value.to_string(),
                wins: c.wins,
            })
            .collect();
        Ok(Response::new(ExplainResponse {
            value_json: value.to_string(),
            contributions,
        }))
    }
}
