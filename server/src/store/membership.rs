//! The cluster view's membership: the members of each (environment, role),
//! each with a stable ordinal (0-based, the lowest free one taken on
//! joining), and the verdicts that move nodes between active, unreachable
//! and expired.
//!
//! The store decides, never one replica's memory: an ordinal is taken in
//! the transaction that makes the node a member, under the unique
//! (environment, role, ordinal) index, and a verdict is a conditional
//! update any replica may run; only one wins.
//!
//! A node is a member of its roles while it is active or unreachable. An
//! expired or retired node is in no role, and its ordinals are free.

use std::collections::BTreeSet;

use sqlx::{AnyConnection, Row};

use super::nodes::{self, NodeRow, NodeState};
use super::pools::InTime;
use super::{Result, Store, StoreError};

/// The cluster setting holding when the last verdict pass ran (unix
/// seconds): a longer gap is time the server was down.
const PASS_AT: &str = "membership_pass_at";

/// How often a server passes verdicts; a gap between passes longer than
/// [`DOWNTIME_AFTER`] is credited to every node instead of counted
/// against it.
pub const PASS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// The gap between two passes that counts as the server's own downtime.
pub const DOWNTIME_AFTER: i64 = 60;

/// One member of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub environment: String,
    pub role: String,
    pub ordinal: i64,
    pub node: String,
    pub joined_at: i64,
    /// The node that held this ordinal last, when this member took it
    /// after that node was gone (expired or retired); empty otherwise.
    pub replaces: String,
}

/// An environment's liveness timers, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub unreachable_after: i64,
    pub expire_after: i64,
}

/// What one verdict pass changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdicts {
    /// Nodes now unreachable (still members).
    pub unreachable: Vec<String>,
    /// Nodes now expired (out of their roles, ordinals freed).
    pub expired: Vec<String>,
    /// Seconds of the server's own downtime credited to every node.
    pub credited: i64,
}

impl Verdicts {
    pub fn is_empty(&self) -> bool {
        self.unreachable.is_empty() && self.expired.is_empty()
    }
}

fn member_from_row(row: &sqlx::any::AnyRow) -> Result<MemberRow> {
    Ok(MemberRow {
        environment: row.try_get("environment")?,
        role: row.try_get("role")?,
        ordinal: row.try_get("ordinal")?,
        node: row.try_get("node")?,
        joined_at: row.try_get("joined_at")?,
        replaces: row.try_get("replaces")?,
    })
}

/// Whether a node in `state` is a member of its roles.
pub fn is_member(state: NodeState) -> bool {
    matches!(state, NodeState::Active | NodeState::Unreachable)
}

/// Bring `node`'s memberships in line with its row, on the caller's
/// transaction (which has the row locked or just wrote it): out of roles it
/// left or an environment it left, into the roles it has (lowest free
/// ordinal). True when anything changed.
pub(crate) async fn reconcile(conn: &mut AnyConnection, node: &NodeRow, now: i64) -> Result<bool> {
    let wanted: BTreeSet<&str> = match is_member(node.state) {
        true => node.roles.iter().map(String::as_str).collect(),
        false => BTreeSet::new(),
    };
    let rows = sqlx::query("SELECT environment, role FROM memberships WHERE node = $1")
        .bind(&node.name)
        .fetch_all(&mut *conn)
        .in_time()
        .await?;
    let mut held = BTreeSet::new();
    let mut changed = false;
    for row in &rows {
        let environment: String = row.try_get("environment")?;
        let role: String = row.try_get("role")?;
        if environment == node.environment && wanted.contains(role.as_str()) {
            held.insert(role);
            continue;
        }
        leave(conn, &node.name, Some(&role), Departure::Left, now).await?;
        changed = true;
    }
    for role in wanted.into_iter().filter(|r| !held.contains(*r)) {
        join(conn, &node.environment, role, &node.name, now).await?;
        changed = true;
    }
    Ok(changed)
}

/// Why a node leaves its roles. One that expired or was retired is gone,
/// and the node taking its ordinal replaces it; one unassigned or moved
/// left on purpose (alive, or decommissioned first), and replaces nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Departure {
    Gone,
    Left,
}

/// Take `node` out of `role` (of every role when `None`). A node `Gone` is
/// remembered as the last holder of each ordinal it frees: the node that
/// takes one next replaces it (`member.<role>.replaces`). A role left with
/// no member forgets its freed ordinals: its next members start it over.
pub(crate) async fn leave(
    conn: &mut AnyConnection,
    node: &str,
    role: Option<&str>,
    departure: Departure,
    now: i64,
) -> Result<()> {
    let remember = match departure {
        // SQLite needs the WHERE of an INSERT ... SELECT before ON CONFLICT.
        Departure::Gone => sqlx::query(
            "INSERT INTO freed_ordinals (environment, role, ordinal, node, freed_at) \
             SELECT environment, role, ordinal, node, $3 FROM memberships \
             WHERE node = $1 AND ($2 = '' OR role = $2) \
             ON CONFLICT (environment, role, ordinal) DO UPDATE \
             SET node = excluded.node, freed_at = excluded.freed_at",
        )
        .bind(node)
        .bind(role.unwrap_or(""))
        .bind(now),
        Departure::Left => sqlx::query(
            "DELETE FROM freed_ordinals WHERE EXISTS (SELECT 1 FROM memberships m \
             WHERE m.node = $1 AND ($2 = '' OR m.role = $2) \
             AND m.environment = freed_ordinals.environment AND m.role = freed_ordinals.role \
             AND m.ordinal = freed_ordinals.ordinal)",
        )
        .bind(node)
        .bind(role.unwrap_or("")),
    };
    remember.execute(&mut *conn).in_time().await?;
    sqlx::query("DELETE FROM memberships WHERE node = $1 AND ($2 = '' OR role = $2)")
        .bind(node)
        .bind(role.unwrap_or(""))
        .execute(&mut *conn)
        .in_time()
        .await?;
    sqlx::query(
        "DELETE FROM freed_ordinals WHERE NOT EXISTS (SELECT 1 FROM memberships m \
         WHERE m.environment = freed_ordinals.environment AND m.role = freed_ordinals.role)",
    )
    .execute(&mut *conn)
    .in_time()
    .await?;
    Ok(())
}

/// Take the lowest free ordinal of (environment, role) for `node`, as the
/// replacement of its last holder when that one is gone (and is not
/// `node`). A replica racing for the same ordinal waits on the unique
/// index, finds it taken and tries the next.
async fn join(
    conn: &mut AnyConnection,
    environment: &str,
    role: &str,
    node: &str,
    now: i64,
) -> Result<i64> {
    const TRIES: usize = 16;
    for _ in 0..TRIES {
        let taken: Vec<i64> = sqlx::query(
            "SELECT ordinal FROM memberships WHERE environment = $1 AND role = $2 \
             ORDER BY ordinal",
        )
        .bind(environment)
        .bind(role)
        .fetch_all(&mut *conn)
        .in_time()
        .await?
        .iter()
        .map(|r| r.try_get("ordinal"))
        .collect::<Result<_, _>>()?;
        let free = lowest_free(&taken);
        let done = sqlx::query(
            "INSERT INTO memberships (environment, role, ordinal, node, joined_at, replaces) \
             VALUES ($1, $2, $3, $4, $5, COALESCE((SELECT f.node FROM freed_ordinals f \
                 WHERE f.environment = $1 AND f.role = $2 AND f.ordinal = $3 AND f.node <> $4), '')) \
             ON CONFLICT DO NOTHING",
        )
        .bind(environment)
        .bind(role)
        .bind(free)
        .bind(node)
        .bind(now)
        .execute(&mut *conn)
        .in_time()
        .await?;
        if done.rows_affected() == 1 {
            return Ok(free);
        }
    }
    Err(StoreError::Conflict(format!(
        "node {node} could not take an ordinal in role {role} of environment {environment}: \
         too many nodes joined at once; try again"
    )))
}

/// The lowest ordinal missing from `taken` (sorted).
fn lowest_free(taken: &[i64]) -> i64 {
    let mut want = 0;
    for &t in taken {
        if t != want {
            break;
        }
        want += 1;
    }
    want
}

impl Store {
    /// Members, sorted by environment, role and ordinal; `None` for all.
    pub async fn members(
        &self,
        environment: Option<&str>,
        role: Option<&str>,
    ) -> Result<Vec<MemberRow>> {
        let rows = sqlx::query(
            "SELECT environment, role, ordinal, node, joined_at, replaces FROM memberships \
             WHERE ($1 = '' OR environment = $1) AND ($2 = '' OR role = $2) \
             ORDER BY environment, role, ordinal",
        )
        .bind(environment.unwrap_or(""))
        .bind(role.unwrap_or(""))
        .fetch_all(&self.pool)
        .in_time()
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    /// One node's places, by role.
    pub async fn memberships_of(&self, node: &str) -> Result<Vec<MemberRow>> {
        let rows = sqlx::query(
            "SELECT environment, role, ordinal, node, joined_at, replaces FROM memberships \
             WHERE node = $1 ORDER BY role",
        )
        .bind(node)
        .fetch_all(&self.pool)
        .in_time()
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    /// One page of a role's members in an environment, by ordinal, and
    /// how many it has.
    pub async fn members_page(
        &self,
        environment: &str,
        role: &str,
        offset: u32,
        limit: u32,
    ) -> Result<(u64, Vec<MemberRow>)> {
        let total: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM memberships WHERE environment = $1 AND role = $2",
        )
        .bind(environment)
        .bind(role)
        .fetch_one(&self.pool)
        .in_time()
        .await?
        .try_get("n")?;
        let rows = sqlx::query(
            "SELECT environment, role, ordinal, node, joined_at, replaces FROM memberships \
             WHERE environment = $1 AND role = $2 ORDER BY ordinal LIMIT $3 OFFSET $4",
        )
        .bind(environment)
        .bind(role)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .in_time()
        .await?;
        let members = rows.iter().map(member_from_row).collect::<Result<_>>()?;
        Ok((u64::try_from(total).unwrap_or(0), members))
    }

    /// The roles with members in `environment`, each with how many.
    pub async fn member_counts(&self, environment: &str) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query(
            "SELECT role, COUNT(*) AS n FROM memberships WHERE environment = $1 \
             GROUP BY role ORDER BY role",
        )
        .bind(environment)
        .fetch_all(&self.pool)
        .in_time()
        .await?;
        rows.iter()
            .map(|row| {
                let n: i64 = row.try_get("n")?;
                Ok((row.try_get("role")?, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    /// Pass the liveness verdicts at `now`: active nodes silent longer than
    /// their environment's `unreachable_after` become unreachable, and
    /// nodes silent longer than `expire_after` expire (out of their roles).
    /// Nodes whose agent predates heartbeats (0.1, 0.2: a check-in per
    /// converge, every 15 minutes) are not judged.
    /// A gap since the last pass longer than [`DOWNTIME_AFTER`] was the
    /// server's own downtime: it is first added to every node's last check-in,
    /// so nodes are not blamed for it. Any replica may run it; each verdict
    /// is taken once.
    pub async fn pass_verdicts(
        &self,
        now: i64,
        timers: impl Fn(&str) -> Timers,
    ) -> Result<Verdicts> {
        let mut tx = self.write_tx().await?;
        let mut verdicts = Verdicts {
            credited: credit_downtime(&mut tx, now).await?,
            ..Verdicts::default()
        };
        let environments: Vec<String> = sqlx::query(
            "SELECT DISTINCT environment FROM nodes \
             WHERE state IN ('active', 'unreachable') ORDER BY environment",
        )
        .fetch_all(&mut *tx)
        .in_time()
        .await?
        .iter()
        .map(|r| r.try_get("environment"))
        .collect::<Result<_, _>>()?;
        for environment in environments {
            let t = timers(&environment);
            let expired = names(
                sqlx::query(
                    "UPDATE nodes SET state = 'expired' WHERE environment = $1 \
                     AND state IN ('active', 'unreachable') AND last_seen < $2 \
                     AND agent_version NOT LIKE '0.1.%' AND agent_version NOT LIKE '0.2.%' \
                     RETURNING name",
                )
                .bind(&environment)
                .bind(now - t.expire_after)
                .fetch_all(&mut *tx)
                .in_time()
                .await?,
            )?;
            for name in &expired {
                leave(&mut tx, name, None, Departure::Gone, now).await?;
            }
            verdicts.expired.extend(expired);
            verdicts.unreachable.extend(names(
                sqlx::query(
                    "UPDATE nodes SET state = 'unreachable' WHERE environment = $1 \
                     AND state = 'active' AND last_seen < $2 \
                     AND agent_version NOT LIKE '0.1.%' AND agent_version NOT LIKE '0.2.%' \
                     RETURNING name",
                )
                .bind(&environment)
                .bind(now - t.unreachable_after)
                .fetch_all(&mut *tx)
                .in_time()
                .await?,
            )?);
        }
        tx.commit().in_time().await?;
        verdicts.unreachable.sort();
        verdicts.expired.sort();
        Ok(verdicts)
    }
}

/// Bring back an expired node that checked in: active, and a member of
/// its roles again with the lowest free ordinals. False when it was not
/// expired (another replica brought it back first).
pub(crate) async fn rejoin(conn: &mut AnyConnection, name: &str, now: i64) -> Result<bool> {
    let done =
        sqlx::query("UPDATE nodes SET state = 'active' WHERE name = $1 AND state = 'expired'")
            .bind(name)
            .execute(&mut *conn)
            .in_time()
            .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let node = nodes::fetch(conn, name)
        .await?
        .ok_or_else(|| nodes::not_found(name))?;
    reconcile(conn, &node, now).await?;
    Ok(true)
}

impl Store {
    /// Make every member of its roles hold its rows (oldest enrollment
    /// first, so the oldest nodes take the lowest ordinals): nodes enrolled
    /// before the server kept a membership, or any a failure left out.
    /// Returns how many nodes it changed. Run once when a server starts.
    pub async fn reconcile_members(&self, now: i64) -> Result<usize> {
        let members = self.members(None, None).await?;
        let held: BTreeSet<(&str, &str, &str)> = members
            .iter()
            .map(|m| (m.node.as_str(), m.environment.as_str(), m.role.as_str()))
            .collect();
        let mut nodes = self.nodes(None, None).await?;
        nodes.sort_by_key(|n| (n.enrolled_at, n.name.clone()));
        let mut changed = 0;
        for n in nodes.iter().filter(|n| is_member(n.state)) {
            let whole = n
                .roles
                .iter()
                .all(|r| held.contains(&(n.name.as_str(), n.environment.as_str(), r.as_str())));
            if whole {
                continue;
            }
            let mut tx = self.write_tx().await?;
            // Read again under the transaction: it may have changed.
            if let Some(node) = nodes::fetch(&mut tx, &n.name).await?
                && reconcile(&mut tx, &node, now).await?
            {
                changed += 1;
            }
            tx.commit().in_time().await?;
        }
        Ok(changed)
    }
}

fn names(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<String>> {
    Ok(rows
        .iter()
        .map(|r| r.try_get("name"))
        .collect::<Result<_, _>>()?)
}

/// Record this pass; when the last one is older than [`DOWNTIME_AFTER`],
/// add the gap to the last check-in of every node in the view and return
/// it. The first pass ever starts every member's clock. The setting moves by a conditional update, so of two replicas
/// ending the same downtime only one credits it.
async fn credit_downtime(conn: &mut AnyConnection, now: i64) -> Result<i64> {
    let last: Option<String> = sqlx::query("SELECT value FROM cluster_settings WHERE key = $1")
        .bind(PASS_AT)
        .fetch_optional(&mut *conn)
        .in_time()
        .await?
        .map(|r| r.try_get("value"))
        .transpose()?;
    let Some(last) = last else {
        let first = sqlx::query(
            "INSERT INTO cluster_settings (key, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(PASS_AT)
        .bind(now.to_string())
        .bind(now)
        .execute(&mut *conn)
        .in_time()
        .await?;
        if first.rows_affected() == 1 {
            // The first pass ever (a new database, or an upgrade from a
            // server that never judged): how long nodes were silent before
            // is not known, so every member's clock starts now rather than
            // a fleet expiring (and losing its ordinals) at once.
            sqlx::query(
                "UPDATE nodes SET last_seen = $1 \
                 WHERE state IN ('active', 'unreachable') AND last_seen < $1",
            )
            .bind(now)
            .execute(&mut *conn)
            .in_time()
            .await?;
        }
        return Ok(0);
    };
    let Ok(last_at) = last.parse::<i64>() else {
        return Err(StoreError::corrupt(
            "cluster setting",
            PASS_AT,
            "value",
            &last,
        ));
    };
    // A replica whose clock is behind another's moves nothing back: its
    // pass would otherwise look like a gap on the next one.
    if now <= last_at {
        return Ok(0);
    }
    let moved = sqlx::query("UPDATE cluster_settings SET value = $1 WHERE key = $2 AND value = $3")
        .bind(now.to_string())
        .bind(PASS_AT)
        .bind(&last)
        .execute(&mut *conn)
        .in_time()
        .await?;
    let gap = now - last_at;
    if moved.rows_affected() == 0 || gap <= DOWNTIME_AFTER {
        return Ok(0);
    }
    sqlx::query(
        "UPDATE nodes SET last_seen = last_seen + $1 \
         WHERE state IN ('active', 'unreachable') AND last_seen <= $2",
    )
    .bind(gap)
    .bind(now - gap)
    .execute(&mut *conn)
    .in_time()
    .await?;
    Ok(gap)
}

#[cfg(test)]
mod tests {
    use super::lowest_free;

    #[test]
    fn the_lowest_free_ordinal_fills_the_first_gap() {
        assert_eq!(lowest_free(&[]), 0);
        assert_eq!(lowest_free(&[0, 1, 2]), 3);
        assert_eq!(lowest_free(&[1, 2]), 0);
        assert_eq!(lowest_free(&[0, 2, 3]), 1);
    }
}
