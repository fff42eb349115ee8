//! The database half of a backup: a consistent copy of the live SQLite
//! database taken while the server writes to it, and the checks a copy must
//! pass before anyone relies on it.
//!
//! `VACUUM INTO` reads the database in one read transaction, so the copy is
//! the database as of one instant (in WAL mode readers never wait for the
//! writer, and the writer never waits for them); it writes a compact,
//! self-contained file with no WAL beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};

use crate::store::Store;

/// How long the snapshot waits for a lock (only schema changes take one
/// that blocks readers).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// What a snapshot holds, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotContents {
    /// Rows per kind of thing: `cookbook_versions`, `roles`, ...
    pub counts: BTreeMap<String, u64>,
    /// The blobs its cookbook versions reference.
    pub referenced: BTreeSet<String>,
}

/// Row counts the manifest carries, so an operator can see what a backup
/// holds without opening it.
const COUNTS: &[(&str, &str)] = &[
    (
        "cookbook_versions",
        "SELECT COUNT(*) FROM cookbook_versions",
    ),
    (
        "roles",
        "SELECT COUNT(*) FROM documents WHERE kind = 'role'",
    ),
    (
        "environments",
        "SELECT COUNT(*) FROM documents WHERE kind = 'environment'",
    ),
    ("nodes", "SELECT COUNT(*) FROM nodes"),
    ("tokens", "SELECT COUNT(*) FROM tokens"),
    ("secrets", "SELECT COUNT(*) FROM secrets"),
    ("admins", "SELECT COUNT(*) FROM admins"),
    ("runs", "SELECT COUNT(*) FROM runs"),
    ("audit_events", "SELECT COUNT(*) FROM audit"),
];

/// Copy the live database at `live` into the new file `into`, consistently,
/// and fsync the copy (`VACUUM INTO` does not).
pub async fn take(live: &Path, into: &Path) -> Result<()> {
    let Some(target) = into.to_str() else {
        bail!("{}: the backup path must be UTF-8", into.display());
    };
    // No create: a wrong data dir must not produce an empty database.
    let options = SqliteConnectOptions::new()
        .filename(live)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening the database {}", live.display()))?;
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut conn)
        .await
        .with_context(|| format!("copying {} into {}", live.display(), into.display()));
    let _ = conn.close().await;
    copied?;
    // The database holds token hashes and encrypted secrets: owner only.
    std::fs::File::open(into)
        .and_then(|f| {
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.sync_all()
        })
        .with_context(|| format!("writing {}", into.display()))
}

/// Check the snapshot at `path` (SQLite's integrity check) and read what it
/// holds, without changing a byte of it.
pub async fn inspect(path: &Path) -> Result<SnapshotContents> {
    let store = Store::open_snapshot(path)
        .await
        .with_context(|| format!("opening the database snapshot {}", path.display()))?;
    let contents = read_contents(&store).await;
    store.close().await;
    contents.with_context(|| format!("database snapshot {}", path.display()))
}

async fn read_contents(store: &Store) -> Result<SnapshotContents> {
    let problems: Vec<String> = sqlx::query("PRAGMA integrity_check")
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    if problems != ["ok"] {
        bail!("fails SQLite's integrity check: {}", problems.join("; "));
    }
    let mut counts = BTreeMap::new();
    for (name, sql) in COUNTS {
        let n: i64 = sqlx::query(*sql)
            .fetch_one(store.pool())
            .await?
            .try_get(0)?;
        counts.insert(name.to_string(), u64::try_from(n).unwrap_or_default());
    }
    let referenced = store.referenced_blobs().await?.into_iter().collect();
    Ok(SnapshotContents { counts, referenced })
}
