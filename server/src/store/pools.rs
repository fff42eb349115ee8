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
//! - Every statement is waited for at most [`STATEMENT_DEADLINE`]
//!   ([`InTime`]): a PostgreSQL that stops answering on a connection that
//!   stays up (a stopped process, a lock nobody releases, a network path
//!   that drops packets without a reset) fails the call instead of holding
//!   it, and the background passes with it, until TCP gives up. sqlx has no
//!   socket timeout to ask for; the connection given up on is closed when
//!   the pool next hands it out (its ping fails, or it still counts a
//!   transaction). PostgreSQL cancels such a statement by itself a second
//!   later (`statement_timeout`), so it holds no lock after the call failed.
//! - A transaction the database ended by itself (SQLite rolls back when the
//!   disk is full) is still counted as open by sqlx, and every later
//!   `BEGIN` on that connection would fail ("non-zero transaction depth")
//!   until a restart. A connection taken from a pool still counted in a
//!   transaction is closed instead, so the write opens a fresh one.

use std::time::Duration;

use futures::FutureExt;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, AssertSqlSafe, Connection};
use tokio::time::error::Elapsed;

use super::{Engine, Result};

/// How long a SQLite write waits for another process's lock.
pub const FOREIGN_LOCK_WAIT: Duration = Duration::from_secs(2);
/// How long a call waits for a connection (a read, or any PostgreSQL call).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a SQLite write waits for the server's own writes before it.
pub const WRITER_QUEUE: Duration = Duration::from_secs(60);
/// How long one statement (a query, a commit) may take to be answered.
pub const STATEMENT_DEADLINE: Duration = Duration::from_secs(15);

/// A database call that fails with a time-out error once it has waited
/// [`STATEMENT_DEADLINE`] (`api::status` says "the database did not answer
/// in time").
pub(crate) trait InTime<T>: Future<Output = Result<T, sqlx::Error>> + Sized {
    fn in_time(self) -> Answered<Self, T> {
        tokio::time::timeout(STATEMENT_DEADLINE, self).map(answered::<T> as fn(_) -> _)
    }
}

impl<F, T> InTime<T> for F where F: Future<Output = Result<T, sqlx::Error>> {}

/// The future [`InTime::in_time`] returns (named, so it stays `Send`).
pub(crate) type Answered<F, T> = futures::future::Map<
    tokio::time::Timeout<F>,
    fn(Result<Result<T, sqlx::Error>, Elapsed>) -> Result<T, sqlx::Error>,
>;

fn answered<T>(r: Result<Result<T, sqlx::Error>, Elapsed>) -> Result<T, sqlx::Error> {
    r.unwrap_or_else(|_| {
        Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the database did not answer within {} s",
                STATEMENT_DEADLINE.as_secs()
            ),
        )))
    })
}

/// Set on every PostgreSQL connection: the database itself cancels a
/// statement a second after [`STATEMENT_DEADLINE`], when the store has
/// given up on it, instead of running it (and holding its locks) until it
/// ends. Migrations run without it (`Store::open`): a schema change on a
/// large table may take longer.
pub(super) const SERVER_STATEMENT_TIMEOUT: &str = "SET statement_timeout = '16s'";

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
        Engine::Postgres => options.after_connect(|conn, _meta| {
            Box::pin(async move {
                sqlx::query(SERVER_STATEMENT_TIMEOUT)
                    .execute(&mut *conn)
                    .in_time()
                    .await?;
                Ok(())
            })
        }),
        Engine::Sqlite => options.after_connect(|conn, _meta| {
            Box::pin(async move {
                for pragma in SQLITE_PRAGMAS {
                    sqlx::query(*pragma).execute(&mut *conn).in_time().await?;
                }
                let busy = format!("PRAGMA busy_timeout = {}", FOREIGN_LOCK_WAIT.as_millis());
                sqlx::query(AssertSqlSafe(busy))
                    .execute(&mut *conn)
                    .in_time()
                    .await?;
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

#[cfg(test)]
mod tests {
    /// The calls that send a statement and wait for its answer.
    const STATEMENTS: &[&str] = &[
        ".execute(",
        ".fetch_one(",
        ".fetch_optional(",
        ".fetch_all(",
        ".commit(",
        ".rollback(",
    ];

    /// The end of the call whose `(` is at `open`.
    fn close_of(text: &str, open: usize) -> usize {
        let mut depth = 0;
        for (i, c) in text[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 1 => return open + i + 1,
                ')' => depth -= 1,
                _ => {}
            }
        }
        panic!("unbalanced call at byte {open}")
    }

    #[test]
    fn every_statement_of_the_store_is_waited_for_in_time() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
        let mut late = Vec::new();
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            // This module's own tests name the calls.
            let text = text.split("#[cfg(test)]").next().unwrap();
            for call in STATEMENTS {
                for (at, _) in text.match_indices(call) {
                    let after = text[close_of(text, at + call.len() - 1)..].trim_start();
                    if after.starts_with(".await") {
                        let line = text[..at].lines().count();
                        late.push(format!("{}:{line}: {call}", path.display()));
                    }
                    seen += 1;
                }
            }
        }
        assert!(
            seen > 50,
            "only {seen} statements found in {}",
            dir.display()
        );
        assert!(late.is_empty(), "awaited without .in_time(): {late:#?}");
    }
}
