//! `cmctl runs [NODE]` and `cmctl audit`.

use anyhow::Result;
use cm_proto::v1::audit_client::AuditClient;
use cm_proto::v1::runs_client::RunsClient;
use cm_proto::v1::{ListAuditRequest, ListRunsRequest};
use tonic::transport::Channel;

use crate::output::{self, Format};

pub async fn runs(
    channel: Channel,
    node: Option<String>,
    limit: u32,
    all_identities: bool,
    format: Format,
) -> Result<()> {
    let runs = RunsClient::new(channel)
        .list(ListRunsRequest {
            node: node.unwrap_or_default(),
            limit,
            all_identities,
        })
        .await?
        .into_inner()
        .runs;
    let rows = runs
        .iter()
        .map(|r| {
            vec![
                output::time(r.at),
                r.node.clone(),
                r.status.clone(),
                format!(
                    "{}/{}/{}",
                    r.resources_total, r.resources_changed, r.resources_failed
                ),
                format!("{} ms", r.duration_ms),
                r.cause.clone(),
                format!("{} s", r.plan_age_seconds),
                identity(r),
            ]
        })
        .collect();
    let json: Vec<_> = runs
        .iter()
        .map(|r| serde_json::json!({"node": r.node, "at": r.at, "status": r.status, "resources_total": r.resources_total,
            "resources_changed": r.resources_changed, "resources_failed": r.resources_failed, "duration_ms": r.duration_ms,
            "cause": r.cause, "plan_hash": r.plan_hash, "plan_age_seconds": r.plan_age_seconds,
            "received_at": r.received_at, "identity": r.identity, "retired_identity": r.retired_identity,
            "report": serde_json::from_str::<serde_json::Value>(&r.report_json).unwrap_or_default()}))
        .collect();
    output::print(
        format,
        &[
            "AT",
            "NODE",
            "STATUS",
            "TOTAL/CHANGED/FAILED",
            "TOOK",
            "CAUSE",
            "PLAN AGE",
            "IDENTITY",
        ],
        rows,
        &json,
    );
    Ok(())
}

/// The enrollment a run came from: its first 8 hex digits, and `retired`
/// when the name has been enrolled again since.
fn identity(run: &cm_proto::v1::RunSummary) -> String {
    let short: String = run.identity.chars().take(8).collect();
    if run.retired_identity {
        format!("{short} (retired)")
    } else {
        short
    }
}

pub async fn audit(
    channel: Channel,
    who: Option<String>,
    limit: u32,
    format: Format,
) -> Result<()> {
    let events = AuditClient::new(channel)
        .list(ListAuditRequest {
            limit,
            who: who.unwrap_or_default(),
        })
        .await?
        .into_inner()
        .events;
    let rows = events
        .iter()
        .map(|e| vec![output::time(e.at), e.who.clone(), e.what.clone()])
        .collect();
    let json: Vec<_> = events
        .iter()
        .map(|e| serde_json::json!({"at": e.at, "who": e.who, "what": e.what, "before": e.before, "after": e.after}))
        .collect();
    output::print(format, &["AT", "WHO", "WHAT"], rows, &json);
    Ok(())
}
