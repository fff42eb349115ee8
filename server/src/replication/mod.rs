//! Several server processes on one PostgreSQL database and one S3 bucket act
//! as one server (docs/server.md, "Scale-out"). Each replica caches plans, the
//! cookbook catalog and the revoked serials in memory, so each must hear of
//! every change, wherever it was made:
//!
//! - [`notify`]: every [`State::changed`] sends `NOTIFY cm_changes,
//!   '<replica id>:<reason>'` after the change committed;
//! - [`start`]: a task per replica LISTENs on `cm_changes` and, for a
//!   notification from another replica, runs [`State::changed_elsewhere`]:
//!   the caches are dropped at once (the next GetPlan here resolves the new
//!   plan) and a pass of the background recomputation is queued, which wakes
//!   this replica's Watch streams; notifications that arrive while a pass
//!   runs are merged into the next one ([`crate::recompute`]).
//!
//! Notifications sent while the listening connection is down are lost, so
//! after reconnecting (with backoff) a replica acts as if something
//! changed. On SQLite (one process) none of this runs.
//!
//! [`identity`] keeps replicas from disagreeing on the CA or the secrets key.

pub mod identity;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rand::RngCore;
use sqlx::postgres::PgListener;
use sqlx::{AssertSqlSafe, SqlSafeStr};
use tokio::task::JoinHandle;

use crate::state::State;
use crate::store::InTime;

/// The PostgreSQL channel replicas notify each other on.
pub const CHANNEL: &str = "cm_changes";

/// PostgreSQL refuses payloads of 8000 bytes or more; reasons are cut well
/// below that.
const MAX_REASON: usize = 1000;

/// Reconnection backoff: first retry at once, then doubling up to the cap.
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Why a replica recomputes after losing its listening connection.
pub const RECONNECTED: &str = "reconnected to the database; changes made meanwhile are re-read";

/// A random name for this process, unique among replicas.
pub fn new_replica_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The notification payload for a change made on `replica`.
pub fn payload(replica: &str, reason: &str) -> String {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{replica}:{}", &reason[..end])
}

/// The replica and the reason in a payload; `None` when it is not ours.
pub fn parse_payload(payload: &str) -> Option<(&str, &str)> {
    payload
        .split_once(':')
        .filter(|(replica, _)| !replica.is_empty())
}

/// Tell the other replicas that something changed (PostgreSQL only; the
/// change must have committed). A failure is logged: the other replicas then
/// catch up at their next notification or reconnection.
pub async fn notify(state: &State, reason: &str) {
    if !state.store.is_postgres() {
        return;
    }
    // NOTIFY takes no bind parameters; the payload is quoted as a literal
    // (standard_conforming_strings is on by default since PostgreSQL 9.1,
    // so only quotes need doubling) and stripped of NULs.
    let text = payload(&state.replica_id, reason)
        .replace('\0', "")
        .replace('\'', "''");
    let sql = format!("NOTIFY {CHANNEL}, '{text}'");
    if let Err(e) = sqlx::query(AssertSqlSafe(sql).into_sql_str())
        .execute(state.store.pool())
        .in_time()
        .await
    {
        tracing::warn!(error = %e, %reason, "cannot notify the other replicas of a change");
    }
}

/// The listening task of a replica.
pub struct Replication {
    listener: JoinHandle<()>,
}

impl Replication {
    /// Stop listening.
    pub fn stop(self) {
        self.listener.abort();
    }
}

/// Start listening for other replicas' changes on the PostgreSQL database at
/// `url`. The first connection is made before this returns (a failure is an
/// error: the database was reachable a moment ago); later losses reconnect.
pub async fn start(state: Arc<State>, url: &str) -> Result<Replication> {
    let listener = listen(url)
        .await
        .context("listening for changes from other replicas")?;
    tracing::info!(replica = %state.replica_id, channel = CHANNEL, "listening for changes from other replicas");
    let listener = tokio::spawn(receive(state, url.to_string(), listener));
    Ok(Replication { listener })
}

async fn listen(url: &str) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect(url).await?;
    // A lost connection is re-established by `reconnect`; `receive` then
    // recomputes.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Act on other replicas' changes; on a lost connection, reconnect and act
/// as if something changed.
async fn receive(state: Arc<State>, url: String, mut listener: PgListener) {
    loop {
        let lost = match listener.try_recv().await {
            Ok(Some(n)) => {
                match parse_payload(n.payload()) {
                    Some((from, _)) if from == state.replica_id => {}
                    Some((from, reason)) => {
                        tracing::debug!(replica = %from, %reason, "change on another replica");
                        state.changed_elsewhere(reason).await;
                    }
                    None => state.changed_elsewhere("a change on another replica").await,
                }
                None
            }
            Ok(None) => Some("the connection closed".to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = lost {
            tracing::warn!(error = %why, "lost the connection listening for other replicas' changes; reconnecting");
            drop(listener);
            listener = reconnect(&url).await;
            tracing::info!("listening for other replicas' changes again");
            state.changed_elsewhere(RECONNECTED).await;
            tracing::info!(
                reason = RECONNECTED,
                "dropped the caches and queued a recomputation of every plan"
            );
        }
    }
}

async fn reconnect(url: &str) -> PgListener {
    let mut delay = BACKOFF_START;
    let mut first = true;
    loop {
        if !first {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(BACKOFF_MAX);
        }
        first = false;
        match listen(url).await {
            Ok(listener) => return listener,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "cannot listen for other replicas' changes")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_are_cut_on_a_char_boundary() {
        let p = payload("ab12", "role memcached changed");
        assert_eq!(parse_payload(&p), Some(("ab12", "role memcached changed")));
        // Reasons may contain colons; the replica id never does.
        assert_eq!(parse_payload(&payload("x", "a:b")), Some(("x", "a:b")));
        let long = "é".repeat(MAX_REASON);
        let p = payload("x", &long);
        assert!(p.len() <= MAX_REASON + 2, "{}", p.len());
        assert!(parse_payload("no separator").is_none());
        assert!(parse_payload(":no replica").is_none());
    }

    #[test]
    fn replica_ids_differ_and_hold_no_separator() {
        let (a, b) = (new_replica_id(), new_replica_id());
        assert_ne!(a, b);
        assert!(!a.contains(':') && a.len() == 16);
    }
}
