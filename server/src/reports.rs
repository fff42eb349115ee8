//! What the server takes of a run report before it stores it: the report
//! must be the sender's own, and must not say it started in the future.
//!
//! A node writes only its own reports (docs/architecture.md, "Invariants"): a report whose
//! node field names another node is refused, not quietly filed under the
//! sender. Its start time is the agent's clock: one further ahead of the
//! server's than [`CLOCK_SKEW_SECS`] is refused, since it would sort above
//! every real run for as long as it is kept. Older reports are taken (an
//! agent delivers what it queued while the server was away, oldest first);
//! the store keeps the server's receipt time beside the start time.

use cm_proto::v1::RunSummary;

/// How far ahead of the server's clock a report's start time may be
/// (docs/server.md).
pub const CLOCK_SKEW_SECS: i64 = 5 * 60;

/// Why a report is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportRefused {
    #[error("this certificate is node {sender}'s: it may not report runs of node {claimed}")]
    OtherNode { sender: String, claimed: String },
    #[error(
        "the report says its run started at {} UTC, {ahead} s ahead of the server's clock \
         (at most {CLOCK_SKEW_SECS} s is accepted): check this node's clock",
        cm_model::time::utc(*at)
    )]
    FromTheFuture { at: i64, ahead: i64 },
    #[error("the report's start time {0} is before 1970")]
    BeforeTheEpoch(i64),
}

/// Check a report `sender` (the node its certificate names) sent, at
/// `now` by the server's clock. An empty node field means the sender.
pub fn check(sender: &str, run: &RunSummary, now: i64) -> Result<(), ReportRefused> {
    if !run.node.is_empty() && run.node != sender {
        return Err(ReportRefused::OtherNode {
            sender: sender.to_string(),
            claimed: run.node.clone(),
        });
    }
    if run.at < 0 {
        return Err(ReportRefused::BeforeTheEpoch(run.at));
    }
    let ahead = run.at.saturating_sub(now);
    if ahead > CLOCK_SKEW_SECS {
        return Err(ReportRefused::FromTheFuture { at: run.at, ahead });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, at: i64) -> RunSummary {
        RunSummary {
            node: node.into(),
            at,
            ..RunSummary::default()
        }
    }

    #[test]
    fn own_reports_from_the_past_and_within_the_margin_are_taken() {
        let now = 1_800_000_000;
        for run in [
            report("n1", now),
            report("", now),
            report("n1", now - 30 * 86400),
            report("n1", now + CLOCK_SKEW_SECS),
        ] {
            assert_eq!(check("n1", &run, now), Ok(()), "{run:?}");
        }
        assert!(matches!(
            check("n1", &report("n2", now), now),
            Err(ReportRefused::OtherNode { .. })
        ));
        let refused = check("n1", &report("n1", now + 3600), now).unwrap_err();
        assert_eq!(
            refused,
            ReportRefused::FromTheFuture {
                at: now + 3600,
                ahead: 3600
            }
        );
        assert!(refused.to_string().contains("3600 s ahead"), "{refused}");
    }
}
