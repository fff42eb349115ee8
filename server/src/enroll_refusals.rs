//! Refused enrollments, audited and counted: an unknown, revoked, expired or
//! used-up token, a name a live node holds, a request that does not hold
//! together, an agent too old. Each is an audit row by `enrollment`
//! (`node.enroll.refused NAME`, with the reason, the message the caller
//! got, the source address and the token's id when the token exists; never
//! the token) and a count in `cm_enrollments_refused_total{reason}`.
//!
//! Enroll is the one call anyone may make, so a flood of refusals must not
//! become a flood of database writes: at most [`AUDITED_PER_MINUTE`] are
//! written each minute, the rest only counted
//! (`cm_enrollments_refused_unaudited_total`).

use std::net::SocketAddr;
use std::sync::Mutex;

use serde_json::json;

use crate::store::{Store, TokenRefusal};

/// Audit rows written for refused enrollments in one minute, at most.
pub const AUDITED_PER_MINUTE: u32 = 60;

/// Why an enrollment was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollRefusal {
    Token(TokenRefusal),
    /// A live node holds the name.
    NameHeld,
    /// The CSR, the name or the facts do not hold together.
    InvalidRequest,
    /// The agent's version is not served.
    AgentVersion,
}

impl EnrollRefusal {
    /// The metrics label and the audit's `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            EnrollRefusal::Token(t) => t.reason(),
            EnrollRefusal::NameHeld => "name_held",
            EnrollRefusal::InvalidRequest => "invalid_request",
            EnrollRefusal::AgentVersion => "agent_version",
        }
    }
}

/// The audit's rate limit: a fixed window of one minute.
#[derive(Debug, Default)]
pub struct RefusalLog {
    window: Mutex<(i64, u32)>,
}

impl RefusalLog {
    /// Count the refusal, and audit it unless this minute's rows are spent.
    /// `message` is what the caller was told; it never holds the token.
    pub async fn record(
        &self,
        store: &Store,
        now: i64,
        refusal: &EnrollRefusal,
        node: &str,
        source: Option<SocketAddr>,
        message: &str,
    ) {
        let reason = refusal.reason();
        metrics::counter!("cm_enrollments_refused_total", "reason" => reason).increment(1);
        tracing::info!(%reason, node = %node.escape_debug(), source = ?source, "enrollment refused");
        if !self.take(now) {
            metrics::counter!("cm_enrollments_refused_unaudited_total").increment(1);
            return;
        }
        let token = match refusal {
            EnrollRefusal::Token(t) => t.token_id(),
            _ => None,
        };
        // The name is the caller's text: it goes into the subject only when
        // it is a valid node name, and into the JSON (escaped) always.
        let what = match crate::store::validate_node_name(node) {
            Ok(()) => format!("node.enroll.refused {node}"),
            Err(_) => "node.enroll.refused".to_string(),
        };
        let details = json!({
            "reason": reason,
            "message": message,
            "node": node,
            "source": source.map(|s| s.to_string()),
            "token": token,
        });
        if let Err(e) = store.record_event(now, "enrollment", what, details).await {
            tracing::warn!(error = %e, "cannot audit a refused enrollment");
        }
    }

    fn take(&self, now: i64) -> bool {
        let Ok(mut window) = self.window.lock() else {
            return false;
        };
        let minute = now.div_euclid(60);
        if window.0 != minute {
            *window = (minute, 0);
        }
        window.1 += 1;
        window.1 <= AUDITED_PER_MINUTE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_rows_are_limited_per_minute() {
        let log = RefusalLog::default();
        let minute = 1_800_000_000 / 60 * 60;
        let taken = (0..100).filter(|_| log.take(minute)).count();
        assert_eq!(taken, AUDITED_PER_MINUTE as usize);
        assert!(log.take(minute + 60), "a new minute, new rows");
    }
}
