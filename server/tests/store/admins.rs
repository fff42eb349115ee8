//! Admins: added, removed, and their certificates revoked.

use cm_server::store::Level;
use cm_server::store::StoreError;

use crate::Db;

on_both_engines!(
    admins_are_added_removed_and_revoked,
    levels_are_kept_changed_audited_and_an_owner_always_remains,
);

async fn levels_are_kept_changed_audited_and_an_owner_always_remains(db: &mut Db) {
    let s = &db.store;
    s.add_admin("root", "sr", Level::Owner, &[], "cm-server")
        .await
        .unwrap();
    let staging = vec!["staging".to_string()];
    s.add_admin("ops", "so", Level::Operator, &staging, "root")
        .await
        .unwrap();
    let ops = s.admin("ops").await.unwrap();
    assert_eq!(
        (ops.level, ops.environments.clone()),
        (Level::Operator, staging.clone())
    );
    assert!(!ops.full_owner());

    // Neither removing nor downgrading the only owner of everything.
    let err = s.remove_admin("root", "ops").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("last owner")),
        "{err}"
    );
    let err = s
        .set_admin_level("root", Level::Operator, &[], "root")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("last owner")),
        "{err}"
    );
    let err = s
        .set_admin_level("root", Level::Owner, &staging, "root")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(_)),
        "an owner of one environment only: {err}"
    );

    s.set_admin_level("ops", Level::Owner, &[], "root")
        .await
        .unwrap();
    let root = s
        .set_admin_level("root", Level::Viewer, &[], "ops")
        .await
        .unwrap();
    assert_eq!(root.level, Level::Viewer);
    assert_eq!(s.admin("root").await.unwrap().level, Level::Viewer);
    let event = &s.audit(1, Some("ops")).await.unwrap()[0];
    assert_eq!(event.what, "admin.set root");
    assert_eq!(
        event.before_json.as_deref(),
        Some(r#"{"environments":[],"level":"owner"}"#)
    );
    assert_eq!(
        event.after_json.as_deref(),
        Some(r#"{"environments":[],"level":"viewer"}"#)
    );
    assert!(matches!(
        s.set_admin_level("nobody", Level::Viewer, &[], "ops").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn admins_are_added_removed_and_revoked(db: &mut Db) {
    let s = &db.store;
    s.add_admin("root", "serial-root", Level::Owner, &[], "cm-server")
        .await
        .unwrap();
    s.add_admin("alice", "serial-alice", Level::Owner, &[], "root")
        .await
        .unwrap();
    let err = s
        .add_admin("alice", "serial-x", Level::Owner, &[], "root")
        .await
        .unwrap_err();
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
        .add_admin("alice", "serial-alice-2", Level::Owner, &[], "root")
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
