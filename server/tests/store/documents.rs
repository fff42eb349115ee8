//! Roles and environments as stored documents: revisions and history.

use cm_server::store::{DocKind, StoreError};

use crate::Db;
use crate::fixtures::{ALICE, audit_count};

on_both_engines!(documents_get_revisions_and_history,);

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
