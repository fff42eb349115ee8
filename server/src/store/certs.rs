//! Revoked certificate serials. Replicas share one CA, so revocations live
//! in the database: the TLS layer asks [`Store::is_revoked`] (or builds a CRL
//! from [`Store::revoked_serials`]) for every client certificate.

use sqlx::AnyConnection;
use sqlx::Row;

use super::pools::InTime;
use super::{Result, Store};

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The serial as the PKI writes it (hex).
    pub serial: String,
    /// Why: `node web-1 retired`, `renewed`, `admin alice removed`, ...
    pub reason: String,
    /// Unix seconds.
    pub revoked_at: i64,
}

/// Revoke a serial inside the caller's transaction. Revoking twice keeps the
/// first reason and time. True when the serial was not revoked before.
pub(crate) async fn revoke(
    conn: &mut AnyConnection,
    serial: &str,
    reason: &str,
    now: i64,
) -> Result<bool> {
    if serial.is_empty() {
        return Ok(false);
    }
    let done = sqlx::query(
        "INSERT INTO revocations (serial, reason, revoked_at) VALUES ($1, $2, $3) \
         ON CONFLICT (serial) DO NOTHING",
    )
    .bind(serial)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .in_time()
    .await?;
    Ok(done.rows_affected() > 0)
}

impl Store {
    /// Revoke a certificate serial. True when it was not revoked before;
    /// revoking twice is not an error and keeps the first reason.
    pub async fn revoke_serial(&self, serial: &str, reason: &str, now: i64) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let fresh = revoke(&mut tx, serial, reason, now).await?;
        tx.commit().in_time().await?;
        Ok(fresh)
    }

    /// Whether a serial has been revoked.
    pub async fn is_revoked(&self, serial: &str) -> Result<bool> {
        let row = sqlx::query("SELECT serial FROM revocations WHERE serial = $1")
            .bind(serial)
            .fetch_optional(&self.pool)
            .in_time()
            .await?;
        Ok(row.is_some())
    }

    /// The revocation of `serial`, if it is revoked.
    pub async fn revocation(&self, serial: &str) -> Result<Option<Revocation>> {
        let row =
            sqlx::query("SELECT serial, reason, revoked_at FROM revocations WHERE serial = $1")
                .bind(serial)
                .fetch_optional(&self.pool)
                .in_time()
                .await?;
        row.map(|row| {
            Ok(Revocation {
                serial: row.try_get("serial")?,
                reason: row.try_get("reason")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        })
        .transpose()
    }

    /// Every revocation, oldest first (for a CRL).
    pub async fn revoked_serials(&self) -> Result<Vec<Revocation>> {
        let rows = sqlx::query(
            "SELECT serial, reason, revoked_at FROM revocations ORDER BY revoked_at, serial",
        )
        .fetch_all(&self.pool)
        .in_time()
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Revocation {
                    serial: row.try_get("serial")?,
                    reason: row.try_get("reason")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            })
            .collect()
    }
}
