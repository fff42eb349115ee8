//! The fleet counted for `/metrics`: one grouped query over the nodes
//! table, answered by the database (a few milliseconds at ten thousand
//! nodes), never a list of nodes sent to the server.

use sqlx::{AssertSqlSafe, Row};

use super::pools::InTime;
use super::{Result, Store};

/// Nodes of one environment in one state, with or without a valid plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Census {
    pub environment: String,
    /// `active`, `unreachable`, `expired` or `retired`.
    pub state: String,
    /// `ok`, `error` when the server has no valid plan for them, `none`
    /// before their first resolution.
    pub plan: &'static str,
    pub nodes: i64,
}

impl Store {
    pub async fn census(&self) -> Result<Vec<Census>> {
        let rows = sqlx::query(
            "SELECT environment, state, plan, COUNT(*) AS nodes FROM (SELECT environment, \
             state, CASE WHEN plan_error <> '' THEN 'error' WHEN plan_hash = '' THEN 'none' \
             ELSE 'ok' END AS plan FROM nodes) AS n GROUP BY environment, state, plan \
             ORDER BY environment, state, plan",
        )
        .fetch_all(self.pool())
        .in_time()
        .await?;
        rows.iter()
            .map(|row| {
                let plan: String = row.try_get("plan")?;
                Ok(Census {
                    environment: row.try_get("environment")?,
                    state: row.try_get("state")?,
                    plan: match plan.as_str() {
                        "error" => "error",
                        "none" => "none",
                        _ => "ok",
                    },
                    nodes: row.try_get("nodes")?,
                })
            })
            .collect()
    }

    /// What moves when the fleet changes as the dashboard shows it: the
    /// newest run and audit event, how many of the last thousand of each
    /// there are (on PostgreSQL ids commit out of order: a late commit
    /// below the newest id moves the count), and the census. Cheap reads
    /// any replica answers the same.
    pub async fn change_mark(&self) -> Result<String> {
        let mut mark = String::new();
        for table in ["runs", "audit"] {
            // `table` is one of two literals.
            let newest: i64 = sqlx::query(AssertSqlSafe(format!(
                "SELECT COALESCE(MAX(id), 0) AS n FROM {table}"
            )))
            .fetch_one(self.pool())
            .in_time()
            .await?
            .try_get("n")?;
            let recent: i64 = sqlx::query(AssertSqlSafe(format!(
                "SELECT COUNT(*) AS n FROM {table} WHERE id > $1"
            )))
            .bind(newest - 1000)
            .fetch_one(self.pool())
            .in_time()
            .await?
            .try_get("n")?;
            mark.push_str(&format!("{table}:{newest}:{recent}/"));
        }
        for c in self.census().await? {
            mark.push_str(&format!(
                "{}:{}:{}:{}/",
                c.environment, c.state, c.plan, c.nodes
            ));
        }
        Ok(mark)
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
