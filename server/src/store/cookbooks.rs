//! Cookbook versions: immutable once pushed, identified by name and semver
//! version, stored as metadata plus a content manifest. The blobs the
//! manifest names are in the blob store; a version row is inserted (and so
//! becomes visible) in one transaction once the caller has stored them all.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use cm_model::manifest::Manifest;
use cm_model::metadata::ClusterRoles;
use serde_json::json;
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::plan_guard::{self, PlanGuard, Scope};
use super::pools::InTime;
use super::{Document, Result, Store, StoreError, audit, from_json, to_json, unix_now};

/// A cookbook version as pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCookbookVersion {
    pub name: String,
    /// Semver; stored in its canonical spelling.
    pub version: String,
    pub description: String,
    /// Cookbook name → version constraint.
    pub depends: BTreeMap<String, String>,
    /// Every file; sorted by path when stored.
    pub manifest: Manifest,
    /// The lowest cm-agent version that compiles it (semver), as
    /// `cm_model::features::required_agent` computes it at push.
    pub min_agent: String,
    /// `cluster:` of its metadata: the roles of the view it reads.
    pub cluster: ClusterRoles,
}

/// A stored cookbook version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookbookVersionRow {
    pub name: String,
    pub version: String,
    pub description: String,
    pub depends: BTreeMap<String, String>,
    pub manifest: Manifest,
    /// [`Manifest::digest`] of the manifest: equal content, equal digest.
    pub manifest_digest: String,
    /// Unix seconds.
    pub created_at: i64,
    pub pushed_by: String,
    /// The lowest cm-agent version that compiles it; empty for a version
    /// pushed before the server recorded it (read as before: see
    /// [`CookbookVersionRow::pushed_before_min_agent`]).
    pub min_agent: String,
    /// `cluster:` of its metadata (none for versions pushed before 0.3.0).
    pub cluster: ClusterRoles,
}

impl CookbookVersionRow {
    /// The version parsed (stored versions always parse).
    pub fn semver(&self) -> Option<semver::Version> {
        semver::Version::parse(&self.version).ok()
    }

    /// Pushed before the server recorded the agent a version needs, and
    /// before cm refused YAML values read two ways: agents read it as
    /// before (`cm_model::yaml::Reading::AsBefore`).
    pub fn pushed_before_min_agent(&self) -> bool {
        self.min_agent.is_empty()
    }
}

/// What [`Store::insert_cookbook_version`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The version is new and now visible.
    Created,
    /// The same content was already stored under this version: nothing
    /// changed.
    Identical,
}

/// A `SELECT` of every column, with an optional tail (`WHERE ...`).
macro_rules! select_versions {
    ($($tail:literal)?) => {
        concat!(
            "SELECT name, version, description, depends_json, manifest_json, manifest_digest, \
             created_at, pushed_by, min_agent, cluster_json FROM cookbook_versions"
            $(, " ", $tail)?
        )
    };
}

fn row_to_version(row: &AnyRow) -> Result<CookbookVersionRow> {
    let name: String = row.try_get("name")?;
    let version: String = row.try_get("version")?;
    let key = format!("{name} {version}");
    let depends_json: String = row.try_get("depends_json")?;
    let manifest_json: String = row.try_get("manifest_json")?;
    let cluster_json: String = row.try_get("cluster_json")?;
    Ok(CookbookVersionRow {
        cluster: match cluster_json.as_str() {
            "" => ClusterRoles::None,
            json => from_json(json, "cookbook version", &key, "cluster_json")?,
        },
        depends: from_json(&depends_json, "cookbook version", &key, "depends_json")?,
        manifest: from_json(&manifest_json, "cookbook version", &key, "manifest_json")?,
        description: row.try_get("description")?,
        manifest_digest: row.try_get("manifest_digest")?,
        created_at: row.try_get("created_at")?,
        pushed_by: row.try_get("pushed_by")?,
        min_agent: row.try_get("min_agent")?,
        name,
        version,
    })
}

/// Newest first by semver; rows whose version does not parse sort last.
fn by_name_then_newest(a: &CookbookVersionRow, b: &CookbookVersionRow) -> Ordering {
    a.name
        .cmp(&b.name)
        .then_with(|| match (a.semver(), b.semver()) {
            (Some(va), Some(vb)) => vb.cmp(&va),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => b.version.cmp(&a.version),
        })
}

/// Check and normalize a pushed version: canonical semver, manifest sorted
/// by path with no path twice.
fn normalize(new: &NewCookbookVersion) -> Result<(String, Manifest)> {
    if new.name.is_empty() {
        return Err(StoreError::Invalid("a cookbook needs a name".into()));
    }
    let version = semver::Version::parse(&new.version).map_err(|e| {
        StoreError::Invalid(format!(
            "cookbook {}: version {:?} is not semver (MAJOR.MINOR.PATCH): {e}",
            new.name, new.version
        ))
    })?;
    semver::Version::parse(&new.min_agent).map_err(|e| {
        StoreError::Invalid(format!(
            "cookbook {} {version}: the agent it needs, {:?}, is not semver: {e}",
            new.name, new.min_agent
        ))
    })?;
    let mut manifest = new.manifest.clone();
    manifest.entries.sort();
    if let Some(w) = manifest.entries.windows(2).find(|w| w[0].path == w[1].path) {
        return Err(StoreError::Invalid(format!(
            "cookbook {} {}: the manifest lists {} twice",
            new.name, version, w[0].path
        )));
    }
    Ok((version.to_string(), manifest))
}

/// Every stored version, on the caller's connection (so a transaction sees
/// its own view), in no particular order.
pub(crate) async fn list(conn: &mut AnyConnection) -> Result<Vec<CookbookVersionRow>> {
    let rows = sqlx::query(select_versions!())
        .fetch_all(conn)
        .in_time()
        .await?;
    rows.iter().map(row_to_version).collect()
}

/// The audit view of a version: its identity and what it contains, not every
/// file.
fn audit_view(name: &str, version: &str, digest: &str, description: &str) -> serde_json::Value {
    json!({"name": name, "version": version, "manifest_digest": digest, "description": description})
}

impl Store {
    /// Store a pushed cookbook version. Pushing the same content again is
    /// [`Inserted::Identical`] and changes nothing; different content (files,
    /// description or dependencies) under an existing version is
    /// [`StoreError::Conflict`]. The version becomes visible when this
    /// returns, all at once.
    pub async fn insert_cookbook_version(
        &self,
        new: &NewCookbookVersion,
        who: &str,
    ) -> Result<Inserted> {
        let (version, manifest) = normalize(new)?;
        let digest = manifest.digest();
        let depends_json = to_json(&new.depends);
        let now = unix_now();
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "INSERT INTO cookbook_versions (name, version, description, depends_json, \
             manifest_json, manifest_digest, created_at, pushed_by, min_agent, cluster_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (name, version) DO NOTHING",
        )
        .bind(&new.name)
        .bind(&version)
        .bind(&new.description)
        .bind(&depends_json)
        .bind(to_json(&manifest))
        .bind(&digest)
        .bind(now)
        .bind(who)
        .bind(&new.min_agent)
        .bind(match &new.cluster {
            ClusterRoles::None => String::new(),
            declared => to_json(declared),
        })
        .execute(&mut *tx)
        .in_time()
        .await?;
        if done.rows_affected() == 1 {
            audit::record(
                &mut tx,
                now,
                who,
                format!("cookbook.push {} {version}", new.name),
                None,
                Some(audit_view(&new.name, &version, &digest, &new.description)),
            )
            .await?;
            tx.commit().in_time().await?;
            return Ok(Inserted::Created);
        }
        let row = sqlx::query(select_versions!("WHERE name = $1 AND version = $2"))
            .bind(&new.name)
            .bind(&version)
            .fetch_one(&mut *tx)
            .in_time()
            .await?;
        tx.rollback().in_time().await?;
        let existing = row_to_version(&row)?;
        let differs = if existing.manifest_digest != digest {
            Some("files")
        } else if existing.description != new.description {
            Some("description")
        } else if existing.depends != new.depends {
            Some("dependencies")
        } else {
            None
        };
        match differs {
            None => Ok(Inserted::Identical),
            Some(what) => Err(StoreError::Conflict(format!(
                "cookbook {} {version} already exists with different {what} (pushed by {} at \
                 {}); a pushed version never changes: bump the version in metadata.yaml",
                new.name, existing.pushed_by, existing.created_at
            ))),
        }
    }

    /// All versions of one cookbook, or of every cookbook: sorted by name,
    /// then newest version first (semver order, not text order).
    pub async fn cookbook_versions(&self, name: Option<&str>) -> Result<Vec<CookbookVersionRow>> {
        let rows = match name {
            Some(name) => {
                sqlx::query(select_versions!("WHERE name = $1"))
                    .bind(name)
                    .fetch_all(&self.pool)
                    .in_time()
                    .await?
            }
            None => {
                sqlx::query(select_versions!())
                    .fetch_all(&self.pool)
                    .in_time()
                    .await?
            }
        };
        let mut versions = rows
            .iter()
            .map(row_to_version)
            .collect::<Result<Vec<_>>>()?;
        versions.sort_by(by_name_then_newest);
        Ok(versions)
    }

    /// One cookbook version. `version` may be spelled in any way semver
    /// accepts.
    pub async fn cookbook_version(&self, name: &str, version: &str) -> Result<CookbookVersionRow> {
        let canonical = semver::Version::parse(version)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| version.to_string());
        let row = sqlx::query(select_versions!("WHERE name = $1 AND version = $2"))
            .bind(name)
            .bind(&canonical)
            .fetch_optional(&self.pool)
            .in_time()
            .await?;
        match row {
            Some(row) => row_to_version(&row),
            None => Err(StoreError::NotFound(format!(
                "cookbook {name} {version} does not exist"
            ))),
        }
    }

    /// Delete a cookbook version. `pins` tells, for an environment document,
    /// whether it pins exactly this version (the store does not read
    /// environment YAML); it is called inside the delete's transaction on
    /// every environment, and any match refuses the delete with a
    /// [`StoreError::Conflict`] naming them. On PostgreSQL the environments
    /// are locked until the delete commits, so a concurrent `env set` cannot
    /// slip a pin in between.
    pub async fn delete_cookbook_version(
        &self,
        name: &str,
        version: &str,
        who: &str,
        pins: impl Fn(&Document) -> bool,
    ) -> Result<()> {
        self.delete_cookbook_version_checked(name, version, who, pins, None)
            .await
    }

    /// [`Store::delete_cookbook_version`], with `guard` run inside the
    /// delete's transaction after the pin check: a delete that would leave
    /// nodes without a plan (an unpinned node whose only fitting version
    /// this is) is [`StoreError::BreaksPlans`] unless forced.
    pub async fn delete_cookbook_version_checked(
        &self,
        name: &str,
        version: &str,
        who: &str,
        pins: impl Fn(&Document) -> bool,
        guard: Option<PlanGuard<'_>>,
    ) -> Result<()> {
        let existing = self.cookbook_version(name, version).await?;
        let now = unix_now();
        let mut tx = self.write_tx().await?;
        if guard.is_some() {
            plan_guard::lock_plans(&mut tx, self.engine).await?;
        }
        sqlx::query("UPDATE documents SET revision = revision WHERE kind = 'environment'")
            .execute(&mut *tx)
            .in_time()
            .await?;
        let environments = super::documents::list(&mut tx, super::DocKind::Environment).await?;
        let pinned_by: Vec<&str> = environments
            .iter()
            .filter(|env| pins(env))
            .map(|env| env.name.as_str())
            .collect();
        if !pinned_by.is_empty() {
            return Err(StoreError::Conflict(format!(
                "cookbook {name} {} is pinned by environment {}; change the pin first",
                existing.version,
                pinned_by.join(", ")
            )));
        }
        if let Some(guard) = guard {
            let what = format!("cookbook.delete {name} {}", existing.version);
            plan_guard::check(&mut tx, guard, Scope::Fleet, who, &what, now).await?;
        }
        let done = sqlx::query("DELETE FROM cookbook_versions WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(&existing.version)
            .execute(&mut *tx)
            .in_time()
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "cookbook {name} {version} does not exist"
            )));
        }
        audit::record(
            &mut tx,
            now,
            who,
            format!("cookbook.delete {name} {}", existing.version),
            Some(audit_view(
                name,
                &existing.version,
                &existing.manifest_digest,
                &existing.description,
            )),
            None,
        )
        .await?;
        tx.commit().in_time().await?;
        Ok(())
    }

    /// Every blob digest some stored manifest names: what blob garbage
    /// collection must keep.
    pub async fn referenced_blobs(&self) -> Result<HashSet<String>> {
        let rows = sqlx::query("SELECT name, version, manifest_json FROM cookbook_versions")
            .fetch_all(&self.pool)
            .in_time()
            .await?;
        let mut digests = HashSet::new();
        for row in &rows {
            let name: String = row.try_get("name")?;
            let version: String = row.try_get("version")?;
            let json: String = row.try_get("manifest_json")?;
            let manifest: Manifest = from_json(
                &json,
                "cookbook version",
                &format!("{name} {version}"),
                "manifest_json",
            )?;
            digests.extend(manifest.entries.into_iter().map(|e| e.sha256));
        }
        Ok(digests)
    }
}
