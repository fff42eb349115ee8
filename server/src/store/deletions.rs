//! Deleting a role or an environment, refused while anything still names
//! it: live nodes (expired ones too: they come back), live tokens (their
//! nodes would enroll into nothing) and, for a role, secrets (a role made
//! again under the same name must not read them by accident). The check and
//! the delete share one transaction under the plan lock, which token
//! creation, node moves and role assignments take too, so none of them can
//! add a user between the two.

use serde_json::json;
use sqlx::{AnyConnection, Row};

use super::plan_guard;
use super::pools::InTime;
use super::{DocKind, Result, Store, StoreError, audit, from_json, unix_now};

/// How many users of each kind a refusal names; the rest are counted.
const NAMED_USERS: usize = 10;

impl Store {
    /// Delete a role or an environment and its history. The audit row keeps
    /// its last revision. [`StoreError::Precondition`] naming the users when
    /// anything still uses it; [`StoreError::NotFound`] when it does not exist.
    pub async fn delete_document(&self, kind: DocKind, name: &str, who: &str) -> Result<()> {
        let now = unix_now();
        let mut tx = self.write_tx().await?;
        plan_guard::lock_plans(&mut tx, self.engine).await?;
        let current =
            sqlx::query("SELECT yaml, revision FROM documents WHERE kind = $1 AND name = $2")
                .bind(kind.as_str())
                .bind(name)
                .fetch_optional(&mut *tx)
                .in_time()
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("{kind} {name} does not exist")))?;
        // Tokens first, then nodes: an enrollment (which takes no lock)
        // committing at any moment is seen either as its live token or as
        // its node.
        let users = [
            ("live token", tokens_using(&mut tx, kind, name, now).await?),
            ("node", nodes_using(&mut tx, kind, name).await?),
            ("secret", secrets_using(&mut tx, kind, name).await?),
        ];
        if users.iter().any(|(_, names)| !names.is_empty()) {
            return Err(StoreError::Precondition(refusal(kind, name, &users)));
        }
        for sql in [
            "DELETE FROM documents WHERE kind = $1 AND name = $2",
            "DELETE FROM document_revisions WHERE kind = $1 AND name = $2",
        ] {
            sqlx::query(sql)
                .bind(kind.as_str())
                .bind(name)
                .execute(&mut *tx)
                .in_time()
                .await?;
        }
        // A ring made again under the name starts over: nobody replaces
        // the nodes of the old one.
        let forget = match kind {
            DocKind::Role => "DELETE FROM freed_ordinals WHERE role = $1",
            DocKind::Environment => "DELETE FROM freed_ordinals WHERE environment = $1",
        };
        sqlx::query(forget)
            .bind(name)
            .execute(&mut *tx)
            .in_time()
            .await?;
        let before = json!({
            "revision": current.try_get::<i64, _>("revision")?,
            "yaml": current.try_get::<String, _>("yaml")?,
        });
        audit::record(
            &mut tx,
            now,
            who,
            format!("{kind}.delete {name}"),
            Some(before),
            None,
        )
        .await?;
        tx.commit().in_time().await?;
        Ok(())
    }
}

/// [`StoreError::Precondition`] unless every role and the environment
/// exist, on the caller's transaction (which holds the plan lock).
pub(crate) async fn require_documents(
    conn: &mut AnyConnection,
    roles: &[String],
    environment: Option<&str>,
) -> Result<()> {
    let roles_known = super::documents::list(&mut *conn, DocKind::Role).await?;
    let missing: Vec<&str> = roles
        .iter()
        .filter(|r| !roles_known.iter().any(|d| &d.name == *r))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(StoreError::Precondition(format!(
            "role {} does not exist: its nodes would have no plan (cmctl role set first)",
            missing.join(", ")
        )));
    }
    if let Some(environment) = environment {
        let known = super::documents::list(&mut *conn, DocKind::Environment).await?;
        if !known.iter().any(|d| d.name == environment) {
            return Err(StoreError::Precondition(format!(
                "environment {environment} does not exist: set it first (cmctl env set)"
            )));
        }
    }
    Ok(())
}

fn refusal(kind: DocKind, name: &str, users: &[(&str, Vec<String>)]) -> String {
    let mut message = format!("{kind} {name} is still in use; nothing was deleted");
    for (what, names) in users.iter().filter(|(_, n)| !n.is_empty()) {
        let shown = names.iter().take(NAMED_USERS).cloned().collect::<Vec<_>>();
        let more = names.len() - shown.len();
        let plural = if names.len() == 1 { "" } else { "s" };
        message.push_str(&format!(
            "\n  {} {what}{plural}: {}",
            names.len(),
            shown.join(", ")
        ));
        if more > 0 {
            message.push_str(&format!(" and {more} more"));
        }
    }
    message.push_str(match kind {
        DocKind::Role => {
            "\n  (cmctl node unassign, cmctl node retire, cmctl token revoke; a secret: cmctl secret set NAME --role with its value again, or cmctl secret delete NAME)"
        }
        DocKind::Environment => "\n  (cmctl node move, cmctl node retire, cmctl token revoke)",
    });
    message
}

/// Who of `rows` uses the role or the environment: each row has a `user`
/// (its name), an `environment` and a `roles_json`.
async fn users_of<'q>(
    conn: &mut AnyConnection,
    rows: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    table: &str,
    kind: DocKind,
    name: &str,
) -> Result<Vec<String>> {
    let rows = rows.fetch_all(conn).in_time().await?;
    let mut users = Vec::new();
    for row in &rows {
        let user: String = row.try_get("user_name")?;
        let uses = match kind {
            DocKind::Environment => row.try_get::<String, _>("environment")? == name,
            DocKind::Role => {
                let roles: String = row.try_get("roles_json")?;
                from_json::<Vec<String>>(&roles, table, &user, "roles_json")?
                    .iter()
                    .any(|r| r == name)
            }
        };
        if uses {
            users.push(user);
        }
    }
    Ok(users)
}

/// Live tokens (not revoked, not expired, uses left), by id.
async fn tokens_using(
    conn: &mut AnyConnection,
    kind: DocKind,
    name: &str,
    now: i64,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT id AS user_name, environment, roles_json FROM tokens \
         WHERE revoked = 0 AND uses_left > 0 AND expires_at > $1 ORDER BY id",
    )
    .bind(now);
    users_of(conn, rows, "token", kind, name).await
}

/// Nodes not retired.
async fn nodes_using(conn: &mut AnyConnection, kind: DocKind, name: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT name AS user_name, environment, roles_json FROM nodes \
         WHERE state <> 'retired' ORDER BY name",
    );
    users_of(conn, rows, "node", kind, name).await
}

/// Secrets readable by the role (environments scope no secret).
async fn secrets_using(conn: &mut AnyConnection, kind: DocKind, name: &str) -> Result<Vec<String>> {
    if kind == DocKind::Environment {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT name AS user_name, '' AS environment, roles_json FROM secrets ORDER BY name",
    );
    users_of(conn, rows, "secret", kind, name).await
}
