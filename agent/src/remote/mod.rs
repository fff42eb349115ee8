//! The agent's side of the server: trust, identity, plan sync and reports.
//! Everything it keeps lives in the state dir (0700, docs/agent.md):
//!
//! ```text
//! identity.json    name, key, certificate, CA (0600)
//! plan.pb          the last plan the server gave, secrets included (0600)
//! plan.checked     when the server last confirmed it (unix seconds)
//! converged        the hash of the plan last converged
//! blobs/SHA256     cookbook files by content
//! reports/*.pb     run reports not yet delivered
//! ```

pub mod backoff;
pub mod identity;
pub mod reports;
pub mod sync;
pub mod tls;

use std::path::Path;

/// Why a call to the server did not work, sorted by what the agent does next.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// No answer now (see [`Outage`] for which kind): retry later with
    /// backoff and jitter, converge from cache.
    #[error("{0}")]
    Unreachable(Outage),
    /// The server said no (bad token, name taken, bad request): retrying
    /// the same thing will not help.
    #[error("{0}")]
    Refused(String),
    /// This node's certificate is revoked or expired: it must enroll again.
    #[error("{0}")]
    Revoked(String),
    /// The server has no valid plan for this node (a pin no version meets,
    /// a missing cookbook or role): converge the last good plan and report
    /// this as the run's plan error.
    #[error("{0}")]
    NoPlan(String),
    #[error("{0}")]
    Other(String),
    /// The agent cannot work on this machine as set up: settings missing
    /// (no server, fingerprint or token), or its state cannot be kept.
    #[error("{0}")]
    Local(String),
}

/// The kinds of "no answer now", each told apart for the operator reading
/// the log; the agent retries them all the same way.
#[derive(Debug, thiserror::Error)]
pub enum Outage {
    /// The network or the server process is down.
    #[error("server unreachable: {0}")]
    Network(String),
    /// The server answered, but its database did not (locked, down).
    #[error("server unavailable: {0}")]
    Database(String),
    /// The server refused more work for now (too many connections or
    /// handshakes, a message over its limit).
    #[error("server busy: {0}")]
    Busy(String),
    /// TLS failed because this machine's clock is earlier than the start
    /// of the server's certificate: the server is fine, this clock is not.
    #[error(
        "your clock is at least {behind_secs} s behind: the server's certificate starts at {} UTC \
         (fix this machine's time, e.g. NTP)",
        cm_model::time::utc(*not_before)
    )]
    ClockBehind { behind_secs: u64, not_before: i64 },
}

impl RemoteError {
    /// A network failure, as [`Outage::Network`].
    pub fn unreachable(message: impl Into<String>) -> RemoteError {
        RemoteError::Unreachable(Outage::Network(message.into()))
    }
}

/// How far this machine's clock is behind the server certificate's start,
/// when that is why the TLS handshake failed: the error, somewhere in the
/// chain under the status, is rustls' `NotValidYetContext`.
fn clock_behind(status: &tonic::Status) -> Option<Outage> {
    use rustls::CertificateError;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(status);
    while let Some(err) = next {
        // io::Error's source() skips the error it wraps: look inside too.
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|e| e as &(dyn std::error::Error + 'static));
        for candidate in [Some(err), inner].into_iter().flatten() {
            if let Some(rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
                time,
                not_before,
            })) = candidate.downcast_ref::<rustls::Error>()
            {
                return Some(Outage::ClockBehind {
                    behind_secs: not_before.as_secs().saturating_sub(time.as_secs()),
                    not_before: i64::try_from(not_before.as_secs()).unwrap_or(i64::MAX),
                });
            }
        }
        next = err.source();
    }
    None
}

impl From<tonic::Status> for RemoteError {
    fn from(s: tonic::Status) -> RemoteError {
        use tonic::Code;
        if let Some(clock) = clock_behind(&s) {
            return RemoteError::Unreachable(clock);
        }
        let msg = if s.message().is_empty() {
            s.code().description().to_string()
        } else {
            s.message().to_string()
        };
        if s.code() == Code::FailedPrecondition
            && s.metadata().contains_key(cm_proto::PLAN_ERROR_METADATA)
        {
            return RemoteError::NoPlan(msg);
        }
        let cause = s
            .metadata()
            .get(cm_proto::STATUS_CAUSE)
            .and_then(|cause| cause.to_str().ok());
        match (s.code(), cause) {
            (Code::Unavailable, Some("database")) => {
                RemoteError::Unreachable(Outage::Database(msg))
            }
            (Code::ResourceExhausted, Some("busy")) => RemoteError::Unreachable(Outage::Busy(msg)),
            (code, _) => RemoteError::from_code(code, msg),
        }
    }
}

impl RemoteError {
    fn from_code(code: tonic::Code, msg: String) -> RemoteError {
        use tonic::Code;
        match code {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Aborted => RemoteError::unreachable(msg),
            Code::Unauthenticated => RemoteError::Revoked(msg),
            Code::PermissionDenied
            | Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::NotFound
            | Code::AlreadyExists
            | Code::OutOfRange
            | Code::Unimplemented
            // Without `cm-cause: busy`, a message over the server's limit:
            // sending it again will not help.
            | Code::ResourceExhausted => RemoteError::Refused(msg),
            Code::Ok | Code::Internal | Code::DataLoss => RemoteError::Other(msg),
        }
    }
}

/// Create the state dir, private to root.
pub fn ensure_state_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for sub in ["blobs", "reports"] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.join(sub))?;
    }
    Ok(())
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cause(code: tonic::Code, cause: &'static str) -> tonic::Status {
        let mut status = tonic::Status::new(code, "m");
        status
            .metadata_mut()
            .insert(cm_proto::STATUS_CAUSE, cause.parse().unwrap());
        status
    }

    #[test]
    fn server_states_are_told_apart_from_refusals() {
        let database = RemoteError::from(with_cause(tonic::Code::Unavailable, "database"));
        assert_eq!(database.to_string(), "server unavailable: m");
        let busy = RemoteError::from(with_cause(tonic::Code::ResourceExhausted, "busy"));
        assert!(matches!(busy, RemoteError::Unreachable(Outage::Busy(_))));
        let down = RemoteError::from(tonic::Status::unavailable("m"));
        assert_eq!(down.to_string(), "server unreachable: m");
        // A message over the server's limit: retrying cannot help.
        let too_large = RemoteError::from(tonic::Status::resource_exhausted("m"));
        assert!(matches!(too_large, RemoteError::Refused(_)));
    }
}
