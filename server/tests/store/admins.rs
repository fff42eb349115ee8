//! Admins: added, removed, and their certificates revoked.

use cm_server::store::StoreError;

use crate::Db;

on_both_engines!(admins_are_added_removed_and_revoked,);

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
