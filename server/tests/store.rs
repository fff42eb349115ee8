//! The store on both engines: every test below runs once on SQLite in a
//! temp dir and once on PostgreSQL in a database of its own, created in the
//! cluster `CM_TEST_POSTGRES_URL` names (`scripts/with-postgres.sh cargo
//! test -p cm-server --test store` starts a throwaway one). Without that
//! variable the PostgreSQL variants say so and pass, except under CI, where
//! they fail (`support::require`).

mod support;

use std::collections::{BTreeMap, HashSet};

use cm_model::manifest::{Manifest, ManifestEntry};
use cm_server::store::{
    BrokenGroup, DocKind, Inserted, NewCookbookVersion, NewToken, NodeEnrollment, NodeGroup,
    NodeState, OptionalExt, PlanGuard, PlanRows, RunRow, Store, StoreError, unix_now,
};
use sha2::{Digest, Sha256};
use sqlx::Row;

// ---------------------------------------------------------------- harness

/// A store on a fresh database, and what it takes to reopen and drop it.
struct Db {
    store: Store,
    url: String,
    /// SQLite: the directory holding the file.
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the database made for this test.
    pg: Option<support::PgDatabase>,
}

impl Db {
    async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/state.db", dir.path().display());
        Db {
            store: Store::open(&url).await.unwrap(),
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A database of its own in the cluster `CM_TEST_POSTGRES_URL` names.
    async fn postgres(test: &str) -> Option<Db> {
        let pg = support::PgDatabase::create(test).await?;
        Some(Db {
            store: Store::open(&pg.url).await.unwrap(),
            url: pg.url.clone(),
            _dir: None,
            pg: Some(pg),
        })
    }

    async fn reopen(&mut self) {
        self.store.close().await;
        self.store = Store::open(&self.url).await.unwrap();
    }

    async fn drop_database(self) {
        self.store.close().await;
        if let Some(pg) = self.pg {
            pg.drop().await;
        }
    }
}

/// Each test function, once per engine.
macro_rules! on_both_engines {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let mut db = super::Db::sqlite().await;
                    super::$test(&mut db).await;
                    db.drop_database().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(mut db) = super::Db::postgres(stringify!($test)).await else {
                        return;
                    };
                    super::$test(&mut db).await;
                    db.drop_database().await;
                }
            )*
        }
    };
}

on_both_engines!(
    cookbook_versions_list_newest_first_and_delete_unless_pinned,
    identical_repush_is_a_noop_and_different_content_is_refused,
    documents_get_revisions_and_history,
    tokens_refuse_use_up_expiry_and_revocation_distinctly,
    concurrent_enrollments_with_a_one_use_token_have_one_winner,
    concurrent_enrollments_of_one_name_have_one_winner,
    a_live_name_is_refused_and_a_retired_node_enrolls_again,
    an_expired_holder_is_retired_by_the_next_enrollment_of_its_name,
    roles_and_attributes_change_with_audit_and_noops_without,
    facts_certificates_plans_and_checkins,
    revocations_are_kept_once,
    secrets_keep_ciphertext_out_of_the_audit,
    admins_are_added_removed_and_revoked,
    runs_are_listed_newest_first_and_pruned,
    audit_records_every_admin_change,
    a_reopened_store_keeps_everything,
    a_plan_guard_reads_the_live_groups_and_refuses_or_audits,
    checked_changes_see_each_other_committed,
    plan_errors_are_recorded_and_cleared,
    runs_of_a_retired_identity_are_kept_marked_and_not_the_new_ones,
    versions_record_the_agent_they_need_and_those_pushed_before_none,
    nodes_keep_the_agent_version_they_report,
);

// ---------------------------------------------------------------- helpers

const ALICE: &str = "alice";

fn sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn entry(path: &str, content: &str) -> ManifestEntry {
    ManifestEntry {
        path: path.into(),
        sha256: sha256(content),
        size: content.len() as u64,
        mode: 0o644,
    }
}

fn cookbook(name: &str, version: &str, files: &[(&str, &str)]) -> NewCookbookVersion {
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
    }
}

fn enrollment(name: &str, serial: &str, now: i64) -> NodeEnrollment {
    NodeEnrollment {
        name: name.into(),
        facts_json: format!(r#"{{"hostname": "{name}", "ipaddress": "10.0.0.1"}}"#),
        cert_serial: serial.into(),
        cert_expires_at: now + 90 * 86400,
        now,
    }
}

/// Create a token; returns the hash of its secret, which enrollment takes.
async fn token(store: &Store, id: &str, roles: &[&str], uses: u32, expires_at: i64) -> String {
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
    secret_hash
}

/// Enroll a node with a fresh token of its own.
async fn enrolled(store: &Store, name: &str, roles: &[&str]) {
    let now = unix_now();
    let hash = token(store, &format!("t-{name}"), roles, 1, now + 3600).await;
    store
        .enroll_with_token(&hash, &enrollment(name, &format!("serial-{name}"), now))
        .await
        .unwrap();
}

async fn audit_count(store: &Store) -> usize {
    store.audit(10_000, None).await.unwrap().len()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------- cookbooks

async fn cookbook_versions_list_newest_first_and_delete_unless_pinned(db: &mut Db) {
    let s = &db.store;
    for v in ["1.9.0", "1.10.0", "1.2.0"] {
        let cb = cookbook(
            "memcached",
            v,
            &[("recipes/default.yaml", v), ("metadata.yaml", "m")],
        );
        assert_eq!(
            s.insert_cookbook_version(&cb, ALICE).await.unwrap(),
            Inserted::Created
        );
    }
    let mut apache = cookbook("apache_php", "0.1.0", &[("recipes/default.yaml", "a")]);
    apache.depends.insert("memcached".into(), ">= 1.2".into());
    s.insert_cookbook_version(&apache, ALICE).await.unwrap();

    let all = s.cookbook_versions(None).await.unwrap();
    let listed: Vec<(&str, &str)> = all
        .iter()
        .map(|c| (c.name.as_str(), c.version.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("apache_php", "0.1.0"),
            ("memcached", "1.10.0"),
            ("memcached", "1.9.0"),
            ("memcached", "1.2.0")
        ]
    );
    assert_eq!(
        s.cookbook_versions(Some("memcached")).await.unwrap().len(),
        3
    );
    assert!(s.cookbook_versions(Some("nope")).await.unwrap().is_empty());

    let shown = s.cookbook_version("apache_php", "0.1.0").await.unwrap();
    assert_eq!(shown.depends["memcached"], ">= 1.2");
    assert_eq!(shown.pushed_by, ALICE);
    let stored = s.cookbook_version("memcached", "1.2.0").await.unwrap();
    let paths: Vec<&str> = stored
        .manifest
        .entries
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(
        paths,
        ["metadata.yaml", "recipes/default.yaml"],
        "manifest stored sorted"
    );
    assert!(matches!(
        s.cookbook_version("memcached", "9.9.9").await,
        Err(StoreError::NotFound(_))
    ));

    let blobs = s.referenced_blobs().await.unwrap();
    let expected: HashSet<String> = ["1.9.0", "1.10.0", "1.2.0", "m", "a"]
        .iter()
        .map(|c| sha256(c))
        .collect();
    assert_eq!(blobs, expected);

    s.put_document(
        DocKind::Environment,
        "production",
        "cookbooks:\n  memcached: = 1.9.0\n",
        ALICE,
    )
    .await
    .unwrap();
    s.put_document(DocKind::Environment, "staging", "cookbooks: {}\n", ALICE)
        .await
        .unwrap();
    // What the API layer passes: does this environment pin exactly that version?
    let pins = |version: &'static str| {
        move |env: &cm_server::store::Document| {
            env.yaml.contains(&format!("memcached: = {version}"))
        }
    };
    let err = s
        .delete_cookbook_version("memcached", "1.9.0", ALICE, pins("1.9.0"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("production") && !m.contains("staging")),
        "{err}"
    );
    assert!(s.cookbook_version("memcached", "1.9.0").await.is_ok());

    s.delete_cookbook_version("memcached", "1.10.0", ALICE, pins("1.10.0"))
        .await
        .unwrap();
    assert!(
        s.cookbook_version("memcached", "1.10.0")
            .await
            .optional()
            .unwrap()
            .is_none()
    );
    assert!(
        !s.referenced_blobs()
            .await
            .unwrap()
            .contains(&sha256("1.10.0"))
    );
    let err = s
        .delete_cookbook_version("memcached", "1.10.0", ALICE, |_| false)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    let last = &s.audit(1, None).await.unwrap()[0];
    assert_eq!(last.what, "cookbook.delete memcached 1.10.0");
    assert!(last.after_json.is_none());
}

async fn identical_repush_is_a_noop_and_different_content_is_refused(db: &mut Db) {
    let s = &db.store;
    let cb = cookbook("memcached", "1.0.0", &[("recipes/default.yaml", "v1")]);
    assert_eq!(
        s.insert_cookbook_version(&cb, ALICE).await.unwrap(),
        Inserted::Created
    );
    let audits = audit_count(s).await;
    assert_eq!(
        s.insert_cookbook_version(&cb, "bob").await.unwrap(),
        Inserted::Identical
    );
    assert_eq!(
        audit_count(s).await,
        audits,
        "an identical re-push writes no audit row"
    );
    assert_eq!(
        s.cookbook_version("memcached", "1.0.0")
            .await
            .unwrap()
            .pushed_by,
        ALICE
    );

    let changed = cookbook("memcached", "1.0.0", &[("recipes/default.yaml", "v2")]);
    let err = s
        .insert_cookbook_version(&changed, ALICE)
        .await
        .unwrap_err();
    match &err {
        StoreError::Conflict(m) => {
            assert!(
                m.contains("memcached 1.0.0 already exists with different files"),
                "{m}"
            );
            assert!(m.contains("bump the version"), "{m}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let mut redescribed = cb.clone();
    redescribed.description = "other".into();
    let err = s
        .insert_cookbook_version(&redescribed, ALICE)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("different description")),
        "{err}"
    );
    assert_eq!(audit_count(s).await, audits);

    let bad = cookbook("memcached", "1.0", &[]);
    assert!(matches!(
        s.insert_cookbook_version(&bad, ALICE).await,
        Err(StoreError::Invalid(_))
    ));
    let dup = NewCookbookVersion {
        manifest: Manifest {
            entries: vec![entry("a", "1"), entry("a", "2")],
        },
        ..cookbook("x", "1.0.0", &[])
    };
    assert!(matches!(
        s.insert_cookbook_version(&dup, ALICE).await,
        Err(StoreError::Invalid(_))
    ));
}

// ---------------------------------------------------------------- documents

async fn documents_get_revisions_and_history(db: &mut Db) {
    let s = &db.store;
    let first = s
        .put_document(DocKind::Role, "web", "run_list: [apache_php]\n", ALICE)
        .await
        .unwrap();
    assert!(first.changed);
    assert_eq!(first.value.revision, 1);
    let audits = audit_count(s).await;

    let same = s
        .put_document(DocKind::Role, "web", "run_list: [apache_php]\n", "bob")
        .await
        .unwrap();
    assert!(!same.changed);
    assert_eq!(same.value.revision, 1);
    assert_eq!(same.value.updated_by, ALICE);
    assert_eq!(
        audit_count(s).await,
        audits,
        "identical YAML writes no audit row"
    );

    let second = s
        .put_document(
            DocKind::Role,
            "web",
            "run_list: [apache_php, memcached]\n",
            "bob",
        )
        .await
        .unwrap();
    assert!(second.changed);
    assert_eq!(second.value.revision, 2);
    let event = &s.audit(1, None).await.unwrap()[0];
    assert_eq!(event.what, "role.set web");
    assert_eq!(event.who, "bob");
    let before: serde_json::Value =
        serde_json::from_str(event.before_json.as_deref().unwrap()).unwrap();
    assert_eq!(before["revision"], 1);
    assert_eq!(before["yaml"], "run_list: [apache_php]\n");

    // Same name, other kind: a separate document.
    s.put_document(DocKind::Environment, "web", "pins: {}\n", ALICE)
        .await
        .unwrap();
    assert_eq!(
        s.document(DocKind::Environment, "web")
            .await
            .unwrap()
            .revision,
        1
    );

    let current = s.document(DocKind::Role, "web").await.unwrap();
    assert_eq!(current.yaml, "run_list: [apache_php, memcached]\n");
    assert_eq!(current.updated_by, "bob");
    let history = s.history(DocKind::Role, "web").await.unwrap();
    assert_eq!(
        history.iter().map(|d| d.revision).collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(history[1].yaml, "run_list: [apache_php]\n");

    s.put_document(DocKind::Role, "cache", "run_list: [memcached]\n", ALICE)
        .await
        .unwrap();
    let names: Vec<String> = s
        .documents(DocKind::Role)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["cache", "web"]);
    assert!(matches!(
        s.document(DocKind::Role, "db").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.history(DocKind::Role, "db").await,
        Err(StoreError::NotFound(_))
    ));
}

// ---------------------------------------------------------------- tokens and enrollment

async fn tokens_refuse_use_up_expiry_and_revocation_distinctly(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    let two = token(s, "two", &["web"], 2, now + 3600).await;
    let listed = s.tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].uses_left, listed[0].revoked), (2, false));
    assert_eq!(listed[0].roles, ["web"]);

    let dup = NewToken {
        id: "two".into(),
        secret_hash: sha256("other"),
        roles: vec![],
        environment: "production".into(),
        expires_at: now + 10,
        uses: 1,
    };
    assert!(matches!(
        s.create_token(&dup, ALICE).await,
        Err(StoreError::Conflict(_))
    ));

    let a = s
        .enroll_with_token(&two, &enrollment("a", "sa", now))
        .await
        .unwrap();
    assert_eq!(a.token_id.as_deref(), Some("two"));
    assert_eq!(a.node.roles, ["web"]);
    assert_eq!(a.node.environment, "production");
    assert_eq!(a.node.state, NodeState::Active);
    assert!(!a.reenrolled);
    s.enroll_with_token(&two, &enrollment("b", "sb", now))
        .await
        .unwrap();
    let err = s
        .enroll_with_token(&two, &enrollment("c", "sc", now))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Denied(m) if m.to_string() == "enrollment token two is used up"),
        "{err}"
    );
    assert_eq!(s.token("two").await.unwrap().uses_left, 0);

    let short = token(s, "short", &["web"], 5, now + 60).await;
    let err = s
        .enroll_with_token(&short, &enrollment("d", "sd", now + 61))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Denied(m) if m.to_string().contains("token short expired")
            && m.to_string().contains(&cm_model::time::utc(now + 60))
            && m.to_string().ends_with("UTC (just now)")),
        "a date people read, not epoch seconds: {err}"
    );
    s.enroll_with_token(&short, &enrollment("d", "sd", now + 59))
        .await
        .unwrap();

    let revoked = token(s, "gone", &["web"], 5, now + 3600).await;
    let r = s.revoke_token("gone", ALICE).await.unwrap();
    assert!(r.changed && r.value.revoked);
    let audits = audit_count(s).await;
    assert!(!s.revoke_token("gone", ALICE).await.unwrap().changed);
    assert_eq!(audit_count(s).await, audits);
    let err = s
        .enroll_with_token(&revoked, &enrollment("e", "se", now))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Denied(m) if m.to_string() == "enrollment token gone was revoked"),
        "{err}"
    );
    assert!(matches!(
        s.revoke_token("nope", ALICE).await,
        Err(StoreError::NotFound(_))
    ));

    let err = s
        .enroll_with_token(&sha256("guess"), &enrollment("f", "sf", now))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Denied(m) if m.to_string() == "unknown enrollment token"),
        "{err}"
    );

    let err = s
        .enroll_with_token(&short, &enrollment("../etc", "sx", now))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    let mut bad_facts = enrollment("g", "sg", now);
    bad_facts.facts_json = "[]".into();
    assert!(matches!(
        s.enroll_with_token(&short, &bad_facts).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        s.token("short").await.unwrap().uses_left,
        4,
        "refused requests consume nothing"
    );

    let names: Vec<String> = s
        .nodes(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["a", "b", "d"]);
    let enroll_event = s.audit(100, Some("token:two")).await.unwrap();
    assert_eq!(enroll_event.len(), 2);
    assert_eq!(enroll_event[0].what, "node.enroll b");
}

async fn concurrent_enrollments_with_a_one_use_token_have_one_winner(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    let hash = token(s, "once", &["web"], 1, now + 3600).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (s, hash) = (s.clone(), hash.clone());
            tokio::spawn(async move {
                s.enroll_with_token(&hash, &enrollment(&format!("n{i}"), &format!("s{i}"), now))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Denied(m)) => {
                assert_eq!(m.to_string(), "enrollment token once is used up")
            }
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(s.nodes(None, None).await.unwrap().len(), 1);
    assert_eq!(s.token("once").await.unwrap().uses_left, 0);
}

async fn concurrent_enrollments_of_one_name_have_one_winner(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    let hash = token(s, "many", &["web"], 10, now + 3600).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (s, hash) = (s.clone(), hash.clone());
            tokio::spawn(async move {
                s.enroll_with_token(&hash, &enrollment("same", &format!("s{i}"), now))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict(m)) => assert!(m.contains("held by an active node"), "{m}"),
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        s.token("many").await.unwrap().uses_left,
        9,
        "losers gave their use back"
    );
}

async fn an_expired_holder_is_retired_by_the_next_enrollment_of_its_name(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    let hash = token(s, "asg", &["cache"], 10, now + 3600).await;
    let mut first = enrollment("i-1", "serial-1", now);
    first.cert_expires_at = now + 100;
    s.enroll_with_token(&hash, &first).await.unwrap();
    s.mark_unreachable(now + 1).await.unwrap();

    // At the last second of its certificate the node still holds its name.
    let err = s
        .enroll_with_token(&hash, &enrollment("i-1", "serial-2", now + 100))
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(_)), "{err}");
    // A token that is refused retires nothing, even once the holder expired.
    let stale = token(s, "stale", &["cache"], 10, now + 50).await;
    let err = s
        .enroll_with_token(&stale, &enrollment("i-1", "serial-2", now + 101))
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::Denied(_)), "{err}");
    assert_eq!(s.node("i-1").await.unwrap().state, NodeState::Unreachable);
    assert!(!s.is_revoked("serial-1").await.unwrap());
    assert_eq!(s.token("asg").await.unwrap().uses_left, 9);

    // Expired: retired and enrolled again in one go.
    let again = s
        .enroll_with_token(&hash, &enrollment("i-1", "serial-2", now + 101))
        .await
        .unwrap();
    assert_eq!(again.retired_expired.as_deref(), Some("serial-1"));
    assert!(again.reenrolled);
    assert_eq!(again.node.state, NodeState::Active);
    assert_eq!(again.node.cert_serial, "serial-2");
    assert_eq!(s.token("asg").await.unwrap().uses_left, 8);
    let revocation = s
        .revoked_serials()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.serial == "serial-1")
        .expect("the expired serial is revoked");
    assert_eq!(revocation.reason, "node i-1 retired: certificate expired");
    assert!(!s.is_revoked("serial-2").await.unwrap());
    let events = s.audit(2, None).await.unwrap();
    assert_eq!(events[0].what, "node.enroll i-1");
    assert_eq!(events[1].what, "node.retire i-1");
    assert_eq!(events[1].who, "token:asg");
    assert!(
        events[1]
            .after_json
            .as_deref()
            .unwrap()
            .contains("certificate expired"),
        "{:?}",
        events[1].after_json
    );

    // The new certificate is live: the name is held again.
    let err = s
        .enroll_with_token(&hash, &enrollment("i-1", "serial-3", now + 102))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("i-1 is held by an active node")),
        "{err}"
    );
    assert!(!s.is_revoked("serial-2").await.unwrap());
}

async fn a_live_name_is_refused_and_a_retired_node_enrolls_again(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    let hash = token(s, "asg", &["cache"], 10, now + 3600).await;
    s.enroll_with_token(&hash, &enrollment("i-1", "serial-1", now))
        .await
        .unwrap();
    s.set_node_attribute("i-1", "memcached.memory_mb", "512", ALICE)
        .await
        .unwrap();

    let err = s
        .enroll_with_token(&hash, &enrollment("i-1", "serial-2", now))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("i-1 is held by an active node")),
        "{err}"
    );
    assert_eq!(s.mark_unreachable(now + 1).await.unwrap(), ["i-1"]);
    let err = s
        .enroll_with_token(&hash, &enrollment("i-1", "serial-2", now))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("unreachable")),
        "{err}"
    );
    assert_eq!(s.token("asg").await.unwrap().uses_left, 9);
    assert_eq!(s.node("i-1").await.unwrap().cert_serial, "serial-1");

    let retired = s.retire_node("i-1", ALICE).await.unwrap();
    assert!(retired.changed);
    assert_eq!(retired.value.state, NodeState::Retired);
    assert!(s.is_revoked("serial-1").await.unwrap());
    let audits = audit_count(s).await;
    assert!(!s.retire_node("i-1", ALICE).await.unwrap().changed);
    assert_eq!(audit_count(s).await, audits);

    let again = s
        .enroll_with_token(&hash, &enrollment("i-1", "serial-2", now + 5))
        .await
        .unwrap();
    assert!(again.reenrolled);
    let node = &again.node;
    assert_eq!(node.state, NodeState::Active);
    assert_eq!(
        (node.cert_serial.as_str(), node.enrolled_at, node.last_seen),
        ("serial-2", now + 5, now + 5)
    );
    assert_eq!(
        node.attributes["memcached"]["memory_mb"], 512,
        "admin attributes survive re-enrollment"
    );
    assert!(!s.is_revoked("serial-2").await.unwrap());
    assert_eq!(s.token("asg").await.unwrap().uses_left, 8);
    let event = &s.audit(1, None).await.unwrap()[0];
    assert_eq!(event.what, "node.enroll i-1");
    assert!(event.before_json.as_deref().unwrap().contains("retired"));

    // Without a token, for the server's own agent.
    let direct = s
        .enroll_node(
            &enrollment("local", "serial-l", now),
            "staging",
            &strings(&["web"]),
            "cm-server",
        )
        .await
        .unwrap();
    assert_eq!(
        (direct.node.environment.as_str(), direct.token_id),
        ("staging", None)
    );
    let err = s
        .enroll_node(
            &enrollment("local", "serial-m", now),
            "staging",
            &[],
            "cm-server",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
}

// ---------------------------------------------------------------- nodes

async fn roles_and_attributes_change_with_audit_and_noops_without(db: &mut Db) {
    let s = &db.store;
    enrolled(s, "web-1", &["web"]).await;
    enrolled(s, "web-2", &["web"]).await;
    let audits = audit_count(s).await;

    let n = s.assign_role("web-1", "memcached", ALICE).await.unwrap();
    assert!(n.changed);
    assert_eq!(
        n.value.roles,
        ["web", "memcached"],
        "roles keep their order"
    );
    assert!(
        !s.assign_role("web-1", "memcached", ALICE)
            .await
            .unwrap()
            .changed
    );
    assert!(
        !s.unassign_role("web-1", "nagios", ALICE)
            .await
            .unwrap()
            .changed
    );
    assert_eq!(audit_count(s).await, audits + 1);
    let event = &s.audit(1, None).await.unwrap()[0];
    assert_eq!(event.what, "node.assign web-1 memcached");
    assert_eq!(event.before_json.as_deref(), Some(r#"{"roles":["web"]}"#));
    assert_eq!(
        event.after_json.as_deref(),
        Some(r#"{"roles":["web","memcached"]}"#)
    );

    let names = |nodes: Vec<cm_server::store::NodeRow>| {
        nodes.into_iter().map(|n| n.name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(s.nodes(Some("memcached"), None).await.unwrap()),
        ["web-1"]
    );
    assert_eq!(
        names(s.nodes(Some("web"), Some("production")).await.unwrap()),
        ["web-1", "web-2"]
    );
    assert!(
        s.nodes(Some("web"), Some("staging"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.unassign_role("web-1", "web", ALICE)
            .await
            .unwrap()
            .changed
    );
    assert_eq!(s.node("web-1").await.unwrap().roles, ["memcached"]);

    let n = s
        .set_node_attribute("web-1", "apache.listen.port", "8080", ALICE)
        .await
        .unwrap();
    assert!(n.changed);
    s.set_node_attribute("web-1", "apache.user", r#""www-data""#, ALICE)
        .await
        .unwrap();
    let audits = audit_count(s).await;
    assert!(
        !s.set_node_attribute("web-1", "apache.listen.port", "8080", ALICE)
            .await
            .unwrap()
            .changed
    );
    assert_eq!(audit_count(s).await, audits);
    let event = &s.audit(1, None).await.unwrap()[0];
    assert_eq!(event.what, "node.set_attribute web-1 apache.user");
    assert_eq!(
        (event.before_json.as_deref(), event.after_json.as_deref()),
        (None, Some(r#""www-data""#))
    );

    let n = s
        .unset_node_attribute("web-1", "apache.listen.port", ALICE)
        .await
        .unwrap();
    assert!(n.changed);
    assert_eq!(
        serde_json::Value::Object(n.value.attributes),
        serde_json::json!({"apache": {"user": "www-data"}})
    );
    s.unset_node_attribute("web-1", "apache.user", ALICE)
        .await
        .unwrap();
    assert!(
        s.node("web-1").await.unwrap().attributes.is_empty(),
        "empty parent maps are removed"
    );
    assert!(
        !s.unset_node_attribute("web-1", "apache.user", ALICE)
            .await
            .unwrap()
            .changed
    );

    let err = s
        .set_node_attribute("web-1", "a..b", "1", ALICE)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let err = s
        .set_node_attribute("web-1", "a", "{not json", ALICE)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert!(matches!(
        s.assign_role("nope", "web", ALICE).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(s.node("nope").await, Err(StoreError::NotFound(_))));

    s.retire_node("web-2", ALICE).await.unwrap();
    let err = s
        .assign_role("web-2", "memcached", ALICE)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("retired")),
        "{err}"
    );
    assert_eq!(
        names(s.nodes(Some("web"), None).await.unwrap()),
        ["web-2"],
        "retired nodes are listed"
    );
}

async fn facts_certificates_plans_and_checkins(db: &mut Db) {
    let s = &db.store;
    enrolled(s, "n1", &["web"]).await;
    enrolled(s, "n2", &["web"]).await;

    s.update_facts("n1", r#"{"hostname": "n1", "memory_mb": 2048}"#)
        .await
        .unwrap();
    assert_eq!(s.node("n1").await.unwrap().facts["memory_mb"], 2048);
    assert!(matches!(
        s.update_facts("n1", "3").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.update_facts("zz", "{}").await,
        Err(StoreError::NotFound(_))
    ));

    let renewed = s
        .set_node_cert("n1", "serial-n1-b", 4_000_000_000)
        .await
        .unwrap();
    assert_eq!(
        (renewed.cert_serial.as_str(), renewed.cert_expires_at),
        ("serial-n1-b", 4_000_000_000)
    );
    assert!(
        s.is_revoked("serial-n1").await.unwrap(),
        "the old serial is revoked on renewal"
    );
    assert!(!s.is_revoked("serial-n1-b").await.unwrap());
    assert_eq!(s.node("n1").await.unwrap().cert_serial, "serial-n1-b");

    s.set_plan_hash("n1", "abc123").await.unwrap();
    assert_eq!(s.node("n1").await.unwrap().plan_hash, "abc123");
    assert!(matches!(
        s.set_plan_hash("zz", "x").await,
        Err(StoreError::NotFound(_))
    ));
    // A pass's batch: every row written, a node gone meanwhile skipped.
    s.set_plan_hashes(&[
        ("n1".into(), "def456".into()),
        ("ghost".into(), "x".into()),
        ("n2".into(), "ghi789".into()),
    ])
    .await
    .unwrap();
    assert_eq!(s.node("n1").await.unwrap().plan_hash, "def456");
    assert_eq!(s.node("n2").await.unwrap().plan_hash, "ghi789");

    let t = s.node("n1").await.unwrap().last_seen;
    let revived = s
        .record_last_seen(&[
            ("n1".into(), t + 100),
            ("n2".into(), t + 50),
            ("ghost".into(), t + 100),
        ])
        .await
        .unwrap();
    assert!(revived.is_empty());
    assert_eq!(s.node("n1").await.unwrap().last_seen, t + 100);
    s.record_last_seen(&[("n1".into(), t + 10)]).await.unwrap();
    assert_eq!(
        s.node("n1").await.unwrap().last_seen,
        t + 100,
        "last_seen never moves back"
    );

    assert_eq!(s.mark_unreachable(t + 60).await.unwrap(), ["n2"]);
    assert_eq!(s.node("n2").await.unwrap().state, NodeState::Unreachable);
    assert!(s.mark_unreachable(t + 60).await.unwrap().is_empty());
    assert_eq!(
        s.record_last_seen(&[("n2".into(), t + 200)]).await.unwrap(),
        ["n2"]
    );
    assert_eq!(s.node("n2").await.unwrap().state, NodeState::Active);

    s.retire_node("n2", ALICE).await.unwrap();
    s.record_last_seen(&[("n2".into(), t + 300)]).await.unwrap();
    let n2 = s.node("n2").await.unwrap();
    assert_eq!((n2.state, n2.last_seen), (NodeState::Retired, t + 200));
    assert!(matches!(
        s.set_node_cert("n2", "x", 1).await,
        Err(StoreError::Conflict(_))
    ));

    // A big batch in one go.
    let batch: Vec<(String, i64)> = (0..500)
        .map(|i| {
            (
                if i % 2 == 0 { "n1" } else { "n2" }.to_string(),
                t + 400 + i,
            )
        })
        .collect();
    s.record_last_seen(&batch).await.unwrap();
    assert_eq!(s.node("n1").await.unwrap().last_seen, t + 898);
}

async fn revocations_are_kept_once(db: &mut Db) {
    let s = &db.store;
    assert!(!s.is_revoked("0a").await.unwrap());
    assert!(s.revoke_serial("0a", "key compromised", 100).await.unwrap());
    assert!(!s.revoke_serial("0a", "again", 200).await.unwrap());
    assert!(s.revoke_serial("0b", "test", 150).await.unwrap());
    assert!(s.is_revoked("0a").await.unwrap());
    let all = s.revoked_serials().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (
            all[0].serial.as_str(),
            all[0].reason.as_str(),
            all[0].revoked_at
        ),
        ("0a", "key compromised", 100)
    );
    assert_eq!(all[1].serial, "0b");
}

// ---------------------------------------------------------------- secrets, admins

async fn secrets_keep_ciphertext_out_of_the_audit(db: &mut Db) {
    let s = &db.store;
    let ciphertext = b"\x00\x01opaque-ciphertext-bytes\xff".to_vec();
    let put = s
        .put_secret("db_password", &ciphertext, &strings(&["web"]), ALICE)
        .await
        .unwrap();
    assert!(put.changed);
    let audits = audit_count(s).await;
    assert!(
        !s.put_secret("db_password", &ciphertext, &strings(&["web"]), ALICE)
            .await
            .unwrap()
            .changed
    );
    assert_eq!(audit_count(s).await, audits);
    s.put_secret(
        "db_password",
        &ciphertext,
        &strings(&["web", "cache"]),
        "bob",
    )
    .await
    .unwrap();
    s.put_secret("api_key", b"other", &[], ALICE).await.unwrap();

    let all = s.secrets().await.unwrap();
    assert_eq!(
        all.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
        ["api_key", "db_password"]
    );
    assert_eq!(all[1].ciphertext, ciphertext);
    assert_eq!(all[1].roles, ["web", "cache"]);
    assert_eq!(all[1].updated_by, "bob");
    assert!(
        !format!("{:?}", all[1]).contains("opaque"),
        "Debug redacts the ciphertext"
    );

    s.delete_secret("api_key", ALICE).await.unwrap();
    assert!(matches!(
        s.delete_secret("api_key", ALICE).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.secrets().await.unwrap().len(), 1);

    let events: Vec<_> = s
        .audit(100, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.what.starts_with("secret."))
        .collect();
    assert_eq!(events.len(), 4);
    let change = events.iter().find(|e| e.who == "bob").unwrap();
    assert_eq!(change.before_json.as_deref(), Some(r#"{"roles":["web"]}"#));
    assert_eq!(
        change.after_json.as_deref(),
        Some(r#"{"roles":["web","cache"]}"#)
    );
    let hex_text = hex::encode(&ciphertext);
    for e in &events {
        let text = format!("{} {:?} {:?}", e.what, e.before_json, e.after_json);
        assert!(
            !text.contains("opaque") && !text.contains(&hex_text) && !text.contains("6f74686572"),
            "{text}"
        );
    }
}

async fn admins_are_added_removed_and_revoked(db: &mut Db) {
    let s = &db.store;
    s.add_admin("root", "serial-root", "cm-server")
        .await
        .unwrap();
    s.add_admin("alice", "serial-alice", "root").await.unwrap();
    let err = s.add_admin("alice", "serial-x", "root").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("alice")),
        "{err}"
    );
    let names: Vec<String> = s
        .admins()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["alice", "root"]);
    assert_eq!(s.admin("alice").await.unwrap().created_by, "root");

    s.remove_admin("alice", "root").await.unwrap();
    assert!(s.is_revoked("serial-alice").await.unwrap());
    assert!(s.admin("alice").await.unwrap().removed);
    assert_eq!(s.admins().await.unwrap().len(), 1);
    assert!(matches!(
        s.remove_admin("alice", "root").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.remove_admin("nobody", "root").await,
        Err(StoreError::NotFound(_))
    ));
    let err = s.remove_admin("root", "root").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("last admin")),
        "{err}"
    );

    let back = s
        .add_admin("alice", "serial-alice-2", "root")
        .await
        .unwrap();
    assert!(!back.removed);
    assert!(!s.admin("alice").await.unwrap().removed);
    assert_eq!(
        s.admin("alice").await.unwrap().cert_serial,
        "serial-alice-2"
    );
    let whats: Vec<String> = s
        .audit(10, Some("root"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.what)
        .collect();
    assert_eq!(
        whats,
        ["admin.add alice", "admin.remove alice", "admin.add alice"]
    );
}

// ---------------------------------------------------------------- runs, audit

fn run(node: &str, at: i64, status: &str) -> RunRow {
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

async fn runs_are_listed_newest_first_and_pruned(db: &mut Db) {
    let s = &db.store;
    enrolled(s, "n1", &["web"]).await;
    enrolled(s, "n2", &["web"]).await;
    assert!(matches!(
        s.insert_run(&run("ghost", 1, "ok")).await,
        Err(StoreError::NotFound(_))
    ));
    let first = s.insert_run(&run("n1", 1000, "ok")).await.unwrap();
    let second = s.insert_run(&run("n1", 2000, "failed")).await.unwrap();
    assert!(second > first);
    s.insert_run(&run("n2", 1500, "ok")).await.unwrap();

    let n1 = s.runs(Some("n1"), 10).await.unwrap();
    assert_eq!(n1.iter().map(|r| r.at).collect::<Vec<_>>(), [2000, 1000]);
    assert_eq!(n1[0].id, second);
    assert_eq!(n1[0].report_json, r#"{"resources": []}"#);
    assert_eq!(n1[0].resources_failed, 1);
    assert_eq!(
        s.runs(None, 2)
            .await
            .unwrap()
            .iter()
            .map(|r| r.at)
            .collect::<Vec<_>>(),
        [2000, 1500]
    );

    let last = s.node("n1").await.unwrap().last_run.unwrap();
    assert_eq!(
        (last.at, last.status.as_str(), last.report_json.as_str()),
        (2000, "failed", "")
    );

    assert_eq!(s.prune_runs(1600).await.unwrap(), 2);
    assert_eq!(s.runs(None, 10).await.unwrap().len(), 1);
    assert_eq!(
        s.node("n2").await.unwrap().last_run.unwrap().at,
        1500,
        "nodes keep their last run"
    );
}

async fn audit_records_every_admin_change(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    let before = audit_count(s).await;
    assert_eq!(before, 0);
    s.insert_cookbook_version(&cookbook("c", "1.0.0", &[]), ALICE)
        .await
        .unwrap();
    s.delete_cookbook_version("c", "1.0.0", ALICE, |_| false)
        .await
        .unwrap();
    s.put_document(DocKind::Role, "r", "x: 1\n", ALICE)
        .await
        .unwrap();
    s.put_document(DocKind::Environment, "e", "x: 1\n", ALICE)
        .await
        .unwrap();
    let hash = token(s, "t", &["r"], 1, now + 60).await;
    s.enroll_with_token(&hash, &enrollment("n", "sn", now))
        .await
        .unwrap();
    s.assign_role("n", "r2", ALICE).await.unwrap();
    s.unassign_role("n", "r2", ALICE).await.unwrap();
    s.set_node_attribute("n", "a.b", "1", ALICE).await.unwrap();
    s.unset_node_attribute("n", "a.b", ALICE).await.unwrap();
    s.retire_node("n", ALICE).await.unwrap();
    s.revoke_token("t", ALICE).await.unwrap();
    s.put_secret("s", b"x", &[], ALICE).await.unwrap();
    s.delete_secret("s", ALICE).await.unwrap();
    s.add_admin("bob", "sb", ALICE).await.unwrap();
    s.add_admin("carol", "sc", ALICE).await.unwrap();
    s.remove_admin("bob", ALICE).await.unwrap();

    // Not admin changes: no audit rows.
    s.revoke_serial("x", "test", now).await.unwrap();
    s.record_last_seen(&[("n".into(), now)]).await.unwrap();

    let events = s.audit(100, None).await.unwrap();
    let whats: Vec<&str> = events.iter().rev().map(|e| e.what.as_str()).collect();
    assert_eq!(
        whats,
        [
            "cookbook.push c 1.0.0",
            "cookbook.delete c 1.0.0",
            "role.set r",
            "environment.set e",
            "token.create t",
            "node.enroll n",
            "node.assign n r2",
            "node.unassign n r2",
            "node.set_attribute n a.b",
            "node.unset_attribute n a.b",
            "node.retire n",
            "token.revoke t",
            "secret.set s",
            "secret.delete s",
            "admin.add bob",
            "admin.add carol",
            "admin.remove bob",
        ]
    );
    for e in &events {
        assert!(e.at >= now && e.at <= unix_now(), "{e:?}");
        for json in [&e.before_json, &e.after_json].into_iter().flatten() {
            serde_json::from_str::<serde_json::Value>(json)
                .unwrap_or_else(|err| panic!("{e:?}: {err}"));
        }
        if e.what != "node.enroll n" {
            assert_eq!(e.who, ALICE);
        }
    }
    assert!(events.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(s.audit(3, None).await.unwrap().len(), 3);
    assert_eq!(s.audit(100, Some("token:t")).await.unwrap().len(), 1);
    assert!(s.audit(100, Some("nobody")).await.unwrap().is_empty());
}

async fn a_reopened_store_keeps_everything(db: &mut Db) {
    let now = unix_now();
    {
        let s = &db.store;
        s.insert_cookbook_version(&cookbook("memcached", "1.0.0", &[("f", "x")]), ALICE)
            .await
            .unwrap();
        s.put_document(DocKind::Role, "cache", "run_list: [memcached]\n", ALICE)
            .await
            .unwrap();
        let hash = token(s, "t", &["cache"], 3, now + 600).await;
        s.enroll_with_token(&hash, &enrollment("n1", "s1", now))
            .await
            .unwrap();
        s.set_node_attribute("n1", "memcached.port", "11311", ALICE)
            .await
            .unwrap();
        s.insert_run(&run("n1", now, "ok")).await.unwrap();
        s.put_secret("k", b"cipher", &strings(&["cache"]), ALICE)
            .await
            .unwrap();
        s.add_admin("root", "sr", "cm-server").await.unwrap();
        s.revoke_serial("old", "test", now).await.unwrap();
        if !s.is_postgres() {
            let mode: String = sqlx::query("PRAGMA journal_mode")
                .fetch_one(s.pool())
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_eq!(mode, "wal");
            let sync: i64 = sqlx::query("PRAGMA synchronous")
                .fetch_one(s.pool())
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_eq!(sync, 2, "synchronous = FULL");
        }
    }
    let audits = audit_count(&db.store).await;
    db.reopen().await;
    let s = &db.store;
    assert_eq!(s.cookbook_versions(None).await.unwrap().len(), 1);
    assert_eq!(
        s.document(DocKind::Role, "cache").await.unwrap().revision,
        1
    );
    assert_eq!(s.token("t").await.unwrap().uses_left, 2);
    let n1 = s.node("n1").await.unwrap();
    assert_eq!(n1.attributes["memcached"]["port"], 11311);
    assert_eq!(n1.last_run.unwrap().at, now);
    assert_eq!(s.runs(Some("n1"), 5).await.unwrap().len(), 1);
    assert_eq!(s.secrets().await.unwrap()[0].ciphertext, b"cipher");
    assert_eq!(s.admins().await.unwrap().len(), 1);
    assert!(s.is_revoked("old").await.unwrap());
    assert_eq!(audit_count(s).await, audits);
    // Migrations ran once: opening again applies nothing and fails nothing.
    db.reopen().await;
    assert_eq!(db.store.nodes(None, None).await.unwrap().len(), 1);
}

// ---------------------------------------------------------------- plan checks

/// A guard that records the groups it was shown and finds broken the groups
/// whose roles (after the change) include `role`.
fn guard_breaking(
    role: &'static str,
    force: bool,
    seen: std::sync::Arc<std::sync::Mutex<Vec<NodeGroup>>>,
) -> PlanGuard<'static> {
    PlanGuard {
        check: Box::new(move |rows: &PlanRows| {
            *seen.lock().unwrap() = rows.groups.clone();
            Ok(rows
                .groups
                .iter()
                .enumerate()
                .filter(|(_, g)| g.roles_after.iter().any(|r| r == role))
                .map(|(group, _)| BrokenGroup {
                    group,
                    reason: format!("{role} is broken"),
                })
                .collect())
        }),
        force,
    }
}

async fn a_plan_guard_reads_the_live_groups_and_refuses_or_audits(db: &mut Db) {
    let s = &db.store;
    for (name, roles) in [
        ("n1", &["web"][..]),
        ("n2", &["web"]),
        ("n3", &["db"]),
        ("n4", &["web"]),
    ] {
        enrolled(s, name, roles).await;
    }
    s.retire_node("n4", ALICE).await.unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let audits = audit_count(s).await;

    let refused = s
        .put_document_checked(
            DocKind::Role,
            "web",
            "name: web\n",
            ALICE,
            Some(guard_breaking("web", false, seen.clone())),
        )
        .await
        .unwrap_err();
    let StoreError::BreaksPlans(b) = &refused else {
        panic!("{refused:?}");
    };
    assert_eq!(b.change, "role.set web");
    assert_eq!(b.broken.len(), 1);
    assert_eq!(
        b.broken[0].nodes,
        strings(&["n1", "n2"]),
        "the retired n4 is not one"
    );
    assert_eq!(
        (b.broken[0].count, b.broken[0].roles.clone()),
        (2, strings(&["web"]))
    );
    let text = refused.to_string();
    assert!(
        text.contains("n1, n2 (environment production, roles web): web is broken"),
        "{text}"
    );
    let groups = seen.lock().unwrap().clone();
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert!(groups.iter().all(|g| g.roles_before == g.roles_after));
    assert!(matches!(
        s.document(DocKind::Role, "web").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(audit_count(s).await, audits, "a refusal writes nothing");

    s.put_document_checked(
        DocKind::Role,
        "web",
        "name: web\n",
        ALICE,
        Some(guard_breaking("web", true, seen.clone())),
    )
    .await
    .unwrap();
    let events = s.audit(2, None).await.unwrap();
    let whats: Vec<&str> = events.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(whats, ["role.set web", "plan.force role.set web"]);
    let forced: serde_json::Value =
        serde_json::from_str(events[1].after_json.as_deref().unwrap()).unwrap();
    assert_eq!(
        forced["broken"][0]["nodes"],
        serde_json::json!(["n1", "n2"])
    );

    // One node's roles: only that node is shown, before and after.
    let refused = s
        .assign_role_checked(
            "n3",
            "web",
            ALICE,
            Some(guard_breaking("web", false, seen.clone())),
        )
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("n3 (environment production, roles db,web)"),
        "{refused}"
    );
    let groups = seen.lock().unwrap().clone();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (
            groups[0].roles_before.clone(),
            groups[0].roles_after.clone(),
            groups[0].nodes
        ),
        (strings(&["db"]), strings(&["db", "web"]), 1)
    );
    assert_eq!(s.node("n3").await.unwrap().roles, strings(&["db"]));
}

/// Two checked changes at once: the second checks against the first's
/// committed result, never against the state before it (on PostgreSQL the
/// plan lock makes it wait; on SQLite the write lock does).
async fn checked_changes_see_each_other_committed(db: &mut Db) {
    let s = db.store.clone();
    enrolled(&s, "n1", &["web"]).await;
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let first = PlanGuard {
        check: Box::new(move |_: &PlanRows| {
            let _ = entered_tx.send(());
            // Hold the transaction open until the test says so.
            let _ = release_rx.recv();
            Ok(Vec::new())
        }),
        force: false,
    };
    let a = {
        let s = s.clone();
        tokio::spawn(async move {
            s.put_document_checked(DocKind::Role, "a", "name: a\n", ALICE, Some(first))
                .await
        })
    };
    entered_rx.await.unwrap();
    let seen_roles = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let second = {
        let seen_roles = seen_roles.clone();
        PlanGuard {
            check: Box::new(move |rows: &PlanRows| {
                *seen_roles.lock().unwrap() = rows.roles.iter().map(|d| d.name.clone()).collect();
                Ok(Vec::new())
            }),
            force: false,
        }
    };
    let b = {
        let s = s.clone();
        tokio::spawn(async move {
            s.put_document_checked(DocKind::Role, "b", "name: b\n", ALICE, Some(second))
                .await
        })
    };
    // Give the second change every chance to read before the first commits.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    release_tx.send(()).unwrap();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    assert_eq!(*seen_roles.lock().unwrap(), strings(&["a"]));
}

async fn plan_errors_are_recorded_and_cleared(db: &mut Db) {
    let s = &db.store;
    enrolled(s, "n1", &["web"]).await;
    assert_eq!(s.node("n1").await.unwrap().plan_error, "");
    s.set_plan_errors(&[
        ("n1".into(), "demo: no version".into()),
        ("gone".into(), "x".into()),
    ])
    .await
    .unwrap();
    assert_eq!(s.node("n1").await.unwrap().plan_error, "demo: no version");
    s.set_plan_errors(&[("n1".into(), String::new())])
        .await
        .unwrap();
    assert_eq!(s.nodes(None, None).await.unwrap()[0].plan_error, "");
}

// ---------------------------------------------------------------- run identities

async fn runs_of_a_retired_identity_are_kept_marked_and_not_the_new_ones(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    s.enroll_node(
        &enrollment("n1", "serial-old", now),
        "production",
        &[],
        ALICE,
    )
    .await
    .unwrap();
    let old = RunRow {
        received_at: 5000,
        ..run("n1", 1000, "ok")
    };
    s.insert_run(&old).await.unwrap();
    // A renewal keeps the identity.
    s.set_node_cert("n1", "serial-renewed", now + 90 * 86400)
        .await
        .unwrap();
    s.insert_run(&run("n1", 1100, "ok")).await.unwrap();
    s.retire_node("n1", ALICE).await.unwrap();
    s.enroll_node(
        &enrollment("n1", "serial-new", now),
        "production",
        &[],
        ALICE,
    )
    .await
    .unwrap();
    s.insert_run(&run("n1", 2000, "ok")).await.unwrap();

    let current = s.current_runs("n1", 10).await.unwrap();
    assert_eq!(current.iter().map(|r| r.at).collect::<Vec<_>>(), [2000]);
    assert_eq!(current[0].identity, "serial-new");
    assert!(!current[0].retired_identity);

    let all = s.runs(Some("n1"), 10).await.unwrap();
    let seen: Vec<_> = all
        .iter()
        .map(|r| (r.at, r.identity.as_str(), r.retired_identity))
        .collect();
    assert_eq!(
        seen,
        [
            (2000, "serial-new", false),
            (1100, "serial-old", true),
            (1000, "serial-old", true),
        ]
    );
    assert_eq!(all[2].received_at, 5000, "the receipt time is kept beside");
    assert_eq!(
        s.runs(None, 10).await.unwrap(),
        all,
        "listing every node marks them too"
    );
}

// ---------------------------------------------------------------- agent versions

async fn versions_record_the_agent_they_need_and_those_pushed_before_none(db: &mut Db) {
    let s = &db.store;
    let new = NewCookbookVersion {
        min_agent: "0.2.0".into(),
        ..cookbook("ranges", "1.0.0", &[("metadata.yaml", "m")])
    };
    s.insert_cookbook_version(&new, ALICE).await.unwrap();
    let row = s.cookbook_version("ranges", "1.0.0").await.unwrap();
    assert_eq!(row.min_agent, "0.2.0");
    assert!(!row.pushed_before_min_agent());
    let junk = NewCookbookVersion {
        min_agent: "soon".into(),
        ..cookbook("ranges", "1.0.1", &[])
    };
    match s.insert_cookbook_version(&junk, ALICE).await {
        Err(StoreError::Invalid(m)) => assert!(m.contains("\"soon\""), "{m}"),
        other => panic!("{other:?}"),
    }
    // A row as a server before migration 0005 wrote it.
    sqlx::query(
        "INSERT INTO cookbook_versions (name, version, description, depends_json, \
         manifest_json, manifest_digest, created_at, pushed_by) \
         VALUES ('old', '1.0.0', '', '{}', '{\"entries\":[]}', 'd', 1, 'bob')",
    )
    .execute(s.pool())
    .await
    .unwrap();
    db.reopen().await;
    let old = db.store.cookbook_version("old", "1.0.0").await.unwrap();
    assert_eq!(old.min_agent, "");
    assert!(old.pushed_before_min_agent());
}

async fn nodes_keep_the_agent_version_they_report(db: &mut Db) {
    let s = &db.store;
    enrolled(s, "n1", &["web"]).await;
    assert_eq!(s.node("n1").await.unwrap().agent_version, "");
    assert_eq!(s.agent_version("n1").await.unwrap(), "");
    s.set_agent_version("n1", "0.1.3").await.unwrap();
    assert_eq!(s.node("n1").await.unwrap().agent_version, "0.1.3");
    assert_eq!(s.agent_version("n1").await.unwrap(), "0.1.3");
    assert!(matches!(
        s.agent_version("ghost").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.nodes(None, None).await.unwrap()[0].agent_version, "0.1.3");
    assert!(matches!(
        s.set_agent_version("ghost", "0.2.0").await,
        Err(StoreError::NotFound(_))
    ));
}
