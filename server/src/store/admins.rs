//! Admins: each has their own certificate, so the audit log says who. A
//! removed admin's row stays (the audit log names it) with `removed` set and
//! its certificate serial revoked.

use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::pools::InTime;
use super::{Result, Store, StoreError, audit, certs, lock_row, unix_now};

/// An admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRow {
    pub name: String,
    /// The serial of the admin's current certificate.
    pub cert_serial: String,
    /// Unix seconds.
    pub created_at: i64,
    pub created_by: String,
    pub removed: bool,
}

macro_rules! select_admins {
    ($tail:literal) => {
        concat!(
            "SELECT name, cert_serial, created_at, created_by, removed FROM admins ",
            $tail
        )
    };
}

fn admin_from_row(row: &AnyRow) -> Result<AdminRow> {
    Ok(AdminRow {
        name: row.try_get("name")?,
        cert_serial: row.try_get("cert_serial")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        removed: row.try_get::<i64, _>("removed")? != 0,
    })
}

impl Store {
    /// Add an admin with the serial of the certificate issued for them.
    /// [`StoreError::Conflict`] when an admin of that name exists; a removed
    /// admin's name may be added again (with a new certificate).
    pub async fn add_admin(&self, name: &str, cert_serial: &str, who: &str) -> Result<AdminRow> {
        if name.is_empty() {
            return Err(StoreError::Invalid("an admin needs a name".into()));
        }
        let now = unix_now();
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "INSERT INTO admins (name, cert_serial, created_at, created_by, removed) \
             VALUES ($1, $2, $3, $4, 0) ON CONFLICT (name) DO UPDATE SET \
             cert_serial = excluded.cert_serial, created_at = excluded.created_at, \
             created_by = excluded.created_by, removed = 0 \
             WHERE admins.removed = 1",
        )
        .bind(name)
        .bind(cert_serial)
        .bind(now)
        .bind(who)
        .execute(&mut *tx)
        .in_time()
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("admin {name} already exists")));
        }
        audit::record(
            &mut tx,
            now,
            who,
            format!("admin.add {name}"),
            None,
            Some(json!({"name": name, "cert_serial": cert_serial})),
        )
        .await?;
        tx.commit().in_time().await?;
        Ok(AdminRow {
            name: name.to_string(),
            cert_serial: cert_serial.to_string(),
            created_at: now,
            created_by: who.to_string(),
            removed: false,
        })
    }

    /// The admins that have not been removed, by name.
    pub async fn admins(&self) -> Result<Vec<AdminRow>> {
        let rows = sqlx::query(select_admins!("WHERE removed = 0 ORDER BY name"))
            .fetch_all(&self.pool)
            .in_time()
            .await?;
        rows.iter().map(admin_from_row).collect()
    }

    /// One admin, removed or not.
    pub async fn admin(&self, name: &str) -> Result<AdminRow> {
        let row = sqlx::query(select_admins!("WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .in_time()
            .await?;
        match row {
            Some(row) => admin_from_row(&row),
            None => Err(StoreError::NotFound(format!("admin {name} does not exist"))),
        }
    }

    /// Remove an admin and revoke their certificate, in one transaction.
    /// The last admin cannot be removed: nobody could add another.
    pub async fn remove_admin(&self, name: &str, who: &str) -> Result<()> {
        let now = unix_now();
        let mut tx = self.write_tx().await?;
        // Lock every admin row: two admins removing each other at once must
        // not leave none.
        sqlx::query("UPDATE admins SET removed = removed WHERE removed = 0")
            .execute(&mut *tx)
            .in_time()
            .await?;
        let not_found = || StoreError::NotFound(format!("admin {name} does not exist"));
        if !lock_row(
            &mut tx,
            "UPDATE admins SET removed = removed WHERE name = $1",
            name,
        )
        .await?
        {
            return Err(not_found());
        }
        let row = sqlx::query(select_admins!("WHERE name = $1"))
            .bind(name)
            .fetch_one(&mut *tx)
            .in_time()
            .await?;
        let admin = admin_from_row(&row)?;
        if admin.removed {
            return Err(not_found());
        }
        let active: i64 = sqlx::query("SELECT COUNT(*) AS n FROM admins WHERE removed = 0")
            .fetch_one(&mut *tx)
            .in_time()
            .await?
            .try_get("n")?;
        if active <= 1 {
            return Err(StoreError::Conflict(format!(
                "admin {name} is the last admin; add another before removing it"
            )));
        }
        sqlx::query("UPDATE admins SET removed = 1 WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .in_time()
            .await?;
        certs::revoke(
            &mut tx,
            &admin.cert_serial,
            &format!("admin {name} removed"),
            now,
        )
        .await?;
        audit::record(
            &mut tx,
            now,
            who,
            format!("admin.remove {name}"),
            Some(json!({"name": name, "cert_serial": admin.cert_serial})),
            None,
        )
        .await?;
        tx.commit().in_time().await?;
        Ok(())
    }
}
