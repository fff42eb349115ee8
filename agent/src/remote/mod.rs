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

pub mod identity;
pub mod reports;
pub mod sync;
pub mod tls;

use std::path::Path;

/// Why a call to the server did not work, sorted by what the agent does next.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The network or the server is down: retry later, converge from cache.
    #[error("server unreachable: {0}")]
    Unreachable(String),
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

impl From<tonic::Status> for RemoteError {
    fn from(s: tonic::Status) -> RemoteError {
        use tonic::Code;
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
        match s.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Aborted
            | Code::ResourceExhausted => RemoteError::Unreachable(msg),
            Code::Unauthenticated => RemoteError::Revoked(msg),
            Code::PermissionDenied
            | Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::NotFound
            | Code::AlreadyExists
            | Code::OutOfRange
            | Code::Unimplemented => RemoteError::Refused(msg),
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
