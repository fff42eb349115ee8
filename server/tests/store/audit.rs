//! The audit log: every admin change is an event, filtered by who.

use cm_server::store::Level;
use cm_server::store::{DocKind, unix_now};

use crate::Db;
use crate::fixtures::{ALICE, audit_count, cookbook, enrollment, token};

on_both_engines!(audit_records_every_admin_change,);

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
    s.add_admin("bob", "sb", Level::Owner, &[], ALICE)
        .await
        .unwrap();
    s.add_admin("carol", "sc", Level::Owner, &[], ALICE)
        .await
        .unwrap();
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
