//! The fleet counted for `/metrics`: one grouped query over the nodes
//! table, answered by the database (a few milliseconds at ten thousand
//! nodes), never a list of nodes sent to the server.

use sqlx::Row;

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
    /// newest run and audit event, and the census. One cheap read that any
    /// replica answers the same; the dashboard's live updates compare it.
    pub async fn change_mark(&self) -> Result<String> {
        let row = sqlx::query(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM runs) AS runs, \
             (SELECT COALESCE(MAX(id), 0) FROM audit) AS audit",
        )
        .fetch_one(self.pool())
        .in_time()
        .await?;
        let (runs, audit): (i64, i64) = (row.try_get("runs")?, row.try_get("audit")?);
        let census = self.census().await?;
        let mut mark = format!("{runs}/{audit}");
        for c in census {
            mark.push_str(&format!(
                "/{}:{}:{}:{}",
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
