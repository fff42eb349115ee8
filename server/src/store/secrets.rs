//! Secrets: ciphertext and the roles allowed to read it. Encryption and
//! decryption are the caller's (the key never reaches the database); the
//! store keeps the ciphertext as hex text and never writes it, nor its
//! length, to the audit log.

use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::pools::InTime;
use super::{Result, Saved, Store, StoreError, audit, from_json, lock_row, to_json, unix_now};

/// A stored secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRow {
    pub name: String,
    /// Encrypted by the caller; opaque here.
    pub ciphertext: Vec<u8>,
    /// The roles whose nodes may read it.
    pub roles: Vec<String>,
    /// Unix seconds.
    pub updated_at: i64,
    pub updated_by: String,
}

impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRow")
            .field("name", &self.name)
            .field("ciphertext", &"<redacted>")
            .field("roles", &self.roles)
            .field("updated_at", &self.updated_at)
            .field("updated_by", &self.updated_by)
            .finish()
    }
}

fn secret_from_row(row: &AnyRow) -> Result<SecretRow> {
    let name: String = row.try_get("name")?;
    let hex_text: String = row.try_get("ciphertext_hex")?;
    let roles: String = row.try_get("roles_json")?;
    Ok(SecretRow {
        ciphertext: hex::decode(&hex_text)
            .map_err(|e| StoreError::corrupt("secret", &name, "ciphertext_hex", e))?,
        roles: from_json(&roles, "secret", &name, "roles_json")?,
        updated_at: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
        name,
    })
}

macro_rules! select_secrets {
    ($($tail:literal)?) => {
        concat!(
            "SELECT name, ciphertext_hex, roles_json, updated_at, updated_by FROM secrets"
            $(, " ", $tail)?
        )
    };
}

impl Store {
    /// Create or replace a secret. Unchanged (no audit row) when both the
    /// ciphertext and the roles are what is stored. The audit row records
    /// the roles before and after, never the value.
    pub async fn put_secret(
        &self,
        name: &str,
        ciphertext: &[u8],
        roles: &[String],
        who: &str,
    ) -> Result<Saved<SecretRow>> {
        if name.is_empty() {
            return Err(StoreError::Invalid("a secret needs a name".into()));
        }
        let now = unix_now();
        let secret = SecretRow {
            name: name.to_string(),
            ciphertext: ciphertext.to_vec(),
            roles: roles.to_vec(),
            updated_at: now,
            updated_by: who.to_string(),
        };
        let mut tx = self.write_tx().await?;
        let before = if lock_row(
            &mut tx,
            "UPDATE secrets SET roles_json = roles_json WHERE name = $1",
            name,
        )
        .await?
        {
            let row = sqlx::query(select_secrets!("WHERE name = $1"))
                .bind(name)
                .fetch_one(&mut *tx)
                .in_time()
                .await?;
            let existing = secret_from_row(&row)?;
            if existing.ciphertext == ciphertext && existing.roles == roles {
                tx.rollback().in_time().await?;
                return Ok(Saved {
                    value: existing,
                    changed: false,
                });
            }
            Some(json!({"roles": existing.roles}))
        } else {
            None
        };
        sqlx::query(
            "INSERT INTO secrets (name, ciphertext_hex, roles_json, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET \
             ciphertext_hex = excluded.ciphertext_hex, roles_json = excluded.roles_json, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(name)
        .bind(hex::encode(ciphertext))
        .bind(to_json(roles))
        .bind(now)
        .bind(who)
        .execute(&mut *tx)
        .in_time()
        .await?;
        audit::record(
            &mut tx,
            now,
            who,
            format!("secret.set {name}"),
            before,
            Some(json!({"roles": roles})),
        )
        .await?;
        tx.commit().in_time().await?;
        Ok(Saved {
            value: secret,
            changed: true,
        })
    }

    /// Every secret with its ciphertext, by name.
    pub async fn secrets(&self) -> Result<Vec<SecretRow>> {
        let rows = sqlx::query(select_secrets!("ORDER BY name"))
            .fetch_all(&self.pool)
            .in_time()
            .await?;
        rows.iter().map(secret_from_row).collect()
    }

    /// Delete a secret.
    pub async fn delete_secret(&self, name: &str, who: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("DELETE FROM secrets WHERE name = $1 RETURNING roles_json")
            .bind(name)
            .fetch_optional(&mut *tx)
            .in_time()
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(format!(
                "secret {name} does not exist"
            )));
        };
        let roles: String = row.try_get("roles_json")?;
        let roles: Vec<String> = from_json(&roles, "secret", name, "roles_json")?;
        audit::record(
            &mut tx,
            unix_now(),
            who,
            format!("secret.delete {name}"),
            Some(json!({"roles": roles})),
            None,
        )
        .await?;
        tx.commit().in_time().await?;
        Ok(())
    }
}
