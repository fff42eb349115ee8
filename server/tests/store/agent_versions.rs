//! Agent versions: what each cookbook version needs (none recorded for one
//! pushed before servers recorded it) and what each node reports running.

use cm_server::store::{NewCookbookVersion, StoreError};

use crate::Db;
use crate::fixtures::{ALICE, cookbook, enrolled};

on_both_engines!(
    versions_record_the_agent_they_need_and_those_pushed_before_none,
    nodes_keep_the_agent_version_they_report,
);

async fn versions_record_the_agent_they_need_and_those_pushed_before_none(db: &mut Db) {
    let s = &db.store;
    let new = NewCookbookVersion {
        min_agent: "0.2.0".into(),
        cluster: Default::default(),
        ..cookbook("ranges", "1.0.0", &[("metadata.yaml", "m")])
    };
    s.insert_cookbook_version(&new, ALICE).await.unwrap();
    let row = s.cookbook_version("ranges", "1.0.0").await.unwrap();
    assert_eq!(row.min_agent, "0.2.0");
    assert!(!row.pushed_before_min_agent());
    let junk = NewCookbookVersion {
        min_agent: "soon".into(),
        cluster: Default::default(),
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
