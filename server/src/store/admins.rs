//! Admins: each has their own certificate, so the audit log says who, and
//! a level, optionally limited to some environments (what each may do:
//! `crate::api::auth`). A removed admin's row stays (the audit log names
//! it) with `removed` set and its certificate serial revoked. The last
//! owner of every environment can be neither removed nor downgraded:
//! nobody could add another admin.

use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::pools::InTime;
use super::{Result, Store, StoreError, audit, certs, from_json, to_json, unix_now};

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
    pub level: Level,
    /// The environments the admin may change; empty: every one.
    pub environments: Vec<String>,
}

/// What an admin may do: each level can do what the one before can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Read: lists, runs, the audit log.
    Viewer,
    /// Also change nodes, tokens, roles, environments and push cookbooks.
    Operator,
    /// Also admins and secrets.
    Owner,
}

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "viewer" => Some(Level::Viewer),
            "operator" => Some(Level::Operator),
            "owner" => Some(Level::Owner),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Viewer => "viewer",
            Level::Operator => "operator",
            Level::Owner => "owner",
        }
    }
}

impl AdminRow {
    /// An owner of every environment: may add admins, and set secrets.
    pub fn full_owner(&self) -> bool {
        self.level == Level::Owner && self.environments.is_empty()
    }
}

macro_rules! select_admins {
    ($tail:literal) => {
        concat!(
            "SELECT name, cert_serial, created_at, created_by, removed, level, \
             environments_json FROM admins ",
            $tail
        )
    };
}

fn admin_from_row(row: &AnyRow) -> Result<AdminRow> {
    let name: String = row.try_get("name")?;
    let level: String = row.try_get("level")?;
    let environments: String = row.try_get("environments_json")?;
    Ok(AdminRow {
        level: Level::parse(&level)
            .ok_or_else(|| StoreError::corrupt("admin", &name, "level", format!("{level:?}")))?,
        environments: from_json(&environments, "admin", &name, "environments_json")?,
        name,
        cert_serial: row.try_get("cert_serial")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        removed: row.try_get::<i64, _>("removed")? != 0,
    })
}

/// Lock every active admin row and read them: two admins removing or
/// downgrading each other at once must not leave no owner.
async fn lock_active_admins(tx: &mut super::Tx) -> Result<Vec<AdminRow>> {
    sqlx::query("UPDATE admins SET removed = removed WHERE removed = 0")
        .execute(&mut **tx)
        .in_time()
        .await?;
    let rows = sqlx::query(select_admins!("WHERE removed = 0"))
        .fetch_all(&mut **tx)
        .in_time()
        .await?;
    rows.iter().map(admin_from_row).collect()
}

impl Store {
    /// Add an admin with the serial of the certificate issued for them.
    /// [`StoreError::Conflict`] when an admin of that name exists; a removed
    /// admin's name may be added again (with a new certificate).
    pub async fn add_admin(
        &self,
        name: &str,
        cert_serial: &str,
        level: Level,
        environments: &[String],
        who: &str,
    ) -> Result<AdminRow> {
        if name.is_empty() {
            return Err(StoreError::Invalid("an admin needs a name".into()));
        }
        let environments_json = to_json(environments);
        let now = unix_now();
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "INSERT INTO admins (name, cert_serial, created_at, created_by, removed, level, \
             environments_json) VALUES ($1, $2, $3, $4, 0, $5, $6) ON CONFLICT (name) DO UPDATE \
             SET cert_serial = excluded.cert_serial, created_at = excluded.created_at, \
             created_by = excluded.created_by, removed = 0, level = excluded.level, \
             environments_json = excluded.environments_json WHERE admins.removed = 1",
        )
        .bind(name)
        .bind(cert_serial)
        .bind(now)
        .bind(who)
        .bind(level.as_str())
        .bind(&environments_json)
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
            Some(
                json!({"name": name, "cert_serial": cert_serial, "level": level.as_str(),
                "environments": environments}),
            ),
        )
        .await?;
        tx.commit().in_time().await?;
        Ok(AdminRow {
            name: name.to_string(),
            cert_serial: cert_serial.to_string(),
            created_at: now,
            created_by: who.to_string(),
            removed: false,
            level,
            environments: environments.to_vec(),
        })
    }

    /// Change an admin's level and environments, audited. Refused when it
    /// would leave no owner of every environment.
    pub async fn set_admin_level(
        &self,
        name: &str,
        level: Level,
        environments: &[String],
        who: &str,
    ) -> Result<AdminRow> {
        let now = unix_now();
        let mut tx = self.write_tx().await?;
        let admins = lock_active_admins(&mut tx).await?;
        let Some(before) = admins.iter().find(|a| a.name == name) else {
            return Err(StoreError::NotFound(format!("admin {name} does not exist")));
        };
        let after = AdminRow {
            level,
            environments: environments.to_vec(),
            ..before.clone()
        };
        if !admins.iter().any(|a| {
            if a.name == name {
                after.full_owner()
            } else {
                a.full_owner()
            }
        }) {
            return Err(StoreError::Conflict(format!(
                "admin {name} is the last owner of every environment; make another one first"
            )));
        }
        sqlx::query("UPDATE admins SET level = $1, environments_json = $2 WHERE name = $3")
            .bind(level.as_str())
            .bind(to_json(environments))
            .bind(name)
            .execute(&mut *tx)
            .in_time()
            .await?;
        super::dashboard::end_sessions_of(&mut tx, name).await?;
        audit::record(
            &mut tx,
            now,
            who,
            format!("admin.set {name}"),
            Some(json!({"level": before.level.as_str(), "environments": before.environments})),
            Some(json!({"level": level.as_str(), "environments": environments})),
        )
        .await?;
        tx.commit().in_time().await?;
        Ok(after)
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
        let admins = lock_active_admins(&mut tx).await?;
        let Some(admin) = admins.iter().find(|a| a.name == name) else {
            return Err(StoreError::NotFound(format!("admin {name} does not exist")));
        };
        if admins.len() == 1 {
            return Err(StoreError::Conflict(format!(
                "admin {name} is the last admin; add another before removing it"
            )));
        }
        if !admins.iter().any(|a| a.name != name && a.full_owner()) {
            return Err(StoreError::Conflict(format!(
                "admin {name} is the last owner of every environment; make another one first"
            )));
        }
        sqlx::query("UPDATE admins SET removed = 1 WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .in_time()
            .await?;
        super::dashboard::end_sessions_of(&mut tx, name).await?;
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
