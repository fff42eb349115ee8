//! Nodes: roles and admin-set attributes (audited, no-ops without an
//! event), facts, certificates, plan hashes, check-ins and revocations.

use cm_server::store::{Actor, NodeState, StoreError};

use crate::Db;
use crate::fixtures::{ALICE, audit_count, enrolled};

on_both_engines!(
    roles_and_attributes_change_with_audit_and_noops_without,
    facts_certificates_plans_and_checkins,
    revocations_are_kept_once,
    the_census_counts_nodes_by_environment_state_and_plan,
    a_change_held_to_an_environment_is_refused_once_the_node_left_it,
);

/// An admin limited to an environment was allowed to change a node found
/// there; the node moved before the change took its lock: refused.
async fn a_change_held_to_an_environment_is_refused_once_the_node_left_it(db: &mut Db) {
    let s = &db.store;
    enrolled(s, "n", &["web"]).await;
    let env = s.node("n").await.unwrap().environment;
    let elsewhere = s
        .set_node_attribute("n", "a.b", "1", held("somewhere-else"))
        .await
        .unwrap_err();
    assert!(
        matches!(&elsewhere, StoreError::Conflict(m) if m.contains("try again")),
        "{elsewhere}"
    );
    assert!(
        s.node("n").await.unwrap().attributes.is_empty(),
        "nothing written"
    );
    let err = s
        .retire_node("n", held("somewhere-else"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(s.node("n").await.unwrap().state, NodeState::Active);

    assert!(
        s.set_node_attribute("n", "a.b", "1", held(&env))
            .await
            .unwrap()
            .changed
    );
    assert!(s.retire_node("n", held(&env)).await.unwrap().changed);
}

/// An admin held to `environment`.
fn held(environment: &str) -> Actor<'_> {
    Actor {
        name: "stella",
        environment: Some(environment),
    }
}

/// What `/metrics` shows as `cm_nodes` and `cm_plans`.
async fn the_census_counts_nodes_by_environment_state_and_plan(db: &mut Db) {
    let s = &db.store;
    for name in ["a", "b", "c", "d"] {
        enrolled(s, name, &["web"]).await;
    }
    s.set_plan_hashes(&[("a".into(), "h1".into()), ("b".into(), "h2".into())])
        .await
        .unwrap();
    s.set_plan_errors(&[("c".into(), "role x does not exist".into())])
        .await
        .unwrap();
    s.retire_node("b", ALICE).await.unwrap();
    let census: Vec<(String, String, &str, i64)> = s
        .census()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.environment, c.state, c.plan, c.nodes))
        .collect();
    let row = |state: &str, plan: &'static str, n: i64| {
        ("production".to_string(), state.to_string(), plan, n)
    };
    assert_eq!(
        census,
        [
            row("active", "error", 1),
            row("active", "none", 1),
            row("active", "ok", 1),
            row("retired", "ok", 1),
        ]
    );
    s.ping().await.unwrap();
}

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
