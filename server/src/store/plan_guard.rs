//! The store's half of the plan check: a change that can alter plans (a
//! role, an environment, a node's roles, a cookbook deletion) reads what
//! plans are resolved from, inside its own transaction, and hands it to a
//! check that says which groups of nodes would lose their plan. Refused
//! unless forced; forced, an audit row names the nodes that broke.
//!
//! What "resolves" means is not decided here (the store does not parse
//! YAML): the caller's [`PlanCheck`] does that (`crate::plan::check`).
//! Here: the lock that serializes such changes, the rows, the node groups,
//! the names of the nodes in a broken group, the refusal and the audit.
//!
//! Nodes are read as groups, one per distinct (environment, role list) of
//! the live (not retired) nodes, so the check costs one resolution per
//! group however many nodes share it.

use serde::Serialize;
use serde_json::json;
use sqlx::AnyConnection;
use sqlx::Row;

use super::cookbooks::CookbookVersionRow;
use super::pools::InTime;
use super::{DocKind, Document, Engine, Result, StoreError, audit, from_json};

/// How many nodes of a broken group a refusal or an audit row names; the
/// rest are counted.
pub const NAMED_NODES: usize = 10;

/// How many broken groups a refusal describes (a gRPC message travels in
/// a header of bounded size); the audit of a forced change lists them all.
pub const NAMED_GROUPS: usize = 20;

/// An arbitrary constant: the PostgreSQL advisory lock every plan-altering
/// change takes first, so two replicas cannot each check against the
/// other's old state and together leave nodes without a plan. (SQLite
/// writers are serialized by `BEGIN IMMEDIATE` already.)
const PLAN_LOCK: i64 = 0x636d_706c_616e;

/// Live nodes that share an environment and a role list, before and after
/// the change (they differ only for a change to one node's roles or
/// environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeGroup {
    pub environment_before: String,
    pub environment: String,
    pub roles_before: Vec<String>,
    pub roles_after: Vec<String>,
    /// How many nodes the group holds.
    pub nodes: i64,
}

/// What plans are resolved from, as stored when the change began.
#[derive(Debug, Clone)]
pub struct PlanRows {
    pub roles: Vec<Document>,
    pub environments: Vec<Document>,
    pub cookbooks: Vec<CookbookVersionRow>,
    pub groups: Vec<NodeGroup>,
}

/// A group the check found broken: the index into [`PlanRows::groups`] and
/// why its nodes would have no plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenGroup {
    pub group: usize,
    pub reason: String,
}

/// The check a change runs on [`PlanRows`]: the groups whose nodes resolve
/// before the change and would not after it. Groups already without a plan
/// before the change are not broken by it.
pub type PlanCheck<'a> = Box<dyn FnOnce(&PlanRows) -> Result<Vec<BrokenGroup>> + Send + 'a>;

/// A plan-altering change's check, and whether the admin said `--force`.
pub struct PlanGuard<'a> {
    pub check: PlanCheck<'a>,
    pub force: bool,
}

/// The nodes of one broken group, as a refusal and the audit name them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenNodes {
    pub environment: String,
    pub roles: Vec<String>,
    /// How many nodes.
    pub count: i64,
    /// The first [`NAMED_NODES`] by name.
    pub nodes: Vec<String>,
    pub reason: String,
}

/// A change refused because it would leave nodes without a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BreaksPlans {
    /// The change, as its audit row names it (`role.set memcached`).
    pub change: String,
    pub broken: Vec<BrokenNodes>,
}

impl std::fmt::Display for BreaksPlans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: i64 = self.broken.iter().map(|b| b.count).sum();
        write!(
            f,
            "refused {}: {total} node{} would have no valid plan (--force commits it anyway)",
            self.change,
            if total == 1 { "" } else { "s" }
        )?;
        for b in self.broken.iter().take(NAMED_GROUPS) {
            let more = b.count - b.nodes.len() as i64;
            let names = if more > 0 {
                format!("{} and {more} more", b.nodes.join(", "))
            } else {
                b.nodes.join(", ")
            };
            let roles = if b.roles.is_empty() {
                "no roles".to_string()
            } else {
                format!("roles {}", b.roles.join(","))
            };
            write!(
                f,
                "\n  {names} (environment {}, {roles}): {}",
                b.environment, b.reason
            )?;
        }
        if let Some(rest) = self.broken.get(NAMED_GROUPS..).filter(|r| !r.is_empty()) {
            let nodes: i64 = rest.iter().map(|b| b.count).sum();
            write!(
                f,
                "\n  and {} more groups of nodes ({nodes} nodes; the audit of a forced change lists them all)",
                rest.len()
            )?;
        }
        Ok(())
    }
}

/// Take the lock that serializes plan-altering changes (PostgreSQL; held
/// until the transaction ends). Call it first in the transaction, before
/// any row lock, so that lock order is the same everywhere.
pub(crate) async fn lock_plans(conn: &mut AnyConnection, engine: Engine) -> Result<()> {
    if engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PLAN_LOCK)
            .execute(conn)
            .in_time()
            .await?;
    }
    Ok(())
}

/// The groups of live nodes, for a change that does not move any node.
async fn fleet_groups(conn: &mut AnyConnection) -> Result<Vec<(NodeGroup, String)>> {
    let rows = sqlx::query(
        "SELECT environment, roles_json, COUNT(*) AS nodes FROM nodes \
         WHERE state <> 'retired' GROUP BY environment, roles_json ORDER BY environment, roles_json",
    )
    .fetch_all(conn).in_time()
    .await?;
    rows.iter()
        .map(|row| {
            let environment: String = row.try_get("environment")?;
            let roles_json: String = row.try_get("roles_json")?;
            let roles: Vec<String> =
                from_json(&roles_json, "node group", &environment, "roles_json")?;
            let group = NodeGroup {
                environment_before: environment.clone(),
                environment,
                roles_before: roles.clone(),
                roles_after: roles,
                nodes: row.try_get("nodes")?,
            };
            Ok((group, roles_json))
        })
        .collect()
}

/// Which nodes a change touches.
pub(crate) enum Scope<'s> {
    /// Every live node (a role, an environment, a cookbook version changed).
    Fleet,
    /// One node whose roles or environment change.
    Node {
        name: &'s str,
        environment_before: &'s str,
        environment: &'s str,
        before: &'s [String],
        after: &'s [String],
    },
}

/// Run `guard` on the caller's transaction (which took [`lock_plans`]
/// first): read the rows, check, then refuse the change or, when forced,
/// audit the nodes it broke. `change` is the change's audit `what`.
pub(crate) async fn check(
    conn: &mut AnyConnection,
    guard: PlanGuard<'_>,
    scope: Scope<'_>,
    who: &str,
    change: &str,
    now: i64,
) -> Result<()> {
    let groups = match &scope {
        Scope::Fleet => fleet_groups(&mut *conn).await?,
        Scope::Node {
            environment_before,
            environment,
            before,
            after,
            ..
        } => vec![(
            NodeGroup {
                environment_before: environment_before.to_string(),
                environment: environment.to_string(),
                roles_before: before.to_vec(),
                roles_after: after.to_vec(),
                nodes: 1,
            },
            String::new(),
        )],
    };
    let (groups, keys): (Vec<NodeGroup>, Vec<String>) = groups.into_iter().unzip();
    let rows = PlanRows {
        roles: super::documents::list(&mut *conn, DocKind::Role).await?,
        environments: super::documents::list(&mut *conn, DocKind::Environment).await?,
        cookbooks: super::cookbooks::list(&mut *conn).await?,
        groups,
    };
    let found = (guard.check)(&rows)?;
    if found.is_empty() {
        return Ok(());
    }
    let mut broken = Vec::with_capacity(found.len());
    for b in found {
        let group = rows.groups.get(b.group).ok_or_else(|| {
            StoreError::Invalid(format!("the plan check named group {} of none", b.group))
        })?;
        let nodes = match &scope {
            Scope::Node { name, .. } => vec![name.to_string()],
            Scope::Fleet => named_nodes(&mut *conn, &group.environment, &keys[b.group]).await?,
        };
        broken.push(BrokenNodes {
            environment: group.environment.clone(),
            roles: group.roles_after.clone(),
            count: group.nodes,
            nodes,
            reason: b.reason,
        });
    }
    if !guard.force {
        return Err(StoreError::BreaksPlans(BreaksPlans {
            change: change.to_string(),
            broken,
        }));
    }
    audit::record(
        conn,
        now,
        who,
        format!("plan.force {change}"),
        None,
        Some(json!({"forced": true, "broken": broken})),
    )
    .await
}

/// The first nodes by name of a group, for the message.
async fn named_nodes(
    conn: &mut AnyConnection,
    environment: &str,
    roles_json: &str,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT name FROM nodes WHERE environment = $1 AND roles_json = $2 \
         AND state <> 'retired' ORDER BY name LIMIT $3",
    )
    .bind(environment)
    .bind(roles_json)
    .bind(NAMED_NODES as i64)
    .fetch_all(conn)
    .in_time()
    .await?;
    rows.iter()
        .map(|r| r.try_get("name").map_err(StoreError::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(i: usize, count: i64) -> BrokenNodes {
        BrokenNodes {
            environment: "production".into(),
            roles: vec![format!("r{i}")],
            count,
            nodes: (0..count.min(NAMED_NODES as i64))
                .map(|n| format!("n{i}-{n}"))
                .collect(),
            reason: "no version".into(),
        }
    }

    #[test]
    fn a_refusal_names_ten_nodes_per_group_and_twenty_groups_then_counts() {
        let refusal = BreaksPlans {
            change: "cookbook.delete demo 1.0.0".into(),
            broken: (0..25)
                .map(|i| group(i, if i == 0 { 12 } else { 1 }))
                .collect(),
        };
        let text = refusal.to_string();
        assert!(
            text.starts_with(
                "refused cookbook.delete demo 1.0.0: 36 nodes would have no valid plan"
            ),
            "{text}"
        );
        assert!(
            text.contains("n0-9 and 2 more (environment production, roles r0): no version"),
            "{text}"
        );
        assert!(text.contains("roles r19)"), "{text}");
        assert!(!text.contains("roles r20)"), "{text}");
        assert!(
            text.ends_with(
                "and 5 more groups of nodes (5 nodes; the audit of a forced change lists them all)"
            ),
            "{text}"
        );
    }
}
