//! The one place the server's typed errors become gRPC statuses: the
//! store's ([`StoreError`]), the shared state's ([`StateError`], a node
//! without a valid plan among them) and a refused run report
//! ([`ReportRefused`]). Codes and messages here are what clients see and
//! what agents act on (the `cm-cause` and plan-error metadata), so the
//! state and the store below never build a status themselves.

use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::plan::PlanError;
use crate::reports::ReportRefused;
use crate::state::StateError;
use crate::store::StoreError;

/// A storage error as the caller sees it, with its message.
pub fn status(e: StoreError) -> Status {
    match e {
        StoreError::NotFound(m) => Status::not_found(m),
        StoreError::Conflict(m) => Status::already_exists(m),
        StoreError::Invalid(m) => Status::invalid_argument(m),
        StoreError::Denied(m) => Status::permission_denied(m.to_string()),
        StoreError::Precondition(m) => Status::failed_precondition(m),
        StoreError::BreaksPlans(b) => Status::failed_precondition(b.to_string()),
        StoreError::Database(e) => {
            metrics::counter!(crate::metrics::STORE_ERRORS).increment(1);
            database_unavailable(Some(&e))
        }
        other => {
            metrics::counter!(crate::metrics::STORE_ERRORS).increment(1);
            tracing::error!(error = %other, "storage error");
            database_unavailable(None)
        }
    }
}

/// A call that failed because the blob store did, counted in
/// `cm_blob_errors_total`.
pub fn blob_error(status: Status) -> Status {
    metrics::counter!(crate::metrics::BLOB_ERRORS).increment(1);
    status
}

impl From<StateError> for Status {
    fn from(e: StateError) -> Status {
        match e {
            StateError::Store(e) => status(e),
            StateError::NoPlan(e) => plan_error_status(&e),
            StateError::Blob(e) => blob_error(Status::internal(e.to_string())),
            // What this server stored cannot be read back: its fault, not
            // the caller's.
            other => Status::internal(other.to_string()),
        }
    }
}

impl From<ReportRefused> for Status {
    fn from(refused: ReportRefused) -> Status {
        match refused {
            ReportRefused::OtherNode { .. } => Status::permission_denied(refused.to_string()),
            ReportRefused::FromTheFuture { .. } | ReportRefused::BeforeTheEpoch(_) => {
                Status::invalid_argument(refused.to_string())
            }
        }
    }
}

/// The status of a GetPlan (or Watch) for a node without a valid plan:
/// FAILED_PRECONDITION with the reason, marked so the agent can tell it
/// from other refusals (`cm_proto::PLAN_ERROR_METADATA`).
fn plan_error_status(e: &PlanError) -> Status {
    let mut status = Status::failed_precondition(StateError::NoPlan(e.clone()).to_string());
    status.metadata_mut().insert(
        cm_proto::PLAN_ERROR_METADATA,
        MetadataValue::from_static("1"),
    );
    status
}

/// The database failed: UNAVAILABLE (the call may work later) with
/// `cm-cause: database`, so agents say "server unavailable" and not
/// "server unreachable", and what happened in a few words (no SQL, no
/// values; the log has the whole error).
fn database_unavailable(e: Option<&sqlx::Error>) -> Status {
    if let Some(e) = e {
        tracing::error!(error = %e, "storage error");
    }
    let what = match e {
        Some(sqlx::Error::PoolTimedOut) => "the database did not answer in time",
        Some(sqlx::Error::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            "the database did not answer in time"
        }
        Some(sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed) => {
            "the database cannot be reached"
        }
        Some(sqlx::Error::Database(db)) => match db.code().as_deref().map(database_failure) {
            Some(Some(what)) => what,
            _ => "the database failed",
        },
        _ => "the database failed",
    };
    let mut status = Status::unavailable(format!("{what}; try again"));
    status.metadata_mut().insert(
        cm_proto::STATUS_CAUSE,
        MetadataValue::from_static("database"),
    );
    status
}

/// What a database error code says about the database (not the call):
/// SQLite's numeric codes, PostgreSQL's five-character SQLSTATEs.
fn database_failure(code: &str) -> Option<&'static str> {
    if code.len() == 5 {
        return match &code[..2] {
            "08" | "57" => Some("the database cannot be reached"),
            "53" => Some("the database is out of resources (disk, memory or connections)"),
            _ => None,
        };
    }
    // SQLite extended codes keep the primary code in their low byte.
    match code.parse::<i32>().ok()? & 0xff {
        5 | 6 => Some("the database is locked by another process"),
        13 => Some("the database's disk is full"),
        10 | 14 => Some("the database cannot be read or written"),
        _ => None,
    }
}
