//! Enrollment tokens: a secret an autoscaling group's user-data carries, kept
//! here only as its sha256, with the roles and environment it gives, an
//! expiry and a use limit. Consuming a use happens in `enroll.rs`, in the
//! enrollment's transaction.

use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::pools::InTime;
use super::{
    Result, Saved, Store, StoreError, audit, deletions, from_json, lock_row, plan_guard, to_json,
    unix_now,
};

/// A token to create. The caller makes the id and the secret and hashes
/// the secret; the store never sees the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Short and random; shown in listings and audit events.
    pub id: String,
    /// Lowercase hex sha256 of the token's secret.
    pub secret_hash: String,
    pub roles: Vec<String>,
    pub environment: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub uses: u32,
}

/// A stored token (without its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub roles: Vec<String>,
    pub environment: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub uses_left: i64,
    pub revoked: bool,
    pub created_at: i64,
    pub created_by: String,
}

impl TokenRow {
    fn audit_view(&self) -> serde_json::Value {
        json!({
            "id": self.id,
            "roles": self.roles,
            "environment": self.environment,
            "expires_at": self.expires_at,
            "uses_left": self.uses_left,
            "revoked": self.revoked,
        })
    }
}

macro_rules! select_tokens {
    ($($tail:literal)?) => {
        concat!(
            "SELECT id, roles_json, environment, expires_at, uses_left, revoked, created_at, \
             created_by FROM tokens"
            $(, " ", $tail)?
        )
    };
}

fn token_from_row(row: &AnyRow) -> Result<TokenRow> {
    let id: String = row.try_get("id")?;
    let roles: String = row.try_get("roles_json")?;
    Ok(TokenRow {
        roles: from_json(&roles, "token", &id, "roles_json")?,
        environment: row.try_get("environment")?,
        expires_at: row.try_get("expires_at")?,
        uses_left: row.try_get("uses_left")?,
        revoked: row.try_get::<i64, _>("revoked")? != 0,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        id,
    })
}

impl Store {
    /// Create a token. [`StoreError::Conflict`] when the id (or the secret's
    /// hash) is taken.
    pub async fn create_token(&self, new: &NewToken, who: &str) -> Result<TokenRow> {
        if new.id.is_empty() || new.secret_hash.is_empty() {
            return Err(StoreError::Invalid(
                "a token needs an id and a secret hash".into(),
            ));
        }
        if new.uses == 0 {
            return Err(StoreError::Invalid("a token needs at least one use".into()));
        }
        if new.environment.is_empty() {
            return Err(StoreError::Invalid("a token needs an environment".into()));
        }
        let now = unix_now();
        let token = TokenRow {
            id: new.id.clone(),
            roles: new.roles.clone(),
            environment: new.environment.clone(),
            expires_at: new.expires_at,
            uses_left: i64::from(new.uses),
            revoked: false,
            created_at: now,
            created_by: who.to_string(),
        };
        let mut tx = self.write_tx().await?;
        // Under the plan lock, as role and environment deletion: a token
        // never names a role or an environment that is not there.
        plan_guard::lock_plans(&mut tx, self.engine).await?;
        deletions::require_documents(&mut tx, &new.roles, Some(&new.environment)).await?;
        let done = sqlx::query(
            "INSERT INTO tokens (id, secret_hash, roles_json, environment, expires_at, \
             uses_left, revoked, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(&token.id)
        .bind(&new.secret_hash)
        .bind(to_json(&token.roles))
        .bind(&token.environment)
        .bind(token.expires_at)
        .bind(token.uses_left)
        .bind(now)
        .bind(who)
        .execute(&mut *tx)
        .in_time()
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "token {} already exists",
                new.id
            )));
        }
        audit::record(
            &mut tx,
            now,
            who,
            format!("token.create {}", token.id),
            None,
            Some(token.audit_view()),
        )
        .await?;
        tx.commit().in_time().await?;
        Ok(token)
    }

    /// Every token, newest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>> {
        let rows = sqlx::query(select_tokens!("ORDER BY created_at DESC, id"))
            .fetch_all(&self.pool)
            .in_time()
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// One token.
    pub async fn token(&self, id: &str) -> Result<TokenRow> {
        let row = sqlx::query(select_tokens!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .in_time()
            .await?;
        match row {
            Some(row) => token_from_row(&row),
            None => Err(StoreError::NotFound(format!("token {id} does not exist"))),
        }
    }

    /// Revoke a token: no node can enroll with it any more. Unchanged when
    /// it already was revoked.
    pub async fn revoke_token(&self, id: &str, who: &str) -> Result<Saved<TokenRow>> {
        let mut tx = self.write_tx().await?;
        if !lock_row(
            &mut tx,
            "UPDATE tokens SET revoked = revoked WHERE id = $1",
            id,
        )
        .await?
        {
            return Err(StoreError::NotFound(format!("token {id} does not exist")));
        }
        let row = sqlx::query(select_tokens!("WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .in_time()
            .await?;
        let mut token = token_from_row(&row)?;
        if token.revoked {
            tx.rollback().in_time().await?;
            return Ok(Saved {
                value: token,
                changed: false,
            });
        }
        let before = token.audit_view();
        sqlx::query("UPDATE tokens SET revoked = 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .in_time()
            .await?;
        token.revoked = true;
        audit::record(
            &mut tx,
            unix_now(),
            who,
            format!("token.revoke {id}"),
            Some(before),
            Some(token.audit_view()),
        )
        .await?;
        tx.commit().in_time().await?;
        Ok(Saved {
            value: token,
            changed: true,
        })
    }
}
