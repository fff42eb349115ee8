//! The dashboard's login links and sessions (docs/dashboard.md). Callers
//! hand in digests, never the secrets themselves. A link is taken once: the
//! `DELETE ... RETURNING` that takes it is the only way to start a session,
//! so two replicas racing on one link start one session.
//!
//! A session is valid while it has not expired and its admin is still the
//! admin who logged in: not removed, the same credential, the same level
//! and environments. Checked on every request against the admins table,
//! so a change made on any replica ends the session at once there too.

use serde_json::json;
use sqlx::{AssertSqlSafe, Row};

use super::pools::InTime;
use super::{AdminRow, Level, Result, Store, audit, from_json, unix_now};

/// A session that is still valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSession {
    /// The digest of the session's secret (what the store keys it by).
    pub digest: String,
    pub admin: String,
    pub level: Level,
    pub environments: Vec<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

impl Store {
    /// Record a login link for `admin`, valid until `expires_at`. Links and
    /// sessions that have expired are dropped on the way.
    pub async fn add_dashboard_link(
        &self,
        digest: &str,
        admin: &AdminRow,
        expires_at: i64,
    ) -> Result<()> {
        let now = unix_now();
        let mut tx = self.write_tx().await?;
        for table in ["dashboard_links", "dashboard_sessions"] {
            // `table` is one of two literals above.
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE expires_at <= $1"
            )))
            .bind(now)
            .execute(&mut *tx)
            .in_time()
            .await?;
        }
        sqlx::query(
            "INSERT INTO dashboard_links (digest, admin, cert_serial, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(digest)
        .bind(&admin.name)
        .bind(&admin.cert_serial)
        .bind(expires_at)
        .execute(&mut *tx)
        .in_time()
        .await?;
        tx.commit().in_time().await?;
        Ok(())
    }

    /// Take the link `link_digest` (once) and start a session
    /// `session_digest` for its admin, lasting `lifetime` seconds, audited.
    /// `None` when the link is unknown, used or expired, or its admin has
    /// since been removed or given another credential.
    /// The admin of the link `digest`, if it is unused and unexpired: a
    /// read, for the page that asks to log in (and to refuse a made-up
    /// link without taking the writer).
    pub async fn dashboard_link_admin(&self, digest: &str) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT admin FROM dashboard_links WHERE digest = $1 AND expires_at > $2")
                .bind(digest)
                .bind(unix_now())
                .fetch_optional(&self.pool)
                .in_time()
                .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("admin")?),
            None => None,
        })
    }

    /// `from` is where the browser connected from, for the audit.
    pub async fn start_dashboard_session(
        &self,
        link_digest: &str,
        session_digest: &str,
        lifetime: i64,
        from: &str,
    ) -> Result<Option<DashboardSession>> {
        let now = unix_now();
        let mut tx = self.write_tx().await?;
        let taken = sqlx::query(
            "DELETE FROM dashboard_links WHERE digest = $1 RETURNING admin, cert_serial, expires_at",
        )
        .bind(link_digest)
        .fetch_optional(&mut *tx)
        .in_time()
        .await?;
        let Some(taken) = taken else {
            return Ok(None);
        };
        let (name, serial, link_expires): (String, String, i64) = (
            taken.try_get("admin")?,
            taken.try_get("cert_serial")?,
            taken.try_get("expires_at")?,
        );
        let admin = sqlx::query(
            "SELECT level, environments_json, cert_serial, removed FROM admins WHERE name = $1",
        )
        .bind(&name)
        .fetch_optional(&mut *tx)
        .in_time()
        .await?;
        let current = match admin {
            Some(row) if row.try_get::<i64, _>("removed")? == 0 => {
                let current_serial: String = row.try_get("cert_serial")?;
                let level: String = row.try_get("level")?;
                let environments: String = row.try_get("environments_json")?;
                (current_serial == serial)
                    .then(|| Level::parse(&level).map(|l| (l, environments)))
                    .flatten()
            }
            _ => None,
        };
        let Some((level, environments_json)) = current.filter(|_| link_expires > now) else {
            // The link is spent either way.
            tx.commit().in_time().await?;
            return Ok(None);
        };
        let expires_at = now + lifetime;
        sqlx::query(
            "INSERT INTO dashboard_sessions \
             (digest, admin, cert_serial, level, environments_json, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(session_digest)
        .bind(&name)
        .bind(&serial)
        .bind(level.as_str())
        .bind(&environments_json)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .in_time()
        .await?;
        audit::record(
            &mut tx,
            now,
            &name,
            "dashboard.login".to_string(),
            None,
            Some(json!({"session": session_digest.get(..8).unwrap_or_default(), "expires_at": expires_at, "from": from})),
        )
        .await?;
        tx.commit().in_time().await?;
        Ok(Some(DashboardSession {
            digest: session_digest.to_string(),
            environments: from_json(&environments_json, "admins", &name, "environments_json")?,
            admin: name,
            level,
            expires_at,
        }))
    }

    /// The session `digest`, if it is still valid (see the module's doc);
    /// one that is not is deleted.
    pub async fn dashboard_session(&self, digest: &str) -> Result<Option<DashboardSession>> {
        let row = sqlx::query(
            "SELECT s.admin AS admin, s.level AS level, s.environments_json AS environments, \
             s.expires_at AS expires_at, \
             CASE WHEN s.cert_serial = a.cert_serial AND s.level = a.level \
              AND s.environments_json = a.environments_json AND a.removed = 0 \
              THEN 1 ELSE 0 END AS same \
             FROM dashboard_sessions s JOIN admins a ON a.name = s.admin WHERE s.digest = $1",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .in_time()
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let same = row.try_get::<i64, _>("same")? != 0;
        let expires_at: i64 = row.try_get("expires_at")?;
        let level = Level::parse(&row.try_get::<String, _>("level")?);
        match level {
            Some(level) if same && expires_at > unix_now() => {
                let admin: String = row.try_get("admin")?;
                let environments: String = row.try_get("environments")?;
                Ok(Some(DashboardSession {
                    digest: digest.to_string(),
                    environments: from_json(&environments, "admins", &admin, "environments_json")?,
                    admin,
                    level,
                    expires_at,
                }))
            }
            _ => {
                self.end_dashboard_session(digest, None).await?;
                Ok(None)
            }
        }
    }

    /// End one session; audited as a logout when `who` logged out.
    pub async fn end_dashboard_session(&self, digest: &str, who: Option<&str>) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let gone = sqlx::query("DELETE FROM dashboard_sessions WHERE digest = $1")
            .bind(digest)
            .execute(&mut *tx)
            .in_time()
            .await?
            .rows_affected();
        if let Some(who) = who.filter(|_| gone > 0) {
            let session = json!({"session": &digest[..digest.len().min(8)]});
            audit::record(
                &mut tx,
                unix_now(),
                who,
                "dashboard.logout".into(),
                Some(session),
                None,
            )
            .await?;
        }
        tx.commit().in_time().await?;
        Ok(())
    }
}

/// End every session and unused link of `admin`, on the transaction that
/// removes it or changes its level.
pub(crate) async fn end_sessions_of(conn: &mut sqlx::AnyConnection, admin: &str) -> Result<()> {
    for table in ["dashboard_links", "dashboard_sessions"] {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE admin = $1"
        )))
        .bind(admin)
        .execute(&mut *conn)
        .in_time()
        .await?;
    }
    Ok(())
}
