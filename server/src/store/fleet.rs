//! One page of the fleet for the dashboard: nodes filtered and counted in
//! the database, by name, without their facts and attributes, so a page of
//! a 10,000-node fleet reads 50 rows, not 10,000.

use sqlx::{AssertSqlSafe, Row};

use super::nodes::NodeState;
use super::pools::InTime;
use super::{Result, RunRow, Store, StoreError};

/// What the fleet page shows; empty fields filter nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetFilter {
    pub environment: Option<String>,
    pub role: Option<String>,
    pub state: Option<NodeState>,
    /// `ok`, `error` or `none` (not resolved yet).
    pub plan: Option<String>,
    /// The last run's status: `success`, `failed`, `warning`, or `none`
    /// (no run yet).
    pub run: Option<String>,
    /// Part of the node's name, any case.
    pub search: Option<String>,
}

/// A node's line on the fleet page.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSummary {
    pub name: String,
    pub environment: String,
    pub roles: Vec<String>,
    pub state: NodeState,
    pub last_seen: i64,
    pub last_run: Option<RunRow>,
    pub plan_hash: String,
    pub plan_error: String,
    pub agent_version: String,
}

/// `text` as a LIKE pattern that matches itself only (`%`, `_` and `\`
/// escaped; used with `ESCAPE '\'`).
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store {
    /// The nodes matching `filter`, by name, `limit` from `offset`, and
    /// how many match in all.
    pub async fn fleet_page(
        &self,
        filter: &FleetFilter,
        offset: u32,
        limit: u32,
    ) -> Result<(u64, Vec<NodeSummary>)> {
        let mut clauses: Vec<String> = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        // A clause with one `?`, numbered as the next bound value.
        let mut bind = |clauses: &mut Vec<String>, clause: &str, value: String| {
            binds.push(value);
            clauses.push(clause.replace('?', &format!("${}", binds.len())));
        };
        if let Some(env) = &filter.environment {
            bind(&mut clauses, "environment = ?", env.clone());
        }
        if let Some(role) = &filter.role {
            // roles_json is a JSON list of names: `"web"` with its quotes,
            // found as is (LIKE would ignore case on SQLite only).
            let quoted = serde_json::Value::from(role.as_str()).to_string();
            let find = match self.is_postgres() {
                true => "strpos(roles_json, ?) > 0",
                false => "instr(roles_json, ?) > 0",
            };
            bind(&mut clauses, find, quoted);
        }
        if let Some(state) = filter.state {
            bind(&mut clauses, "state = ?", state.as_str().to_string());
        }
        if let Some(search) = &filter.search {
            let pattern = format!("%{}%", literal(&search.to_lowercase()));
            bind(&mut clauses, "LOWER(name) LIKE ? ESCAPE '\\'", pattern);
        }
        match filter.plan.as_deref() {
            None => {}
            Some("error") => clauses.push("plan_error <> ''".into()),
            Some("ok") => clauses.push("plan_error = '' AND plan_hash <> ''".into()),
            Some("none") => clauses.push("plan_error = '' AND plan_hash = ''".into()),
            Some(other) => {
                return Err(StoreError::Invalid(format!(
                    "plan {other:?}: ok, error or none"
                )));
            }
        }
        match filter.run.as_deref() {
            None => {}
            Some("none") => clauses.push("last_run_json IS NULL".into()),
            Some(status @ ("success" | "failed" | "warning")) => {
                bind(
                    &mut clauses,
                    "last_run_json LIKE ?",
                    format!("%\"status\":\"{status}\"%"),
                );
            }
            Some(other) => {
                return Err(StoreError::Invalid(format!(
                    "run {other:?}: success, failed, warning or none"
                )));
            }
        }
        let filter_sql = match clauses.is_empty() {
            true => String::new(),
            false => format!(" WHERE {}", clauses.join(" AND ")),
        };
        let count_sql = format!("SELECT COUNT(*) AS n FROM nodes{filter_sql}");
        // Built from literals only; every value the caller gave is bound.
        let mut count = sqlx::query(AssertSqlSafe(count_sql));
        for b in &binds {
            count = count.bind(b);
        }
        let total: i64 = count.fetch_one(&self.pool).in_time().await?.try_get("n")?;
        let page_sql = format!(
            "SELECT name, environment, roles_json, state, last_seen, last_run_json, plan_hash, \
             plan_error, agent_version FROM nodes{filter_sql} ORDER BY name LIMIT {} OFFSET {}",
            limit, offset
        );
        let mut page = sqlx::query(AssertSqlSafe(page_sql));
        for b in &binds {
            page = page.bind(b);
        }
        let rows = page.fetch_all(&self.pool).in_time().await?;
        let nodes = rows
            .iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                let roles: String = row.try_get("roles_json")?;
                let state: String = row.try_get("state")?;
                let last_run: Option<String> = row.try_get("last_run_json")?;
                Ok(NodeSummary {
                    roles: super::from_json(&roles, "node", &name, "roles_json")?,
                    state: NodeState::parse(&state).ok_or_else(|| {
                        StoreError::corrupt("node", &name, "state", format!("{state:?}"))
                    })?,
                    last_run: match last_run {
                        Some(text) if !text.is_empty() => {
                            Some(super::from_json(&text, "node", &name, "last_run_json")?)
                        }
                        _ => None,
                    },
                    environment: row.try_get("environment")?,
                    last_seen: row.try_get("last_seen")?,
                    plan_hash: row.try_get("plan_hash")?,
                    plan_error: row.try_get("plan_error")?,
                    agent_version: row.try_get("agent_version")?,
                    name,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((u64::try_from(total).unwrap_or(0), nodes))
    }
}

impl Store {
    /// Nodes that are members (active or unreachable), counted by
    /// environment and role: one grouped read however many roles.
    pub async fn role_counts(&self) -> Result<Vec<(String, String, u64)>> {
        let rows = sqlx::query(
            "SELECT environment, roles_json, COUNT(*) AS n FROM nodes \
             WHERE state IN ('active', 'unreachable') GROUP BY environment, roles_json",
        )
        .fetch_all(&self.pool)
        .in_time()
        .await?;
        let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for row in &rows {
            let environment: String = row.try_get("environment")?;
            let roles: String = row.try_get("roles_json")?;
            let n: i64 = row.try_get("n")?;
            let roles: Vec<String> = super::from_json(&roles, "node", &environment, "roles_json")?;
            for role in roles {
                *counts.entry((environment.clone(), role)).or_default() +=
                    u64::try_from(n).unwrap_or(0);
            }
        }
        Ok(counts.into_iter().map(|((e, r), n)| (e, r, n)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::literal;

    #[test]
    fn like_patterns_match_only_the_text() {
        assert_eq!(literal("web_1"), "web\\_1");
        assert_eq!(literal("100%"), "100\\%");
        assert_eq!(literal("a\\b"), "a\\\\b");
    }
}
