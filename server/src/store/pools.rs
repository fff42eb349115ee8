//! The store's connections: how long a call waits, who writes, and what is
//! done with a connection a failed write left behind.
//!
//! - On SQLite the server's own writes go through a pool of one connection,
//!   so they queue in the process (in order, up to [`WRITER_QUEUE`]) rather
//!   than on SQLite's lock; the busy timeout then only meets another
//!   process's lock, and a lock held longer than [`FOREIGN_LOCK_WAIT`] fails
//!   the call (UNAVAILABLE, see `api::status`). Reads use the other pool;
//!   in WAL mode they never wait for a writer. PostgreSQL has one pool for
//!   both.
//! - A connection is waited for at most [`ACQUIRE_TIMEOUT`]: a PostgreSQL
//!   that cannot be reached fails calls in seconds, not half a minute.
//! - A transaction the database ended by itself (SQLite rolls back when the
//!   disk is full) is still counted as open by sqlx, and every later
//!   `BEGIN` on that connection would fail ("non-zero transaction depth")
//!   until a restart. A connection taken from a pool still counted in a
//!   transaction is closed instead, so the write opens a fresh one.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, AssertSqlSafe, Connection};

use super::{Engine, Result};

/// How long a SQLite write waits for another process's lock.
pub const FOREIGN_LOCK_WAIT: Duration = Duration::from_secs(2);
/// How long a call waits for a connection (a read, or any PostgreSQL call).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a SQLite write waits for the server's own writes before it.
pub const WRITER_QUEUE: Duration = Duration::from_secs(60);

/// Set on every SQLite connection. `synchronous = FULL` rather than NORMAL:
/// in WAL mode NORMAL may lose the last commits on power loss, and an admin
/// change must be durable once acknowledged. The cost is one WAL fsync per
/// commit; the hot paths (check-ins) are batched by the caller.
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
];

/// The pool reads use and the one writes use (the same on PostgreSQL and
/// for an in-memory SQLite database).
pub(super) struct Pools {
    pub read: AnyPool,
    pub write: AnyPool,
}

fn options(engine: Engine) -> AnyPoolOptions {
    let options = AnyPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // Runs after the pool's own ping, which carries out the rollback a
        // dropped transaction queued: a count still above zero is stuck.
        .before_acquire(|conn, _meta| Box::pin(async move { Ok(!conn.is_in_transaction()) }));
    match engine {
        Engine::Postgres => options,
        Engine::Sqlite => options.after_connect(|conn, _meta| {
            Box::pin(async move {
                for pragma in SQLITE_PRAGMAS {
                    sqlx::query(*pragma).execute(&mut *conn).await?;
                }
                let busy = format!("PRAGMA busy_timeout = {}", FOREIGN_LOCK_WAIT.as_millis());
                sqlx::query(AssertSqlSafe(busy)).execute(&mut *conn).await?;
                Ok(())
            })
        }),
    }
}

/// Connect to `url` (a SQLite URL already carries its `mode=`).
pub(super) async fn connect(engine: Engine, url: &str) -> Result<Pools> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if engine == Engine::Postgres || in_memory {
        // Each in-memory connection would get its own empty database.
        let options = match in_memory {
            true => options(engine).max_connections(1),
            false => options(engine),
        };
        let pool = options.connect(url).await?;
        return Ok(Pools {
            read: pool.clone(),
            write: pool,
        });
    }
    let write = options(engine)
        .max_connections(1)
        .acquire_timeout(WRITER_QUEUE)
        .connect(url)
        .await?;
    let read = options(engine).connect(url).await?;
    Ok(Pools { read, write })
}
