//! The audit log: who changed what, when, and the state before and after, as
//! JSON text. Rows are written by the other modules inside the transaction
//! of the change they record; this module reads them back, and writes the
//! events that change nothing (a refused enrollment) on their own.

use serde_json::Value;
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::pools::InTime;
use super::{Result, Store};

/// One admin change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// The admin (or `token:ID` for an enrollment).
    pub who: String,
    /// The action and its subject, e.g. `node.assign web-1 memcached`.
    pub what: String,
    /// The state before, as JSON; `None` when the thing did not exist.
    pub before_json: Option<String>,
    /// The state after, as JSON; `None` when the thing was deleted.
    pub after_json: Option<String>,
}

/// Write one audit row on the transaction of the change it records.
pub(crate) async fn record(
    conn: &mut AnyConnection,
    at: i64,
    who: &str,
    what: String,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit (at, who, what, before_json, after_json) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(at)
    .bind(who)
    .bind(what)
    .bind(before.map(|v| v.to_string()))
    .bind(after.map(|v| v.to_string()))
    .execute(conn)
    .in_time()
    .await?;
    Ok(())
}

fn event_from_row(row: &AnyRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        who: row.try_get("who")?,
        what: row.try_get("what")?,
        before_json: row.try_get("before_json")?,
        after_json: row.try_get("after_json")?,
    })
}

impl Store {
    /// Record an event that changed nothing (a refused enrollment): no
    /// state before, `details` as the state after.
    pub async fn record_event(
        &self,
        at: i64,
        who: &str,
        what: String,
        details: Value,
    ) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        record(&mut conn, at, who, what, None, Some(details)).await
    }

    /// The newest `limit` audit events, newest first, optionally only those
    /// of one admin.
    pub async fn audit(&self, limit: u32, who: Option<&str>) -> Result<Vec<AuditEvent>> {
        let limit = i64::from(limit);
        let rows = match who {
            Some(who) => {
                sqlx::query(
                    "SELECT id, at, who, what, before_json, after_json FROM audit \
                     WHERE who = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(who)
                .bind(limit)
                .fetch_all(&self.pool)
                .in_time()
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT id, at, who, what, before_json, after_json FROM audit \
                     ORDER BY id DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .in_time()
                .await?
            }
        };
        rows.iter().map(event_from_row).collect()
    }
}
