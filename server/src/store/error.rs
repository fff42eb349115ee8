//! The one error type of the store, shaped for the API layer: each variant
//! maps to one gRPC status code, and every message is written for the admin
//! or agent who will read it.

/// Why an enrollment token could not be used; the message says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("unknown enrollment token")]
    Unknown,
    #[error("enrollment token {id} was revoked")]
    Revoked { id: String },
    /// Times in unix seconds, shown as a UTC date and how long ago.
    #[error("enrollment token {id} expired {}", cm_model::time::utc_and_relative(*.expires_at, *.now))]
    Expired {
        id: String,
        expires_at: i64,
        now: i64,
    },
    #[error("enrollment token {id} is used up")]
    UsedUp { id: String },
    /// Only reachable if the row changed between two statements.
    #[error("enrollment token {id} could not be used; try again")]
    Raced { id: String },
}

impl TokenRefusal {
    /// A short stable name, for metrics and the audit.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenRefusal::Unknown => "unknown_token",
            TokenRefusal::Revoked { .. } => "revoked_token",
            TokenRefusal::Expired { .. } => "expired_token",
            TokenRefusal::UsedUp { .. } => "used_up_token",
            TokenRefusal::Raced { .. } => "token_raced",
        }
    }

    /// The token's id (never its secret), when the token exists.
    pub fn token_id(&self) -> Option<&str> {
        match self {
            TokenRefusal::Unknown => None,
            TokenRefusal::Revoked { id }
            | TokenRefusal::Expired { id, .. }
            | TokenRefusal::UsedUp { id }
            | TokenRefusal::Raced { id } => Some(id),
        }
    }
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist (`NOT_FOUND`).
    #[error("{0}")]
    NotFound(String),
    /// The change contradicts what is stored: different content under an
    /// existing cookbook version, a node name an active node holds, an admin
    /// that already exists (`ALREADY_EXISTS` or `FAILED_PRECONDITION`).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is malformed: a version that is not semver, an
    /// attribute key that is not dotted, JSON that does not parse
    /// (`INVALID_ARGUMENT`).
    #[error("{0}")]
    Invalid(String),
    /// The change needs something the store does not hold, or would remove
    /// something still in use: a role that nodes or tokens name, an
    /// environment that does not exist (`FAILED_PRECONDITION`). The message
    /// names what is missing or who uses it.
    #[error("{0}")]
    Precondition(String),
    /// An enrollment token was refused: unknown, revoked, expired or used
    /// up, each with its own message (`PERMISSION_DENIED`).
    #[error("{0}")]
    Denied(TokenRefusal),
    /// A change would leave nodes that have a plan without one; refused
    /// unless forced (`FAILED_PRECONDITION`). The message names the nodes
    /// and the reason.
    #[error(transparent)]
    BreaksPlans(#[from] super::plan_guard::BreaksPlans),
    /// The database failed or could not be reached (`UNAVAILABLE` or
    /// `INTERNAL`).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date when the store opened.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// A stored JSON column that no longer parses: the database was edited
    /// by hand or by a newer server.
    pub(crate) fn corrupt(
        table: &str,
        key: &str,
        column: &str,
        err: impl std::fmt::Display,
    ) -> Self {
        StoreError::Database(sqlx::Error::Decode(
            format!("{table} {key:?}: column {column} holds invalid data: {err}").into(),
        ))
    }
}

/// Results of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
