//! Roles and environments, stored as the YAML the admin wrote, with a
//! revision number and every past revision. The store does not parse the
//! YAML: the API layer validates it with cm-model before it gets here.

use serde_json::json;
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::plan_guard::{self, PlanGuard, Scope};
use super::pools::InTime;
use super::{Result, Saved, Store, StoreError, audit, unix_now};

/// Which kind of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocKind {
    Role,
    Environment,
}

impl DocKind {
    /// The kind as stored and as written in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Role => "role",
            DocKind::Environment => "environment",
        }
    }
}

impl std::fmt::Display for DocKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One revision of a role or an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub kind: DocKind,
    pub name: String,
    pub yaml: String,
    /// 1 for the first revision, one more for each change.
    pub revision: i64,
    /// Unix seconds.
    pub updated_at: i64,
    pub updated_by: String,
}

fn document_from_row(kind: DocKind, row: &AnyRow) -> Result<Document> {
    Ok(Document {
        kind,
        name: row.try_get("name")?,
        yaml: row.try_get("yaml")?,
        revision: row.try_get("revision")?,
        updated_at: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}

fn not_found(kind: DocKind, name: &str) -> StoreError {
    StoreError::NotFound(format!("{kind} {name} does not exist"))
}

/// Every document of a kind, by name, on the caller's connection (so a
/// transaction sees its own view).
pub(crate) async fn list(conn: &mut AnyConnection, kind: DocKind) -> Result<Vec<Document>> {
    let rows = sqlx::query(
        "SELECT name, yaml, revision, updated_at, updated_by FROM documents \
         WHERE kind = $1 ORDER BY name",
    )
    .bind(kind.as_str())
    .fetch_all(conn)
    .in_time()
    .await?;
    rows.iter()
        .map(|row| document_from_row(kind, row))
        .collect()
}

impl Store {
    /// Store a role or an environment. Identical YAML changes nothing (no
    /// new revision, no audit row, `changed: false`); anything else becomes
    /// the next revision, kept in the history.
    pub async fn put_document(
        &self,
        kind: DocKind,
        name: &str,
        yaml: &str,
        who: &str,
    ) -> Result<Saved<Document>> {
        self.put_document_checked(kind, name, yaml, who, None).await
    }

    /// [`Store::put_document`], with `guard` run first inside the change's
    /// transaction: a change that would leave nodes without a plan is
    /// [`StoreError::BreaksPlans`] unless forced.
    pub async fn put_document_checked(
        &self,
        kind: DocKind,
        name: &str,
        yaml: &str,
        who: &str,
        guard: Option<PlanGuard<'_>>,
    ) -> Result<Saved<Document>> {
        if name.is_empty() {
            return Err(StoreError::Invalid(format!("a {kind} needs a name")));
        }
        let now = unix_now();
        let mut tx = self.write_tx().await?;
        if let Some(guard) = guard {
            plan_guard::lock_plans(&mut tx, self.engine).await?;
            let what = format!("{kind}.set {name}");
            plan_guard::check(&mut tx, guard, Scope::Fleet, who, &what, now).await?;
        }
        // One statement decides, atomically on both engines, whether this is
        // a change and which revision it gets.
        let written = sqlx::query(
            "INSERT INTO documents (kind, name, yaml, revision, updated_at, updated_by) \
             VALUES ($1, $2, $3, 1, $4, $5) \
             ON CONFLICT (kind, name) DO UPDATE SET yaml = excluded.yaml, \
             revision = documents.revision + 1, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by \
             WHERE documents.yaml <> excluded.yaml \
             RETURNING revision",
        )
        .bind(kind.as_str())
        .bind(name)
        .bind(yaml)
        .bind(now)
        .bind(who)
        .fetch_optional(&mut *tx)
        .in_time()
        .await?;
        let Some(written) = written else {
            tx.rollback().in_time().await?;
            let current = self.document(kind, name).await?;
            return Ok(Saved {
                value: current,
                changed: false,
            });
        };
        let revision: i64 = written.try_get("revision")?;
        sqlx::query(
            "INSERT INTO document_revisions (kind, name, revision, yaml, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(kind.as_str())
        .bind(name)
        .bind(revision)
        .bind(yaml)
        .bind(now)
        .bind(who)
        .execute(&mut *tx)
        .in_time()
        .await?;
        let before = sqlx::query(
            "SELECT yaml FROM document_revisions WHERE kind = $1 AND name = $2 AND revision = $3",
        )
        .bind(kind.as_str())
        .bind(name)
        .bind(revision - 1)
        .fetch_optional(&mut *tx)
        .in_time()
        .await?;
        let before = match before {
            Some(row) => {
                Some(json!({"revision": revision - 1, "yaml": row.try_get::<String, _>("yaml")?}))
            }
            None => None,
        };
        audit::record(
            &mut tx,
            now,
            who,
            format!("{kind}.set {name}"),
            before,
            Some(json!({"revision": revision, "yaml": yaml})),
        )
        .await?;
        tx.commit().in_time().await?;
        Ok(Saved {
            value: Document {
                kind,
                name: name.to_string(),
                yaml: yaml.to_string(),
                revision,
                updated_at: now,
                updated_by: who.to_string(),
            },
            changed: true,
        })
    }

    /// The current revision of a role or an environment.
    pub async fn document(&self, kind: DocKind, name: &str) -> Result<Document> {
        let row = sqlx::query(
            "SELECT name, yaml, revision, updated_at, updated_by FROM documents \
             WHERE kind = $1 AND name = $2",
        )
        .bind(kind.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .in_time()
        .await?;
        match row {
            Some(row) => document_from_row(kind, &row),
            None => Err(not_found(kind, name)),
        }
    }

    /// The current revision of every role or every environment, by name.
    pub async fn documents(&self, kind: DocKind) -> Result<Vec<Document>> {
        let mut conn = self.pool.acquire().await?;
        list(&mut conn, kind).await
    }

    /// Every revision of a role or an environment, newest first.
    pub async fn history(&self, kind: DocKind, name: &str) -> Result<Vec<Document>> {
        let rows = sqlx::query(
            "SELECT name, yaml, revision, updated_at, updated_by FROM document_revisions \
             WHERE kind = $1 AND name = $2 ORDER BY revision DESC",
        )
        .bind(kind.as_str())
        .bind(name)
        .fetch_all(&self.pool)
        .in_time()
        .await?;
        if rows.is_empty() {
            return Err(not_found(kind, name));
        }
        rows.iter()
            .map(|row| document_from_row(kind, row))
            .collect()
    }
}
