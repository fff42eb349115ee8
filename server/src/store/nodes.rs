//! The inventory: one row per node name, its roles, environment, facts,
//! admin-set attributes, certificate, check-ins and last run. A node is
//! created by enrollment (see `enroll.rs`); this module reads nodes and
//! applies the changes admins and agents make to them.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value, json};
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::plan_guard::{self, PlanGuard, Scope};
use super::pools::InTime;
use super::{
    Result, RunRow, Saved, Store, StoreError, audit, certs, from_json, lock_row, to_json, unix_now,
};
use super::{deletions, membership};

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Checking in; a member of its roles in the cluster view.
    Active,
    /// Silent for longer than its environment's `unreachable_after`:
    /// still a member, shown `reachable: false`.
    Unreachable,
    /// Silent for longer than `expire_after`: out of the cluster view, its
    /// ordinals free; its certificate stays valid, so it rejoins when it
    /// checks in again. Its name is taken only after a retirement.
    Expired,
    /// Removed by an admin (or by an expired certificate); its certificate
    /// is revoked and its name may be enrolled again.
    Retired,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Active => "active",
            NodeState::Unreachable => "unreachable",
            NodeState::Expired => "expired",
            NodeState::Retired => "retired",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<NodeState> {
        match s {
            "active" => Some(NodeState::Active),
            "unreachable" => Some(NodeState::Unreachable),
            "expired" => Some(NodeState::Expired),
            "retired" => Some(NodeState::Retired),
            _ => None,
        }
    }
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub name: String,
    pub environment: String,
    /// In the order they were given: the run list follows it.
    pub roles: Vec<String>,
    /// Admin-set attributes (`cmctl node set`), the highest precedence.
    pub attributes: Map<String, Value>,
    /// What the agent last reported; a JSON object.
    pub facts: Value,
    pub state: NodeState,
    pub cert_serial: String,
    /// Unix seconds.
    pub cert_expires_at: i64,
    pub enrolled_at: i64,
    pub last_seen: i64,
    /// The newest run, without its full report.
    pub last_run: Option<RunRow>,
    /// The hash of the plan the node last fetched; empty before the first.
    pub plan_hash: String,
    /// Why the server has no valid plan for the node, as its last
    /// resolution found; empty when it has one.
    pub plan_error: String,
    /// The cm-agent version the node last reported in GetPlan; empty
    /// before it did.
    pub agent_version: String,
}

impl NodeRow {
    /// Whether the node has a role.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Who changes a node, and the environment they found it in when their
/// permission was checked (an admin limited to environments): the change
/// is refused, under the node's lock, if it has moved since. A plain name
/// changes the node wherever it is.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub name: &'a str,
    pub environment: Option<&'a str>,
}

impl<'a> From<&'a str> for Actor<'a> {
    fn from(name: &'a str) -> Actor<'a> {
        Actor {
            name,
            environment: None,
        }
    }
}

impl<'a> From<&'a String> for Actor<'a> {
    fn from(name: &'a String) -> Actor<'a> {
        Actor::from(name.as_str())
    }
}

impl Actor<'_> {
    /// Refuse a node that is no longer where the actor may change it.
    fn check(&self, node: &NodeRow) -> Result<()> {
        match self.environment {
            Some(env) if env != node.environment => Err(StoreError::Conflict(format!(
                "node {} moved to environment {} since {} was allowed to change it in {env}; \
                 try again",
                node.name, node.environment, self.name
            ))),
            _ => Ok(()),
        }
    }
}

/// A `SELECT` of every column, with an optional tail (`WHERE ...`).
macro_rules! select_nodes {
    ($($tail:literal)?) => {
        concat!(
            "SELECT name, environment, roles_json, attributes_json, facts_json, state, \
             cert_serial, cert_expires_at, enrolled_at, last_seen, last_run_json, plan_hash, \
             plan_error, agent_version FROM nodes"
            $(, " ", $tail)?
        )
    };
}

pub(crate) fn node_from_row(row: &AnyRow) -> Result<NodeRow> {
    let name: String = row.try_get("name")?;
    let state: String = row.try_get("state")?;
    let roles: String = row.try_get("roles_json")?;
    let attributes: String = row.try_get("attributes_json")?;
    let facts: String = row.try_get("facts_json")?;
    let last_run: Option<String> = row.try_get("last_run_json")?;
    Ok(NodeRow {
        state: NodeState::parse(&state)
            .ok_or_else(|| StoreError::corrupt("node", &name, "state", format!("{state:?}")))?,
        roles: from_json(&roles, "node", &name, "roles_json")?,
        attributes: from_json(&attributes, "node", &name, "attributes_json")?,
        facts: from_json(&facts, "node", &name, "facts_json")?,
        last_run: match last_run {
            Some(json) => Some(from_json(&json, "node", &name, "last_run_json")?),
            None => None,
        },
        environment: row.try_get("environment")?,
        cert_serial: row.try_get("cert_serial")?,
        cert_expires_at: row.try_get("cert_expires_at")?,
        enrolled_at: row.try_get("enrolled_at")?,
        last_seen: row.try_get("last_seen")?,
        plan_hash: row.try_get("plan_hash")?,
        plan_error: row.try_get("plan_error")?,
        agent_version: row.try_get("agent_version")?,
        name,
    })
}

pub(crate) fn not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("node {name} does not exist"))
}

/// Read one node on the caller's connection.
pub(crate) async fn fetch(conn: &mut AnyConnection, name: &str) -> Result<Option<NodeRow>> {
    let row = sqlx::query(select_nodes!("WHERE name = $1"))
        .bind(name)
        .fetch_optional(conn)
        .in_time()
        .await?;
    row.as_ref().map(node_from_row).transpose()
}

/// Lock a node for the rest of the transaction and read it.
async fn fetch_locked(conn: &mut AnyConnection, name: &str) -> Result<NodeRow> {
    if !lock_row(conn, "UPDATE nodes SET state = state WHERE name = $1", name).await? {
        return Err(not_found(name));
    }
    fetch(conn, name).await?.ok_or_else(|| not_found(name))
}

/// Facts as the agent sent them: must be a JSON object. Returned compact.
pub(crate) fn parse_facts(facts_json: &str) -> Result<String> {
    match serde_json::from_str::<Value>(facts_json) {
        Ok(facts @ Value::Object(_)) => Ok(facts.to_string()),
        Ok(_) => Err(StoreError::Invalid("facts must be a JSON object".into())),
        Err(e) => Err(StoreError::Invalid(format!(
            "facts are not valid JSON: {e}"
        ))),
    }
}

/// Remove a dotted key and the maps it leaves empty. False when it was not
/// set.
fn unset_path(map: &mut Map<String, Value>, key: &str) -> bool {
    match key.split_once('.') {
        None => map.remove(key).is_some(),
        Some((head, rest)) => {
            let Some(Value::Object(child)) = map.get_mut(head) else {
                return false;
            };
            let removed = unset_path(child, rest);
            if removed && child.is_empty() {
                map.remove(head);
            }
            removed
        }
    }
}

fn get_path<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let first = map.get(parts.next()?)?;
    parts.try_fold(first, |v, p| v.as_object()?.get(p))
}

/// Refuse a change (`what`, e.g. `node.assign web-1 cache`) to a retired
/// node.
fn refuse_retired(node: &NodeRow, what: &str) -> Result<()> {
    if node.state == NodeState::Retired {
        return Err(StoreError::Conflict(format!(
            "node {} is retired: refusing {what}; it must enroll again",
            node.name
        )));
    }
    Ok(())
}

/// Retire `node`, whose row the caller's transaction has locked: its state,
/// the revocation of its serial and the audit row, as one. `why` (e.g.
/// `certificate expired`) is added to the revocation reason and the audit
/// when the retirement is not an admin's own decision.
pub(crate) async fn retire_locked(
    conn: &mut AnyConnection,
    node: &NodeRow,
    who: &str,
    why: Option<&str>,
    now: i64,
) -> Result<()> {
    let name = &node.name;
    sqlx::query("UPDATE nodes SET state = 'retired' WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .in_time()
        .await?;
    super::membership::leave(conn, name, None, super::membership::Departure::Gone, now).await?;
    let reason = match why {
        None => format!("node {name} retired"),
        Some(why) => format!("node {name} retired: {why}"),
    };
    certs::revoke(conn, &node.cert_serial, &reason, now).await?;
    let mut after = json!({"state": "retired"});
    if let Some(why) = why {
        after["reason"] = json!(why);
    }
    audit::record(
        conn,
        now,
        who,
        format!("node.retire {name}"),
        Some(json!({"state": node.state.as_str(), "cert_serial": node.cert_serial})),
        Some(after),
    )
    .await?;
    Ok(())
}

impl Store {
    /// One node.
    pub async fn node(&self, name: &str) -> Result<NodeRow> {
        let mut conn = self.pool.acquire().await?;
        fetch(&mut conn, name).await?.ok_or_else(|| not_found(name))
    }

    /// Nodes in every state, by name, optionally only those with a role
    /// and/or in an environment.
    pub async fn nodes(
        &self,
        role: Option<&str>,
        environment: Option<&str>,
    ) -> Result<Vec<NodeRow>> {
        let rows = match environment {
            Some(env) => {
                sqlx::query(select_nodes!("WHERE environment = $1 ORDER BY name"))
                    .bind(env)
                    .fetch_all(&self.pool)
                    .in_time()
                    .await?
            }
            None => {
                sqlx::query(select_nodes!("ORDER BY name"))
                    .fetch_all(&self.pool)
                    .in_time()
                    .await?
            }
        };
        let mut nodes = rows.iter().map(node_from_row).collect::<Result<Vec<_>>>()?;
        if let Some(role) = role {
            nodes.retain(|n| n.has_role(role));
        }
        Ok(nodes)
    }

    /// The nodes named (those that exist), in no particular order.
    pub async fn nodes_named(&self, names: &[&str]) -> Result<Vec<NodeRow>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        // Placeholders only: every name is bound.
        let sql = format!(
            concat!(select_nodes!(), " WHERE name IN ({})"),
            super::placeholders(names.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for name in names {
            query = query.bind(*name);
        }
        let rows = query.fetch_all(&self.pool).in_time().await?;
        rows.iter().map(node_from_row).collect()
    }

    /// Give a node a role (appended: the run list follows role order).
    /// Unchanged when it already has it.
    pub async fn assign_role(&self, node: &str, role: &str, who: &str) -> Result<Saved<NodeRow>> {
        self.assign_role_checked(node, role, who, None).await
    }

    /// [`Store::assign_role`], refused (unless forced) when the node has a
    /// plan now and would have none with the role (see `plan_guard`).
    pub async fn assign_role_checked(
        &self,
        node: &str,
        role: &str,
        who: impl Into<Actor<'_>>,
        guard: Option<PlanGuard<'_>>,
    ) -> Result<Saved<NodeRow>> {
        if role.is_empty() {
            return Err(StoreError::Invalid("the role name is empty".into()));
        }
        let what = format!("node.assign {node} {role}");
        self.change_node(node, who.into(), what, guard, |node| {
            if node.has_role(role) {
                return Ok(None);
            }
            let before = json!({"roles": node.roles});
            node.roles.push(role.to_string());
            Ok(Some((Some(before), Some(json!({"roles": node.roles})))))
        })
        .await
    }

    /// Take a role from a node. Unchanged when it did not have it.
    pub async fn unassign_role(&self, node: &str, role: &str, who: &str) -> Result<Saved<NodeRow>> {
        self.unassign_role_checked(node, role, who, None).await
    }

    /// [`Store::unassign_role`], refused (unless forced) when the node has
    /// a plan now and would have none without the role.
    pub async fn unassign_role_checked(
        &self,
        node: &str,
        role: &str,
        who: impl Into<Actor<'_>>,
        guard: Option<PlanGuard<'_>>,
    ) -> Result<Saved<NodeRow>> {
        let what = format!("node.unassign {node} {role}");
        self.change_node(node, who.into(), what, guard, |node| {
            if !node.has_role(role) {
                return Ok(None);
            }
            let before = json!({"roles": node.roles});
            node.roles.retain(|r| r != role);
            Ok(Some((Some(before), Some(json!({"roles": node.roles})))))
        })
        .await
    }

    /// Move a node to another environment, which must exist: it leaves its
    /// roles' memberships in the old one and joins them in the new one with
    /// the lowest free ordinals. Unchanged when it is there already.
    pub async fn move_node(
        &self,
        node: &str,
        environment: &str,
        who: impl Into<Actor<'_>>,
        guard: Option<PlanGuard<'_>>,
    ) -> Result<Saved<NodeRow>> {
        if environment.is_empty() {
            return Err(StoreError::Invalid("the environment name is empty".into()));
        }
        let what = format!("node.move {node} {environment}");
        self.change_node(node, who.into(), what, guard, |node| {
            if node.environment == environment {
                return Ok(None);
            }
            let before = json!({"environment": node.environment});
            node.environment = environment.to_string();
            Ok(Some((
                Some(before),
                Some(json!({"environment": environment})),
            )))
        })
        .await
    }

    /// Set an admin attribute at a dotted key (`memcached.memory_mb`) to a
    /// JSON value, creating maps on the way. Unchanged when it already
    /// holds that value. The audit records the key's value before and after.
    pub async fn set_node_attribute(
        &self,
        name: &str,
        key: &str,
        value_json: &str,
        who: impl Into<Actor<'_>>,
    ) -> Result<Saved<NodeRow>> {
        let value: Value = serde_json::from_str(value_json).map_err(|e| {
            StoreError::Invalid(format!("the value for {key} is not valid JSON: {e}"))
        })?;
        let what = format!("node.set_attribute {name} {key}");
        self.change_node(name, who.into(), what, None, |node| {
            let before = get_path(&node.attributes, key).cloned();
            if before.as_ref() == Some(&value) {
                return Ok(None);
            }
            cm_model::attributes::set_path(&mut node.attributes, key, value.clone())
                .map_err(StoreError::Invalid)?;
            Ok(Some((before, Some(value))))
        })
        .await
    }

    /// Remove an admin attribute, and the maps it leaves empty. Unchanged
    /// when it was not set.
    pub async fn unset_node_attribute(
        &self,
        name: &str,
        key: &str,
        who: impl Into<Actor<'_>>,
    ) -> Result<Saved<NodeRow>> {
        let what = format!("node.unset_attribute {name} {key}");
        self.change_node(name, who.into(), what, None, |node| {
            let before = get_path(&node.attributes, key).cloned();
            if !unset_path(&mut node.attributes, key) {
                return Ok(None);
            }
            Ok(Some((before, None)))
        })
        .await
    }

    /// An admin change to a node's environment, roles or attributes: lock the node,
    /// refuse a retired one, apply `change`, check its plan (with a
    /// `guard`), write, audit, commit. `change` returns the audit's before
    /// and after, or `None` when it changed nothing (then nothing is
    /// written).
    async fn change_node(
        &self,
        name: &str,
        who: Actor<'_>,
        what: String,
        guard: Option<PlanGuard<'_>>,
        change: impl FnOnce(&mut NodeRow) -> Result<Option<(Option<Value>, Option<Value>)>>,
    ) -> Result<Saved<NodeRow>> {
        let now = unix_now();
        let mut tx = self.write_tx().await?;
        // Always, not only with a guard: a move checks that its environment
        // exists, which a concurrent deletion must not undo (deletions.rs).
        plan_guard::lock_plans(&mut tx, self.engine).await?;
        let mut node = fetch_locked(&mut tx, name).await?;
        refuse_retired(&node, &what)?;
        who.check(&node)?;
        let who = who.name;
        let roles_before = node.roles.clone();
        let environment_before = node.environment.clone();
        let Some((before, after)) = change(&mut node)? else {
            tx.rollback().in_time().await?;
            return Ok(Saved {
                value: node,
                changed: false,
            });
        };
        let moved = node.environment != environment_before;
        if moved {
            deletions::require_documents(&mut tx, &[], Some(&node.environment)).await?;
        }
        if let Some(guard) = guard {
            let scope = Scope::Node {
                name,
                environment_before: &environment_before,
                environment: &node.environment,
                before: &roles_before,
                after: &node.roles,
            };
            plan_guard::check(&mut tx, guard, scope, who, &what, now).await?;
        }
        sqlx::query(
            "UPDATE nodes SET environment = $1, roles_json = $2, attributes_json = $3 \
             WHERE name = $4",
        )
        .bind(&node.environment)
        .bind(to_json(&node.roles))
        .bind(to_json(&node.attributes))
        .bind(name)
        .execute(&mut *tx)
        .in_time()
        .await?;
        if moved || node.roles != roles_before {
            membership::reconcile(&mut tx, &node, now).await?;
        }
        audit::record(&mut tx, now, who, what, before, after).await?;
        tx.commit().in_time().await?;
        Ok(Saved {
            value: node,
            changed: true,
        })
    }

    /// Retire a node: it leaves the cluster view, its certificate is revoked
    /// in the same transaction, and its name may be enrolled again.
    /// Unchanged when it already was retired.
    pub async fn retire_node(
        &self,
        name: &str,
        who: impl Into<Actor<'_>>,
    ) -> Result<Saved<NodeRow>> {
        let now = unix_now();
        let who: Actor<'_> = who.into();
        let mut tx = self.write_tx().await?;
        let mut node = fetch_locked(&mut tx, name).await?;
        who.check(&node)?;
        let who = who.name;
        if node.state == NodeState::Retired {
            tx.rollback().in_time().await?;
            return Ok(Saved {
                value: node,
                changed: false,
            });
        }
        retire_locked(&mut tx, &node, who, None, now).await?;
        tx.commit().in_time().await?;
        node.state = NodeState::Retired;
        Ok(Saved {
            value: node,
            changed: true,
        })
    }

    /// Replace a node's facts with what its agent reported (a JSON object).
    pub async fn update_facts(&self, name: &str, facts_json: &str) -> Result<()> {
        let facts = parse_facts(facts_json)?;
        self.set_column(
            "UPDATE nodes SET facts_json = $1 WHERE name = $2",
            &facts,
            name,
        )
        .await
    }

    /// Record a renewed certificate; the old serial is revoked in the same
    /// transaction. A retired node cannot renew.
    pub async fn set_node_cert(
        &self,
        name: &str,
        serial: &str,
        expires_at: i64,
    ) -> Result<NodeRow> {
        let now = unix_now();
        let mut tx = self.write_tx().await?;
        let mut node = fetch_locked(&mut tx, name).await?;
        refuse_retired(&node, "certificate renewal")?;
        sqlx::query("UPDATE nodes SET cert_serial = $1, cert_expires_at = $2 WHERE name = $3")
            .bind(serial)
            .bind(expires_at)
            .bind(name)
            .execute(&mut *tx)
            .in_time()
            .await?;
        if node.cert_serial != serial {
            certs::revoke(
                &mut tx,
                &node.cert_serial,
                &format!("node {name} renewed"),
                now,
            )
            .await?;
        }
        tx.commit().in_time().await?;
        node.cert_serial = serial.to_string();
        node.cert_expires_at = expires_at;
        Ok(node)
    }

    /// Record the hash of the plan a node fetched.
    pub async fn set_plan_hash(&self, name: &str, hash: &str) -> Result<()> {
        self.set_column(
            "UPDATE nodes SET plan_hash = $1 WHERE name = $2",
            hash,
            name,
        )
        .await
    }

    /// The cm-agent version a node last reported (empty: none yet).
    pub async fn agent_version(&self, name: &str) -> Result<String> {
        let row = sqlx::query("SELECT agent_version FROM nodes WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .in_time()
            .await?;
        match row {
            Some(row) => Ok(row.try_get("agent_version")?),
            None => Err(not_found(name)),
        }
    }

    /// Record the cm-agent version a node reported (an agent's write of its
    /// own node, no audit).
    pub async fn set_agent_version(&self, name: &str, version: &str) -> Result<()> {
        self.set_column(
            "UPDATE nodes SET agent_version = $1 WHERE name = $2",
            version,
            name,
        )
        .await
    }

    /// Record many plan hashes (node, hash), a few hundred rows per
    /// transaction. A node retired or deleted meanwhile is skipped, not an
    /// error.
    pub async fn set_plan_hashes(&self, hashes: &[(String, String)]) -> Result<()> {
        self.set_columns("UPDATE nodes SET plan_hash = $1 WHERE name = $2", hashes)
            .await
    }

    /// Record why nodes have no valid plan (node, reason), or that they have
    /// one again (an empty reason), as [`Store::set_plan_hashes`] does.
    pub async fn set_plan_errors(&self, errors: &[(String, String)]) -> Result<()> {
        self.set_columns("UPDATE nodes SET plan_error = $1 WHERE name = $2", errors)
            .await
    }

    /// Run `sql`, an `UPDATE nodes SET column = $1 WHERE name = $2`, for
    /// each (name, value), a few hundred rows per transaction.
    async fn set_columns(&self, sql: &'static str, values: &[(String, String)]) -> Result<()> {
        for chunk in values.chunks(500) {
            let mut tx = self.write_tx().await?;
            for (name, value) in chunk {
                sqlx::query(sql)
                    .bind(value)
                    .bind(name)
                    .execute(&mut *tx)
                    .in_time()
                    .await?;
            }
            tx.commit().in_time().await?;
        }
        Ok(())
    }

    /// Run `sql`, an `UPDATE nodes SET column = $1 WHERE name = $2`, as an
    /// agent's write of its own node (no audit).
    async fn set_column(&self, sql: &'static str, value: &str, name: &str) -> Result<()> {
        let done = sqlx::query(sql)
            .bind(value)
            .bind(name)
            .execute(&self.writer)
            .in_time()
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(name));
        }
        Ok(())
    }

    /// Record a batch of check-ins (node, unix seconds) in one transaction.
    /// A check-in never moves `last_seen` back, skips retired and unknown
    /// nodes, and makes an unreachable or expired node active again (an
    /// expired one rejoins its roles with the lowest free ordinals). Returns
    /// the nodes that came back (their roles' members changed).
    pub async fn record_last_seen(&self, batch: &[(String, i64)]) -> Result<Vec<String>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // One check-in per node, the latest, in name order: two replicas
        // flushing overlapping batches lock rows in the same order and
        // cannot deadlock on PostgreSQL.
        let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
        for (name, at) in batch {
            let slot = latest.entry(name.as_str()).or_insert(*at);
            *slot = (*slot).max(*at);
        }
        let mut tx = self.write_tx().await?;
        let unreachable: HashSet<String> =
            sqlx::query("SELECT name FROM nodes WHERE state = 'unreachable'")
                .fetch_all(&mut *tx)
                .in_time()
                .await?
                .iter()
                .map(|row| row.try_get("name"))
                .collect::<Result<_, _>>()?;
        let mut revived = Vec::new();
        for (name, at) in latest {
            if membership::rejoin(&mut tx, name, at).await? {
                revived.push(name.to_string());
            }
            let done = sqlx::query(
                "UPDATE nodes SET last_seen = $1, \
                 state = CASE WHEN state = 'unreachable' THEN 'active' ELSE state END \
                 WHERE name = $2 AND state <> 'retired' AND last_seen <= $1",
            )
            .bind(at)
            .bind(name)
            .execute(&mut *tx)
            .in_time()
            .await?;
            if done.rows_affected() > 0 && unreachable.contains(name) {
                revived.push(name.to_string());
            }
        }
        tx.commit().in_time().await?;
        Ok(revived)
    }

    /// Mark active nodes not seen since `seen_before` (unix seconds)
    /// unreachable. Returns their names.
    pub async fn mark_unreachable(&self, seen_before: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "UPDATE nodes SET state = 'unreachable' WHERE state = 'active' AND last_seen < $1 \
             RETURNING name",
        )
        .bind(seen_before)
        .fetch_all(&self.writer)
        .in_time()
        .await?;
        let mut names = rows
            .iter()
            .map(|row| row.try_get("name"))
            .collect::<Result<Vec<String>, _>>()?;
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_removes_the_key_and_the_maps_it_empties() {
        let mut m: Map<String, Value> =
            serde_json::from_str(r#"{"a": {"b": {"c": 1}}, "x": {"y": 1, "z": 2}}"#).unwrap();
        assert!(unset_path(&mut m, "a.b.c"));
        assert!(!m.contains_key("a"));
        assert!(unset_path(&mut m, "x.y"));
        assert_eq!(Value::Object(m.clone()), json!({"x": {"z": 2}}));
        assert!(!unset_path(&mut m, "x.missing"));
        assert!(!unset_path(&mut m, "x.z.deeper"));
    }

    #[test]
    fn facts_must_be_an_object() {
        assert_eq!(parse_facts(r#"{ "a" : 1 }"#).unwrap(), r#"{"a":1}"#);
        assert!(matches!(parse_facts("[1]"), Err(StoreError::Invalid(_))));
        assert!(matches!(parse_facts("{"), Err(StoreError::Invalid(_))));
    }
}
