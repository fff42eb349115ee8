//! The fleet counted for `/metrics`: one grouped query, so a scrape costs
//! the same at ten nodes and at ten thousand.

use sqlx::Row;

use super::pools::InTime;
use super::{Result, Store};

/// Nodes of one environment in one state, with or without a valid plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Census {
    pub environment: String,
    /// `active`, `unreachable`, `expired` or `retired`.
    pub state: String,
    /// `ok`, or `error` when the server has no valid plan for them.
    pub plan: &'static str,
    pub nodes: i64,
}

impl Store {
    pub async fn census(&self) -> Result<Vec<Census>> {
        let rows = sqlx::query(
            "SELECT environment, state, plan_error <> '' AS in_error, COUNT(*) AS nodes \
             FROM nodes GROUP BY environment, state, plan_error <> '' \
             ORDER BY environment, state",
        )
        .fetch_all(self.pool())
        .in_time()
        .await?;
        rows.iter()
            .map(|row| {
                // SQLite answers an integer, PostgreSQL a boolean.
                let in_error = row
                    .try_get::<bool, _>("in_error")
                    .or_else(|_| row.try_get::<i64, _>("in_error").map(|n| n != 0))?;
                Ok(Census {
                    environment: row.try_get("environment")?,
                    state: row.try_get("state")?,
                    plan: if in_error { "error" } else { "ok" },
                    nodes: row.try_get("nodes")?,
                })
            })
            .collect()
    }

    /// Whether the database answers: `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .fetch_one(self.pool())
            .in_time()
            .await?;
        Ok(())
    }
}
