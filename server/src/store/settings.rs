//! Deployment-wide settings every server process on one database must agree
//! on (the CA's fingerprint, the secrets key's id): the first value recorded
//! under a key stays.

use sqlx::Row;

use super::pools::InTime;
use super::{Result, Store, unix_now};

impl Store {
    /// The value recorded under `key`, if any.
    pub async fn cluster_setting(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM cluster_settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .in_time()
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Record `value` under `key` unless a value is recorded already, and
    /// return the value that is recorded now: `value` when this call (or an
    /// earlier one with the same value) won, the other value otherwise. Two
    /// processes racing get the same answer.
    pub async fn claim_cluster_setting(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO cluster_settings (key, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .bind(unix_now())
        .execute(&self.writer)
        .in_time()
        .await?;
        let row = sqlx::query("SELECT value FROM cluster_settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .in_time()
            .await?;
        Ok(row.try_get("value")?)
    }
}
