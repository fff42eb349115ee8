//! The Agent service: enrollment, plans, blobs, reports and the watch stream.
//! Every call but Enroll is mutual TLS; a node reads only its own plan, the
//! blobs of cookbooks in it and its own secrets, and writes only its own facts
//! and reports.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cm_proto::v1::agent_server::Agent;
use cm_proto::v1::{
    BlobChunk, Empty, EnrollRequest, EnrollResponse, FactsRequest, FetchBlobRequest,
    GetPlanRequest, GetPlanResponse, RenewRequest, RunSummary, WatchEvent, WatchRequest,
};
use sha2::{Digest, Sha256};
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::auth;
use super::convert;
use super::status::{blob_error, status};
use crate::enroll_refusals::{EnrollRefusal, RefusalLog};
use crate::state::{State, StateError, now};
use crate::store::{NodeEnrollment, StoreError};

/// Blobs stream in chunks this size.
const CHUNK: usize = 1 << 20;

pub struct AgentApi {
    pub state: Arc<State>,
    /// Turns true when the server shuts down: watch streams end then, or
    /// the graceful shutdown would wait for them forever.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Refused enrollments, audited and counted.
    pub refusals: RefusalLog,
}

/// What a server-streaming call answers with: its messages, or the status
/// that ends it.
type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// An enrollment's refusal, when it is one (a failed store is not), and
/// the status the caller gets.
type Refused = (Option<EnrollRefusal>, Status);

impl AgentApi {
    /// Enroll: everything but recording a refusal.
    async fn admit(&self, r: &EnrollRequest) -> Result<EnrollResponse, Refused> {
        let refused = |kind: EnrollRefusal, status: Status| (Some(kind), status);
        crate::version::check_agent(&r.agent_version)
            .map_err(|m| refused(EnrollRefusal::AgentVersion, Status::failed_precondition(m)))?;
        let facts = crate::facts::validate(&r.facts_json)
            .map_err(|m| refused(EnrollRefusal::InvalidRequest, Status::invalid_argument(m)))?;
        let validity = Duration::from_secs(u64::from(self.state.settings.node_cert_days) * 86400);
        let cert = self
            .state
            .pki
            .ca()
            .sign_node_csr(&r.csr_pem, &r.node_name, validity)
            .map_err(|e| {
                refused(
                    EnrollRefusal::InvalidRequest,
                    Status::invalid_argument(e.to_string()),
                )
            })?;
        let facts_json = serde_json::Value::Object(facts).to_string();
        let enrolled = self
            .state
            .store
            .enroll_with_token(
                &token_hash(&r.token),
                &NodeEnrollment {
                    name: r.node_name.clone(),
                    facts_json,
                    cert_serial: cert.serial.clone(),
                    cert_expires_at: cert.not_after,
                    now: now(),
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(m) => {
                    refused(EnrollRefusal::NameHeld, Status::permission_denied(m))
                }
                StoreError::Invalid(m) => {
                    refused(EnrollRefusal::InvalidRequest, Status::permission_denied(m))
                }
                StoreError::Denied(t) => {
                    let status = Status::permission_denied(t.to_string());
                    refused(EnrollRefusal::Token(t), status)
                }
                other => (None, status(other)),
            })?;
        if let Some(serial) = &enrolled.retired_expired {
            // Its certificate expired, so it no longer passes TLS; the
            // revocation is for the record, and the cache must see it.
            self.state.forget_revocations().await;
            tracing::info!(node = %r.node_name, old_serial = %serial, "retired the node whose certificate expired");
        }
        tracing::info!(node = %r.node_name, "node enrolled");
        // A new row, or a retired name taken again: its agent says its
        // version at its first GetPlan.
        self.state.forget_agent_version(&r.node_name).await;
        // It joined its roles: the plans that list them change. The
        // background pass finds them; a burst of enrollments is one pass.
        if let Some(serial) = &enrolled.retired_expired {
            let reason = format!(
                "node {} re-enrolled (certificate {serial} expired)",
                r.node_name
            );
            self.state.changed(&reason).await;
        } else if !enrolled.node.roles.is_empty() {
            let roles = enrolled.node.roles.join(", ");
            let reason = format!("node {} joined {roles}", r.node_name);
            self.state.changed(&reason).await;
        }
        match self.state.plan_for(&r.node_name).await {
            Ok(plan) => self
                .state
                .store
                .set_plan_hash(&r.node_name, &plan.hash)
                .await
                .map_err(|e| (None, status(e)))?,
            Err(e) => {
                tracing::warn!(node = %r.node_name, error = %e, "the new node has no plan yet")
            }
        }
        Ok(EnrollResponse {
            certificate_pem: cert.cert_pem,
            ca_pem: self.state.pki.ca().cert_pem().to_string(),
            expires_at: cert.not_after,
        })
    }
}

#[tonic::async_trait]
impl Agent for AgentApi {
    async fn enroll(
        &self,
        req: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let source = req.remote_addr();
        let r = req.into_inner();
        let admitted = self.admit(&r).await;
        let outcome = if admitted.is_ok() {
            "accepted"
        } else {
            "refused"
        };
        metrics::counter!(crate::metrics::ENROLLMENTS, "outcome" => outcome).increment(1);
        match admitted {
            Ok(response) => Ok(Response::new(response)),
            Err((refusal, status)) => {
                if let Some(refusal) = refusal {
                    self.refusals
                        .record(
                            &self.state.store,
                            now(),
                            &refusal,
                            &r.node_name,
                            source,
                            status.message(),
                        )
                        .await;
                }
                Err(status)
            }
        }
    }

    async fn renew(&self, req: Request<RenewRequest>) -> Result<Response<EnrollResponse>, Status> {
        let (node, _) = auth::node_renewing(&self.state, &req).await?;
        let validity = Duration::from_secs(u64::from(self.state.settings.node_cert_days) * 86400);
        let cert = self
            .state
            .pki
            .ca()
            .sign_node_csr(&req.get_ref().csr_pem, &node, validity)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.state
            .store
            .set_node_cert(&node, &cert.serial, cert.not_after)
            .await
            .map_err(status)?;
        // The old serial is revoked; plans are unchanged.
        self.state.forget_revocations().await;
        Ok(Response::new(EnrollResponse {
            certificate_pem: cert.cert_pem,
            ca_pem: self.state.pki.ca().cert_pem().to_string(),
            expires_at: cert.not_after,
        }))
    }

    async fn get_plan(
        &self,
        req: Request<GetPlanRequest>,
    ) -> Result<Response<GetPlanResponse>, Status> {
        let (node, _) = auth::node(&self.state, &req).await?;
        let r = req.into_inner();
        crate::version::check_agent(&r.agent_version).map_err(Status::failed_precondition)?;
        self.state
            .note_agent_version(&node, &r.agent_version)
            .await?;
        self.state
            .last_seen
            .lock()
            .await
            .insert(node.clone(), now());
        let plan = self.state.plan_for(&node).await?;
        if r.since == plan.hash {
            return Ok(Response::new(GetPlanResponse {
                unchanged: true,
                plan: None,
            }));
        }
        let catalog = self.state.catalog().await?;
        Ok(Response::new(GetPlanResponse {
            unchanged: false,
            plan: Some(convert::plan(&plan, &catalog)),
        }))
    }

    type FetchBlobStream = ResponseStream<BlobChunk>;

    async fn fetch_blob(
        &self,
        req: Request<FetchBlobRequest>,
    ) -> Result<Response<Self::FetchBlobStream>, Status> {
        let (node, _) = auth::node(&self.state, &req).await?;
        let digest = req.into_inner().sha256;
        let plan = self.state.plan_for(&node).await?;
        let catalog = self.state.catalog().await?;
        let allowed = plan.body.cookbooks.iter().any(|c| {
            catalog
                .entry(&c.name, &c.version)
                .is_some_and(|e| e.manifest.entries.iter().any(|m| m.sha256 == digest))
        });
        if !allowed {
            return Err(Status::permission_denied(
                "that blob is not part of a cookbook in this node's plan",
            ));
        }
        let bytes = self
            .state
            .blobs
            .get(&digest)
            .await
            .map_err(|e| blob_error(Status::internal(e.to_string())))?;
        let size = bytes.len() as u64;
        let chunks: Vec<Result<BlobChunk, Status>> = if bytes.is_empty() {
            vec![Ok(BlobChunk {
                sha256: digest.clone(),
                size,
                data: Vec::new(),
            })]
        } else {
            bytes
                .chunks(CHUNK)
                .enumerate()
                .map(|(i, c)| {
                    let first = i == 0;
                    Ok(BlobChunk {
                        sha256: if first { digest.clone() } else { String::new() },
                        size: if first { size } else { 0 },
                        data: c.to_vec(),
                    })
                })
                .collect()
        };
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn report_facts(&self, req: Request<FactsRequest>) -> Result<Response<Empty>, Status> {
        let (node, _) = auth::node(&self.state, &req).await?;
        let facts =
            crate::facts::validate(&req.get_ref().facts_json).map_err(Status::invalid_argument)?;
        let facts = serde_json::Value::Object(facts);
        let before = self.state.store.node(&node).await.map_err(status)?;
        self.state
            .store
            .update_facts(&node, &facts.to_string())
            .await
            .map_err(status)?;
        // Its peers' plans show its address and a few facts: a change of
        // those is a change (every run reports facts; most change nothing).
        let seen = crate::cluster_view::visible;
        if crate::store::is_member(before.state)
            && !before.roles.is_empty()
            && seen(&before.facts) != seen(&facts)
        {
            self.state
                .changed(&format!("node {node}'s address or facts changed"))
                .await;
        }
        Ok(Response::new(Empty {}))
    }

    async fn report_run(&self, req: Request<RunSummary>) -> Result<Response<Empty>, Status> {
        let (node, _) = auth::node(&self.state, &req).await?;
        let mut run = req.into_inner();
        let received_at = now();
        crate::reports::check(&node, &run, received_at)?;
        // The node is who its certificate says (an empty field means it).
        run.node = node.clone();
        if run.report_json.len() > 4 << 20 {
            return Err(Status::invalid_argument("run report larger than 4 MiB"));
        }
        let row = crate::store::RunRow {
            received_at,
            ..convert::run_row(&run)
        };
        self.state.store.insert_run(&row).await.map_err(status)?;
        self.state.last_seen.lock().await.insert(node, now());
        // Known words only: a label value never comes from the client as is.
        let known = |value: &str, words: &[&'static str]| {
            words
                .iter()
                .find(|w| **w == value)
                .copied()
                .unwrap_or("other")
        };
        metrics::counter!(
            crate::metrics::RUNS,
            "status" => known(&run.status, &["success", "warning", "failed"]),
            "cause" => known(&run.cause, &["new_plan", "drift_repair"]),
        )
        .increment(1);
        Ok(Response::new(Empty {}))
    }

    async fn heartbeat(&self, req: Request<Empty>) -> Result<Response<Empty>, Status> {
        let (node, _) = auth::node(&self.state, &req).await?;
        // Written with the next batch of check-ins (a few seconds).
        self.state.last_seen.lock().await.insert(node, now());
        Ok(Response::new(Empty {}))
    }

    type WatchStream = ResponseStream<WatchEvent>;

    async fn watch(
        &self,
        req: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (node, _) = auth::node(&self.state, &req).await?;
        let known = req.into_inner().plan_hash;
        let rx = self.state.hub.subscribe(&node);
        // A node without a valid plan still watches: it is told once (an
        // empty hash) so that its agent runs and reports the error, and it
        // hears of its next valid plan.
        let (current, reason) = match self.state.plan_for(&node).await {
            Ok(plan) => (
                plan.hash.clone(),
                "the plan changed while you were away".to_string(),
            ),
            Err(e @ StateError::NoPlan(_)) => (crate::state::NO_PLAN.to_string(), e.to_string()),
            Err(e) => return Err(e.into()),
        };
        // What this stream's node knows from now on (an event follows if
        // not): a recomputation here compares against it.
        self.state.hub.note(&node, &current);
        let first = (current != known).then(|| WatchEvent {
            plan_hash: current.clone(),
            reason,
        });
        // Only this node's events, the newest when the stream fell behind.
        let events = WatchStream::from_changes(rx).filter_map(|e| {
            e.map(|e| {
                Ok(WatchEvent {
                    plan_hash: e.plan_hash,
                    reason: e.reason,
                })
            })
        });
        let mut stopping = self.stopping.clone();
        let stop = async move {
            let _ = stopping.wait_for(|s| *s).await;
        };
        let events = tokio_stream::iter(first.map(Ok)).chain(events);
        // Counted in cm_watch_streams for as long as the stream lives.
        let open = crate::metrics::WatchStreamOpen::new();
        let events = events.map(move |e| {
            let _ = &open;
            e
        });
        let stream: Self::WatchStream = Box::pin(futures::StreamExt::take_until(events, stop));
        Ok(Response::new(stream))
    }
}
