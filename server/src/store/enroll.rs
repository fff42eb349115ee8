//! Enrollment: a node name becomes a node row, with or without a token.
//!
//! A name an active or unreachable node holds is refused while that node's
//! certificate is valid, so a token holder cannot take over a live node; a
//! retired node's name is enrolled again (fresh roles, environment, facts,
//! certificate and state; the admin-set attributes stay, since it is usually
//! the same machine coming back after its certificate expired). A node whose
//! certificate has expired (`cert_expires_at < now`) can no longer call the
//! server at all: an enrollment under its name retires it first, as `cmctl
//! node retire` would (state, revoked serial, audit row), in the same
//! transaction. With a token, consuming one use, retiring an expired holder
//! and writing the node are one transaction: a refused name gives the use
//! back and retires nothing.
//!
//! Each enrollment starts a new identity for the name: the serial of the
//! certificate it issues, kept through renewals (`nodes.identity`), which
//! every run the node reports carries (`runs.rs`).
//!
//! The races are decided by single statements, identically on SQLite and
//! PostgreSQL: the use by `UPDATE tokens ... WHERE uses_left > 0 AND
//! revoked = 0 AND expires_at > now` (rows affected 0 or 1), the expired
//! holder by `UPDATE nodes ... WHERE state <> 'retired' AND cert_expires_at
//! < now` (which also locks the row), the name by `INSERT ... ON CONFLICT
//! (name) DO UPDATE ... WHERE nodes.state = 'retired'`.

use serde_json::json;
use sqlx::AnyConnection;
use sqlx::Row;

use super::nodes::{self, NodeRow, NodeState, parse_facts};
use super::pools::InTime;
use super::{Result, Store, StoreError, TokenRefusal, audit, from_json, to_json};

/// What a node brings to its enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEnrollment {
    /// EC2 instance id or hostname: letters, digits, `.`, `-`, `_`.
    pub name: String,
    /// A JSON object.
    pub facts_json: String,
    /// The serial of the certificate the server just issued for it.
    pub cert_serial: String,
    /// Unix seconds.
    pub cert_expires_at: i64,
    /// Unix seconds: when the enrollment happens (token expiry is checked
    /// against it).
    pub now: i64,
}

/// The result of an enrollment.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrolledNode {
    pub node: NodeRow,
    /// The token used, when there was one.
    pub token_id: Option<String>,
    /// True when the name belonged to a retired node (or to one whose
    /// certificate had expired, see `retired_expired`).
    pub reenrolled: bool,
    /// The serial of the expired certificate of the node that held the
    /// name, retired (and revoked) by this enrollment.
    pub retired_expired: Option<String>,
}

/// Why an enrollment retires the node that held its name.
const EXPIRED: &str = "certificate expired";

/// Check a node name: it becomes a certificate name and a path component.
pub fn validate_node_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "node name {name:?} is not valid: use 1 to 253 letters, digits, '.', '-' or '_', \
             starting with a letter or digit"
        )))
    }
}

/// Retire the node holding `e.name` if its certificate has expired, on the
/// caller's transaction; returns its serial. The conditional update locks
/// the row, so of two enrollments racing for the name one retires it and the
/// other then finds a live node (PostgreSQL re-checks the condition after
/// the lock).
async fn retire_if_expired(
    conn: &mut AnyConnection,
    e: &NodeEnrollment,
    who: &str,
) -> Result<Option<String>> {
    let locked = sqlx::query(
        "UPDATE nodes SET state = state \
         WHERE name = $1 AND state <> 'retired' AND cert_expires_at < $2",
    )
    .bind(&e.name)
    .bind(e.now)
    .execute(&mut *conn)
    .in_time()
    .await?;
    if locked.rows_affected() == 0 {
        return Ok(None);
    }
    let holder = nodes::fetch(conn, &e.name)
        .await?
        .ok_or_else(|| nodes::not_found(&e.name))?;
    nodes::retire_locked(conn, &holder, who, Some(EXPIRED), e.now).await?;
    Ok(Some(holder.cert_serial))
}

/// Insert the node, or take over a retired node's row (retiring first a
/// holder whose certificate expired), on the caller's transaction. Conflict
/// when a live node holds the name. The attributes admins set on the name
/// follow it only into the same environment: a token of another
/// environment (made by an admin who may be limited to it) must not
/// inherit what another environment's admins set.
async fn write_node(
    conn: &mut AnyConnection,
    e: &NodeEnrollment,
    facts: &str,
    environment: &str,
    roles: &[String],
    who: &str,
) -> Result<EnrolledNode> {
    let retired_expired = retire_if_expired(conn, e, who).await?;
    let previous = nodes::fetch(conn, &e.name).await?;
    let done = sqlx::query(
        "INSERT INTO nodes (name, environment, roles_json, attributes_json, facts_json, state, \
         cert_serial, cert_expires_at, enrolled_at, last_seen, last_run_json, plan_hash, \
         identity) \
         VALUES ($1, $2, $3, '{}', $4, 'active', $5, $6, $7, $7, NULL, '', $5) \
         ON CONFLICT (name) DO UPDATE SET environment = excluded.environment, \
         attributes_json = CASE WHEN nodes.environment = excluded.environment \
         THEN nodes.attributes_json ELSE '{}' END, \
         roles_json = excluded.roles_json, facts_json = excluded.facts_json, state = 'active', \
         cert_serial = excluded.cert_serial, cert_expires_at = excluded.cert_expires_at, \
         identity = excluded.identity, \
         enrolled_at = excluded.enrolled_at, last_seen = excluded.last_seen, \
         last_run_json = NULL, plan_hash = '' \
         WHERE nodes.state = 'retired'",
    )
    .bind(&e.name)
    .bind(environment)
    .bind(to_json(roles))
    .bind(facts)
    .bind(&e.cert_serial)
    .bind(e.cert_expires_at)
    .bind(e.now)
    .execute(&mut *conn)
    .in_time()
    .await?;
    if done.rows_affected() == 0 {
        // Read again: on PostgreSQL the holder may have committed after our
        // first read.
        let holder = nodes::fetch(conn, &e.name).await?;
        let state = holder.map_or(NodeState::Active, |n| n.state);
        return Err(StoreError::Conflict(format!(
            "node name {} is held by an {state} node whose certificate has not expired; \
             retire it first (cmctl node retire {})",
            e.name, e.name
        )));
    }
    let node = nodes::fetch(conn, &e.name)
        .await?
        .ok_or_else(|| nodes::not_found(&e.name))?;
    super::membership::reconcile(conn, &node, e.now).await?;
    audit::record(
        conn,
        e.now,
        who,
        format!("node.enroll {}", e.name),
        previous.as_ref().map(
            |p| json!({"state": p.state.as_str(), "environment": p.environment, "roles": p.roles}),
        ),
        Some(json!({
            "state": "active",
            "environment": environment,
            "roles": roles,
            "cert_serial": e.cert_serial,
        })),
    )
    .await?;
    Ok(EnrolledNode {
        node,
        token_id: None,
        reenrolled: previous.is_some(),
        retired_expired,
    })
}

/// Why a token could not be used, read after the conditional update missed.
async fn refusal(conn: &mut AnyConnection, token_hash: &str, now: i64) -> Result<StoreError> {
    let row =
        sqlx::query("SELECT id, expires_at, uses_left, revoked FROM tokens WHERE secret_hash = $1")
            .bind(token_hash)
            .fetch_optional(conn)
            .in_time()
            .await?;
    let Some(row) = row else {
        return Ok(StoreError::Denied(TokenRefusal::Unknown));
    };
    let id: String = row.try_get("id")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    let uses_left: i64 = row.try_get("uses_left")?;
    let revoked: i64 = row.try_get("revoked")?;
    Ok(StoreError::Denied(if revoked != 0 {
        TokenRefusal::Revoked { id }
    } else if expires_at <= now {
        TokenRefusal::Expired {
            id,
            expires_at,
            now,
        }
    } else if uses_left <= 0 {
        TokenRefusal::UsedUp { id }
    } else {
        TokenRefusal::Raced { id }
    }))
}

impl Store {
    /// Enroll a node without a token, for the server's own use (the
    /// embedded quick start's local agent). The audit names `who`.
    pub async fn enroll_node(
        &self,
        e: &NodeEnrollment,
        environment: &str,
        roles: &[String],
        who: &str,
    ) -> Result<EnrolledNode> {
        validate_node_name(&e.name)?;
        let facts = parse_facts(&e.facts_json)?;
        let mut tx = self.write_tx().await?;
        let enrolled = write_node(&mut tx, e, &facts, environment, roles, who).await?;
        tx.commit().in_time().await?;
        Ok(enrolled)
    }

    /// Enroll a node with a token (given as the sha256 hex of its secret):
    /// one use is consumed and the node is written with the token's roles and
    /// environment, atomically. A token that is unknown, revoked, expired
    /// or used up is [`StoreError::Denied`] with a message saying which; a
    /// name a live node holds is [`StoreError::Conflict`] and consumes
    /// nothing. A holder whose certificate expired before `e.now` is retired
    /// in the same transaction. The audit rows name `token:ID`.
    pub async fn enroll_with_token(
        &self,
        token_hash: &str,
        e: &NodeEnrollment,
    ) -> Result<EnrolledNode> {
        validate_node_name(&e.name)?;
        let facts = parse_facts(&e.facts_json)?;
        let mut tx = self.write_tx().await?;
        let used = sqlx::query(
            "UPDATE tokens SET uses_left = uses_left - 1 \
             WHERE secret_hash = $1 AND uses_left > 0 AND revoked = 0 AND expires_at > $2 \
             RETURNING id, roles_json, environment",
        )
        .bind(token_hash)
        .bind(e.now)
        .fetch_optional(&mut *tx)
        .in_time()
        .await?;
        let Some(used) = used else {
            let refused = refusal(&mut tx, token_hash, e.now).await?;
            tx.rollback().in_time().await?;
            return Err(refused);
        };
        let id: String = used.try_get("id")?;
        let roles_json: String = used.try_get("roles_json")?;
        let roles: Vec<String> = from_json(&roles_json, "token", &id, "roles_json")?;
        let environment: String = used.try_get("environment")?;
        let mut enrolled = write_node(
            &mut tx,
            e,
            &facts,
            &environment,
            &roles,
            &format!("token:{id}"),
        )
        .await?;
        tx.commit().in_time().await?;
        enrolled.token_id = Some(id);
        Ok(enrolled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_hostnames_or_instance_ids() {
        for ok in ["i-0abc123", "web-1.example.com", "db_2"] {
            assert!(validate_node_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a/b", "a b", "../x", &"x".repeat(254)] {
            assert!(validate_node_name(bad).is_err(), "{bad}");
        }
    }
}
