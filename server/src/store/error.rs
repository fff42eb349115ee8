//! The one error type of the store, shaped for the API layer: each variant
//! maps to one gRPC status code, and every message is written for the admin
//! or agent who will read it.

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
    /// An enrollment token was refused: unknown, revoked, expired or used
    /// up, each with its own message (`PERMISSION_DENIED`).
    #[error("{0}")]
    Denied(String),
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
