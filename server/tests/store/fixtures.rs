//! What the store tests build their cases from: cookbooks, enrollments,
//! tokens, runs, and counts of audit events.

use std::collections::BTreeMap;

use cm_model::manifest::{Manifest, ManifestEntry};
use cm_server::store::{NewCookbookVersion, NewToken, NodeEnrollment, RunRow, Store, unix_now};
use sha2::{Digest, Sha256};

pub const ALICE: &str = "alice";

pub fn sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

pub fn entry(path: &str, content: &str) -> ManifestEntry {
    ManifestEntry {
        path: path.into(),
        sha256: sha256(content),
        size: content.len() as u64,
        mode: 0o644,
    }
}

pub fn cookbook(name: &str, version: &str, files: &[(&str, &str)]) -> NewCookbookVersion {
    NewCookbookVersion {
        name: name.into(),
        version: version.into(),
        description: format!("{name} cookbook"),
        depends: BTreeMap::new(),
        // Unsorted on purpose: the store sorts.
        manifest: Manifest {
            entries: files.iter().rev().map(|(p, c)| entry(p, c)).collect(),
        },
        min_agent: "0.1.0".into(),
        cluster: Default::default(),
    }
}

pub fn enrollment(name: &str, serial: &str, now: i64) -> NodeEnrollment {
    NodeEnrollment {
        name: name.into(),
        facts_json: format!(r#"{{"hostname": "{name}", "ipaddress": "10.0.0.1"}}"#),
        cert_serial: serial.into(),
        cert_expires_at: now + 90 * 86400,
        now,
    }
}

/// Make the roles and the environment exist, as a stored first revision
/// by `fixture`, when they do not yet. Written directly, so that tests
/// counting audit rows or revisions see only their own.
pub async fn documents_exist(store: &Store, roles: &[&str], environment: &str) {
    stored_by(store, roles, environment, "fixture").await;
}

async fn stored_by(store: &Store, roles: &[&str], environment: &str, who: &str) {
    let docs = roles
        .iter()
        .map(|r| ("role", *r))
        .chain([("environment", environment)]);
    for (kind, name) in docs {
        for sql in [
            "INSERT INTO documents (kind, name, yaml, revision, updated_at, updated_by) \
             VALUES ($1, $2, $3, 1, 0, $4) ON CONFLICT DO NOTHING",
            "INSERT INTO document_revisions (kind, name, yaml, revision, updated_at, updated_by) \
             VALUES ($1, $2, $3, 1, 0, $4) ON CONFLICT DO NOTHING",
        ] {
            sqlx::query(sql)
                .bind(kind)
                .bind(name)
                .bind(format!("name: {name}\n"))
                .bind(who)
                .execute(store.pool())
                .await
                .unwrap();
        }
    }
}

/// Create a token; returns the hash of its secret, which enrollment takes.
/// A token may name only roles and an environment that exist: those
/// missing are stored for the moment of its creation and removed after,
/// so the test's world is the one it built.
pub async fn token(store: &Store, id: &str, roles: &[&str], uses: u32, expires_at: i64) -> String {
    const FOR_THE_TOKEN: &str = "fixture:token";
    stored_by(store, roles, "production", FOR_THE_TOKEN).await;
    let secret_hash = sha256(&format!("secret-of-{id}"));
    store
        .create_token(
            &NewToken {
                id: id.into(),
                secret_hash: secret_hash.clone(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                environment: "production".into(),
                expires_at,
                uses,
            },
            ALICE,
        )
        .await
        .unwrap();
    for sql in [
        "DELETE FROM documents WHERE updated_by = $1",
        "DELETE FROM document_revisions WHERE updated_by = $1",
    ] {
        sqlx::query(sql)
            .bind(FOR_THE_TOKEN)
            .execute(store.pool())
            .await
            .unwrap();
    }
    secret_hash
}

/// Enroll a node with a fresh token of its own.
pub async fn enrolled(store: &Store, name: &str, roles: &[&str]) {
    let now = unix_now();
    let hash = token(store, &format!("t-{name}"), roles, 1, now + 3600).await;
    store
        .enroll_with_token(&hash, &enrollment(name, &format!("serial-{name}"), now))
        .await
        .unwrap();
}

pub async fn audit_count(store: &Store) -> usize {
    store.audit(10_000, None).await.unwrap().len()
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub fn run(node: &str, at: i64, status: &str) -> RunRow {
    RunRow {
        id: 0,
        node: node.into(),
        at,
        status: status.into(),
        resources_total: 12,
        resources_changed: 3,
        resources_failed: if status == "failed" { 1 } else { 0 },
        duration_ms: 1500,
        cause: "new_plan".into(),
        plan_hash: "h1".into(),
        plan_age_seconds: 4,
        report_json: r#"{"resources": []}"#.into(),
        ..RunRow::default()
    }
}
