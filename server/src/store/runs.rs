//! Run reports: one row per agent run, newest first, pruned by age. The
//! newest run of a node is also kept on the node (without the full report)
//! so that listing nodes does not touch this table.
//!
//! Each run keeps when the server received it and the identity of the node
//! that sent it (its enrollment, see `enroll.rs`): the runs of an identity
//! retired before its name was enrolled again stay, marked, and are not
//! listed as the new identity's.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::pools::InTime;
use super::{Result, Store, StoreError, lock_row, to_json};

/// One run of an agent, as it reported it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunRow {
    /// Assigned by the store; ignored by [`Store::insert_run`].
    #[serde(default)]
    pub id: i64,
    pub node: String,
    /// Unix seconds.
    pub at: i64,
    pub status: String,
    pub resources_total: i64,
    pub resources_changed: i64,
    pub resources_failed: i64,
    pub duration_ms: i64,
    /// `new_plan` or `drift_repair`.
    pub cause: String,
    pub plan_hash: String,
    pub plan_age_seconds: i64,
    /// The engine's full report; empty in a node's `last_run`.
    #[serde(default)]
    pub report_json: String,
    /// Unix seconds: when the server received the report (`at` is when
    /// the agent says the run started). Set by the caller.
    #[serde(default)]
    pub received_at: i64,
    /// The enrollment of the node that sent it; set by the store.
    #[serde(default)]
    pub identity: String,
    /// Listed runs only: the name has been enrolled again since, and this
    /// run belongs to an earlier identity.
    #[serde(default)]
    pub retired_identity: bool,
}

fn run_from_row(row: &AnyRow) -> Result<RunRow> {
    Ok(RunRow {
        id: row.try_get("id")?,
        node: row.try_get("node")?,
        at: row.try_get("at")?,
        status: row.try_get("status")?,
        resources_total: row.try_get("resources_total")?,
        resources_changed: row.try_get("resources_changed")?,
        resources_failed: row.try_get("resources_failed")?,
        duration_ms: row.try_get("duration_ms")?,
        cause: row.try_get("cause")?,
        plan_hash: row.try_get("plan_hash")?,
        plan_age_seconds: row.try_get("plan_age_seconds")?,
        report_json: row.try_get("report_json")?,
        received_at: row.try_get("received_at")?,
        identity: row.try_get("identity")?,
        retired_identity: row.try_get::<i64, _>("retired_identity")? != 0,
    })
}

/// A `SELECT` of every column, with a tail (`WHERE ... ORDER BY ...`);
/// `nodes` is joined to mark the runs of a retired identity.
macro_rules! select_runs {
    ($tail:literal) => {
        concat!(
            "SELECT id, node, at, status, resources_total, resources_changed, resources_failed, \
             duration_ms, cause, runs.plan_hash AS plan_hash, plan_age_seconds, report_json, \
             received_at, runs.identity AS identity, \
             CASE WHEN nodes.identity IS NULL OR nodes.identity = runs.identity THEN 0 ELSE 1 END \
             AS retired_identity \
             FROM runs LEFT JOIN nodes ON nodes.name = runs.node ",
            $tail
        )
    };
}

impl Store {
    /// Record a run and make it the node's last run, in one transaction,
    /// under the node's current identity. Returns the run's id. The node
    /// must exist.
    pub async fn insert_run(&self, run: &RunRow) -> Result<i64> {
        let mut tx = self.write_tx().await?;
        if !lock_row(
            &mut tx,
            "UPDATE nodes SET state = state WHERE name = $1",
            &run.node,
        )
        .await?
        {
            return Err(StoreError::NotFound(format!(
                "node {} does not exist",
                run.node
            )));
        }
        let identity: String = sqlx::query("SELECT identity FROM nodes WHERE name = $1")
            .bind(&run.node)
            .fetch_one(&mut *tx)
            .in_time()
            .await?
            .try_get("identity")?;
        let row = sqlx::query(
            "INSERT INTO runs (node, at, status, resources_total, resources_changed, \
             resources_failed, duration_ms, cause, plan_hash, plan_age_seconds, report_json, \
             received_at, identity) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(&run.node)
        .bind(run.at)
        .bind(&run.status)
        .bind(run.resources_total)
        .bind(run.resources_changed)
        .bind(run.resources_failed)
        .bind(run.duration_ms)
        .bind(&run.cause)
        .bind(&run.plan_hash)
        .bind(run.plan_age_seconds)
        .bind(&run.report_json)
        .bind(run.received_at)
        .bind(&identity)
        .fetch_one(&mut *tx)
        .in_time()
        .await?;
        let id: i64 = row.try_get("id")?;
        // The summary names its run, whose report the dashboard reads.
        let summary = RunRow {
            id,
            report_json: String::new(),
            identity,
            ..run.clone()
        };
        sqlx::query("UPDATE nodes SET last_run_json = $1 WHERE name = $2")
            .bind(to_json(&summary))
            .bind(&run.node)
            .execute(&mut *tx)
            .in_time()
            .await?;
        tx.commit().in_time().await?;
        Ok(id)
    }

    /// The newest `limit` runs of the identity that now holds `node`'s
    /// name, newest first (the runs of retired identities left out).
    pub async fn current_runs(&self, node: &str, limit: u32) -> Result<Vec<RunRow>> {
        let rows = sqlx::query(select_runs!(
            "WHERE node = $1 AND runs.identity = nodes.identity \
             ORDER BY at DESC, id DESC LIMIT $2"
        ))
        .bind(node)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .in_time()
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// The newest `limit` runs, newest first, of one node or of all, those
    /// of retired identities included (and marked).
    pub async fn runs(&self, node: Option<&str>, limit: u32) -> Result<Vec<RunRow>> {
        let limit = i64::from(limit);
        let rows = match node {
            Some(node) => {
                sqlx::query(select_runs!(
                    "WHERE node = $1 ORDER BY at DESC, id DESC LIMIT $2"
                ))
                .bind(node)
                .bind(limit)
                .fetch_all(&self.pool)
                .in_time()
                .await?
            }
            None => {
                sqlx::query(select_runs!("ORDER BY at DESC, id DESC LIMIT $1"))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .in_time()
                    .await?
            }
        };
        rows.iter().map(run_from_row).collect()
    }

    /// The reports of the runs `ids` (those still kept), by id.
    pub async fn run_reports(&self, ids: &[i64]) -> Result<HashMap<i64, String>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        // Placeholders only: every id is bound.
        let sql = format!(
            "SELECT id, report_json FROM runs WHERE id IN ({})",
            super::placeholders(ids.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&self.pool).in_time().await?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("report_json")?)))
            .collect()
    }

    /// Delete runs older than `older_than` (unix seconds). Nodes keep their
    /// last run summary. Returns how many were deleted.
    pub async fn prune_runs(&self, older_than: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM runs WHERE at < $1")
            .bind(older_than)
            .execute(&self.writer)
            .in_time()
            .await?;
        Ok(done.rows_affected())
    }
}
