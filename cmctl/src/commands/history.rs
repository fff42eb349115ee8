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
                why(r),
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
            "WHY",
        ],
        rows,
        &json,
    );
    Ok(())
}

/// Why a run did not succeed, in one line (`cm_model::report::why`); `-`
/// for a success.
fn why(run: &cm_proto::v1::RunSummary) -> String {
    serde_json::from_str::<serde_json::Value>(&run.report_json)
        .ok()
        .and_then(|report| cm_model::report::why(&report))
        .unwrap_or_else(|| "-".into())
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

#[cfg(test)]
mod tests {
    use super::*;
    use cm_proto::v1::RunSummary;

    fn run(report: serde_json::Value) -> RunSummary {
        RunSummary {
            report_json: report.to_string(),
            ..RunSummary::default()
        }
    }

    #[test]
    fn why_names_the_first_failure_or_the_runs_own_error() {
        let failed = serde_json::json!({"resources": [
            {"type": "package", "name": "apache2", "changed": true},
            {"type": "service", "name": "apache2", "error": "exit 1: Job failed\nsee journalctl"},
            {"type": "file", "name": "/x", "error": "denied"},
        ]});
        assert_eq!(
            why(&run(failed)),
            "service[apache2]: exit 1: Job failed (and 1 more)"
        );
        let own = serde_json::json!({"error": "cookbook web: recipes/default.yaml:3: bad", "resources": []});
        assert_eq!(why(&run(own)), "cookbook web: recipes/default.yaml:3: bad");
        let warned = serde_json::json!({"plan_error": "role db does not exist", "resources": []});
        assert_eq!(why(&run(warned)), "plan error: role db does not exist");
        assert_eq!(why(&run(serde_json::json!({"resources": []}))), "-");
        assert_eq!(why(&RunSummary::default()), "-");
        let escaped = serde_json::json!({"error": "\u{1b}[31mred\u{1b}[0m\tdone"});
        assert_eq!(why(&run(escaped)), "?[31mred?[0m?done");
        let long = "x".repeat(500);
        assert_eq!(why(&run(serde_json::json!({"error": long}))).len(), 163);
    }
}
