//! Plan checks inside a store transaction: the guard sees the live groups,
//! refuses or audits, and concurrent checked changes see each other.

use cm_server::store::{BrokenGroup, DocKind, NodeGroup, PlanGuard, PlanRows, StoreError};

use crate::Db;
use crate::fixtures::{ALICE, audit_count, enrolled, strings};

on_both_engines!(
    a_plan_guard_reads_the_live_groups_and_refuses_or_audits,
    checked_changes_see_each_other_committed,
    plan_errors_are_recorded_and_cleared,
);

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
