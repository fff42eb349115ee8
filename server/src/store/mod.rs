//! The server's state in SQL: cookbook versions, roles and environments,
//! nodes, certificate revocations, enrollment tokens, secrets, admins, runs
//! and the audit log. Blobs live elsewhere (the blob store); this module only
//! knows which digests the manifests reference.
//!
//! One [`Store`] serves both engines through sqlx's Any driver: SQLite for the
//! embedded default, PostgreSQL for replicas. The SQL is the same text on
//! both (`$1` placeholders, `ON CONFLICT`, `RETURNING`; TEXT and BIGINT
//! columns only, booleans as 0/1, times as unix seconds, JSON as TEXT). Only
//! the migrations (one folder per engine, `server/migrations/`) and the way a
//! write transaction starts differ.
//!
//! Every admin change commits before its method returns and writes its audit
//! row in the same transaction. A change that changes nothing (an identical
//! role, a role a node already has) writes nothing and no audit row; methods
//! that can be such a no-op return [`Saved`] so the caller knows whether to
//! wake anyone.
//!
//! Concurrency: on SQLite the server's writes go through one connection
//! (`pools.rs`), in turn, and every write transaction starts with
//! `BEGIN IMMEDIATE`, so only another process's lock is met, for at most
//! two seconds. On PostgreSQL a read-modify-write first locks the row it
//! changes with a no-op `UPDATE` (the portable spelling of `SELECT ... FOR
//! UPDATE`), and creations use `INSERT ... ON CONFLICT` so that two replicas
//! racing for one name get one winner and one clear error.

mod admins;
mod audit;
mod census;
mod certs;
mod cookbooks;
mod dashboard;
mod deletions;
mod documents;
mod enroll;
mod error;
mod fleet;
mod membership;
mod nodes;
mod plan_guard;
mod plan_nodes;
mod pools;
mod runs;
mod secrets;
mod settings;
mod tokens;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::AnyConnection;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, SqlSafeStr};

pub(crate) use pools::InTime;

pub use admins::{AdminRow, Level};
pub use audit::AuditEvent;
pub use census::Census;
pub use certs::Revocation;
pub use cookbooks::{CookbookVersionRow, Inserted, NewCookbookVersion};
pub use dashboard::DashboardSession;
pub use documents::{DocKind, Document};
pub use enroll::{EnrolledNode, NodeEnrollment, validate_node_name};
pub use error::{Result, StoreError, TokenRefusal};
pub use fleet::{FleetFilter, NodeSummary};
pub use membership::{MemberRow, PASS_EVERY, Timers, Verdicts, is_member};
pub use nodes::{Actor, NodeRow, NodeState};
pub use plan_guard::{
    BreaksPlans, BrokenGroup, BrokenNodes, NAMED_NODES, NodeGroup, PlanCheck, PlanGuard, PlanRows,
};
pub use plan_nodes::PlanNode;
pub use runs::RunRow;
pub use secrets::SecretRow;
pub use tokens::{NewToken, TokenRow};

/// The migrations of each engine, embedded in the binary. Add a migration to
/// both folders and to both lists; a test checks that the lists and the
/// folders agree.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "cluster_settings",
        include_str!("../../migrations/sqlite/0002_cluster_settings.sql"),
    ),
    (
        3,
        "plan_checks",
        include_str!("../../migrations/sqlite/0003_plan_checks.sql"),
    ),
    (
        4,
        "wire_runs_identity",
        include_str!("../../migrations/sqlite/0004_wire_runs_identity.sql"),
    ),
    (
        5,
        "agent_versions",
        include_str!("../../migrations/sqlite/0005_agent_versions.sql"),
    ),
    (
        6,
        "membership",
        include_str!("../../migrations/sqlite/0006_membership.sql"),
    ),
    (
        7,
        "replaces",
        include_str!("../../migrations/sqlite/0007_replaces.sql"),
    ),
    (
        8,
        "admin_levels",
        include_str!("../../migrations/sqlite/0008_admin_levels.sql"),
    ),
    (
        9,
        "dashboard",
        include_str!("../../migrations/sqlite/0009_dashboard.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "cluster_settings",
        include_str!("../../migrations/postgres/0002_cluster_settings.sql"),
    ),
    (
        3,
        "plan_checks",
        include_str!("../../migrations/postgres/0003_plan_checks.sql"),
    ),
    (
        4,
        "wire_runs_identity",
        include_str!("../../migrations/postgres/0004_wire_runs_identity.sql"),
    ),
    (
        5,
        "agent_versions",
        include_str!("../../migrations/postgres/0005_agent_versions.sql"),
    ),
    (
        6,
        "membership",
        include_str!("../../migrations/postgres/0006_membership.sql"),
    ),
    (
        7,
        "replaces",
        include_str!("../../migrations/postgres/0007_replaces.sql"),
    ),
    (
        8,
        "admin_levels",
        include_str!("../../migrations/postgres/0008_admin_levels.sql"),
    ),
    (
        9,
        "dashboard",
        include_str!("../../migrations/postgres/0009_dashboard.sql"),
    ),
];

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    fn of_url(url: &str) -> Result<Engine> {
        if url.starts_with("sqlite:") {
            Ok(Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Engine::Postgres)
        } else {
            Err(StoreError::Invalid(format!(
                "database URL {:?} is neither sqlite://PATH nor postgres://...",
                redact_url(url)
            )))
        }
    }

    fn migrations(self) -> &'static [(i64, &'static str, &'static str)] {
        match self {
            Engine::Sqlite => SQLITE_MIGRATIONS,
            Engine::Postgres => POSTGRES_MIGRATIONS,
        }
    }
}

/// The state store: a pool of connections to SQLite or PostgreSQL. Cheap to
/// clone; clones share the pool.
#[derive(Clone)]
pub struct Store {
    /// Reads (and, on PostgreSQL, everything).
    pool: AnyPool,
    /// Writes: on SQLite a pool of one connection, so the server's own
    /// writers wait their turn here and not on SQLite's lock.
    writer: AnyPool,
    engine: Engine,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine)
            .finish()
    }
}

/// The outcome of a change that may turn out to change nothing: `changed` is
/// false when the stored state already was what was asked (no audit row was
/// written and nobody needs waking).
#[derive(Debug, Clone, PartialEq)]
pub struct Saved<T> {
    pub value: T,
    pub changed: bool,
}

/// Turn a lookup's `NotFound` into `None`, for callers to whom absence is
/// not an error.
pub trait OptionalExt<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExt<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A write transaction on the pool.
pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

impl Store {
    /// Open (and on SQLite create) the database at `url` and bring its
    /// schema up to date. `url` is `sqlite://PATH` (relative or, with a
    /// third slash, absolute; the file is created when missing) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DB`.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let engine = Engine::of_url(url)?;
        let mut url = url.to_string();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if engine == Engine::Sqlite && !in_memory && !url.contains("mode=") {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("mode=rwc");
        }
        if let Some(file) = sqlite_file(&url) {
            private_sqlite_files(&file)?;
        }
        let pools = pools::connect(engine, &url).await?;
        migrate(engine, &pools.write).await?;
        Ok(Store {
            pool: pools.read,
            writer: pools.write,
            engine,
        })
    }

    /// Open an existing SQLite file read-only and exactly as it is: no
    /// migrations, no pragmas that write. For reading a backup's snapshot,
    /// which must not change between being hashed and being restored.
    pub async fn open_snapshot(path: &std::path::Path) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=ro", path.display());
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await?;
        Ok(Store {
            writer: pool.clone(),
            pool,
            engine: Engine::Sqlite,
        })
    }

    /// The connection pool, for what this module does not cover (LISTEN /
    /// NOTIFY on PostgreSQL, health checks).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Whether the store is PostgreSQL (shared by replicas) rather than the
    /// embedded SQLite.
    pub fn is_postgres(&self) -> bool {
        self.engine == Engine::Postgres
    }

    /// The engine behind the store.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Close the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// Start a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so it never fails when it first writes after
    /// reading; it waits for the server's earlier writes (the writer pool)
    /// and at most two seconds for another process's lock.
    pub(crate) async fn write_tx(&self) -> Result<Tx> {
        Ok(match self.engine {
            Engine::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Engine::Postgres => self.writer.begin().in_time().await?,
        })
    }
}

/// The file a writable SQLite URL names; `None` for in-memory and
/// read-only databases, whose files are not ours to change.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let skip = path.is_empty()
        || path.contains(":memory:")
        || query
            .split('&')
            .any(|o| o == "mode=memory" || o == "mode=ro");
    (!skip).then(|| std::path::PathBuf::from(path))
}

/// The database file 0600 before SQLite opens it (its `-wal` and `-shm`
/// files take the database file's mode), and those two closed as well
/// when an older server left them open (docs/server.md).
fn private_sqlite_files(file: &std::path::Path) -> Result<()> {
    let config =
        |e: crate::data_dir::ModeError| StoreError::Database(sqlx::Error::Configuration(e.into()));
    crate::data_dir::ensure_private_file(file).map_err(config)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = file.as_os_str().to_owned();
        side.push(suffix);
        crate::data_dir::set_mode(std::path::Path::new(&side), crate::data_dir::FILE_MODE)
            .map_err(config)?;
    }
    Ok(())
}

/// Bring the schema up to date, on one connection of `pool`. On
/// PostgreSQL without the connections' statement timeout, which is put
/// back before the connection returns to the pool.
async fn migrate(engine: Engine, pool: &sqlx::AnyPool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    if engine == Engine::Postgres {
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut *conn)
            .in_time()
            .await?;
    }
    let migrated = migrator(engine).run(&mut *conn).await;
    if engine == Engine::Postgres {
        sqlx::query(pools::SERVER_STATEMENT_TIMEOUT)
            .execute(&mut *conn)
            .in_time()
            .await?;
    }
    Ok(migrated?)
}

fn migrator(engine: Engine) -> Migrator {
    let migrations = engine
        .migrations()
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                (*description).into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Lock one existing row for the rest of the transaction with a no-op
/// `UPDATE` (a row lock on PostgreSQL; SQLite already holds the write lock).
/// `sql` must be an `UPDATE ... SET c = c WHERE key = $1`. False when no row
/// matched.
pub(crate) async fn lock_row(
    conn: &mut AnyConnection,
    sql: &'static str,
    key: &str,
) -> Result<bool> {
    let done = sqlx::query(sql).bind(key).execute(conn).in_time().await?;
    Ok(done.rows_affected() > 0)
}

/// The current time in unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Serialize a value the store itself built (maps, lists, strings).
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("store values are plain JSON data and always serialize")
}

/// `$1, $2, ... $n`: the placeholders of an `IN (...)` list of `n` bound
/// values.
pub(crate) fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parse a JSON column, naming the row and column when it does not parse.
pub(crate) fn from_json<T: DeserializeOwned>(
    text: &str,
    table: &str,
    key: &str,
    column: &str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(table, key, column, e))
}

/// A database URL without its secrets, for messages: the password of its
/// user part and the value of every query parameter that may hold one
/// (`?password=`, `sslpassword`, ...). A URL that does not parse but may
/// hold a secret is not shown at all.
pub fn redact_url(raw: &str) -> String {
    let secret_key = |k: &str| {
        let k = k.to_ascii_lowercase();
        ["pass", "secret", "token", "key"]
            .iter()
            .any(|s| k.contains(s))
    };
    let Ok(mut url) = url::Url::parse(raw) else {
        return if raw.contains('@') || secret_key(raw) {
            "(a database URL that does not parse, not shown: it may hold a password)".into()
        } else {
            raw.to_string()
        };
    };
    let hides_password = url.password().is_some();
    let hides_query = url.query_pairs().any(|(k, _)| secret_key(&k));
    if !hides_password && !hides_query {
        return raw.to_string();
    }
    if hides_password {
        let _ = url.set_password(Some("***"));
    }
    if hides_query {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret_key(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_shown_without_their_secrets() {
        for (url, shown) in [
            (
                "postgres://cm:hunter2@db:5432/cm",
                "postgres://cm:***@db:5432/cm",
            ),
            (
                "postgres://db/cm?user=cm&password=hunter2&sslmode=require",
                "postgres://db/cm?user=cm&password=***&sslmode=require",
            ),
            (
                "postgres://db/cm?sslpassword=hunter2",
                "postgres://db/cm?sslpassword=***",
            ),
            (
                "sqlite:///var/lib/cm/state.db",
                "sqlite:///var/lib/cm/state.db",
            ),
            ("postgres://db/cm", "postgres://db/cm"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
        let odd = redact_url("postgres://cm:hunter2@[::1");
        assert!(!odd.contains("hunter2"), "{odd}");
    }

    #[test]
    fn every_migration_file_is_embedded() {
        for (engine, dir) in [(Engine::Sqlite, "sqlite"), (Engine::Postgres, "postgres")] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let mut files: Vec<String> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sql"))
                .collect();
            files.sort();
            let listed: Vec<String> = engine
                .migrations()
                .iter()
                .map(|(v, d, _)| format!("{v:04}_{d}.sql"))
                .collect();
            assert_eq!(
                files, listed,
                "migrations/{dir} and the embedded list differ"
            );
        }
    }

    #[test]
    fn both_engines_have_the_same_migrations() {
        let names = |e: Engine| -> Vec<(i64, &str)> {
            e.migrations().iter().map(|(v, d, _)| (*v, *d)).collect()
        };
        assert_eq!(names(Engine::Sqlite), names(Engine::Postgres));
    }

    #[test]
    fn only_writable_sqlite_files_get_their_mode_set() {
        let file = |u: &str| sqlite_file(u).map(|p| p.display().to_string());
        assert_eq!(
            file("sqlite:///d/cm.db?mode=rwc").as_deref(),
            Some("/d/cm.db")
        );
        assert_eq!(file("sqlite://rel.db").as_deref(), Some("rel.db"));
        assert_eq!(file("sqlite::memory:"), None);
        assert_eq!(file("sqlite:///d/cm.db?mode=ro"), None);
        assert_eq!(file("postgres://u@h/db"), None);
    }

    #[test]
    fn urls_choose_the_engine_and_hide_passwords() {
        assert_eq!(Engine::of_url("sqlite://x.db").unwrap(), Engine::Sqlite);
        assert_eq!(
            Engine::of_url("postgres://u:p@h/db").unwrap(),
            Engine::Postgres
        );
        let err = Engine::of_url("mysql://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
