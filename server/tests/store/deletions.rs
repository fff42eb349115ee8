//! Deleting roles and environments (refused while anything uses them,
//! naming the users), tokens that may name only what exists, and moving a
//! node between environments with its ordinals.

use cm_server::store::{DocKind, NewToken, Store, StoreError, unix_now};

use crate::Db;
use crate::fixtures::{ALICE, documents_exist, enrolled, sha256, token};

on_both_engines!(
    a_role_in_use_is_kept_and_the_refusal_names_its_users,
    an_environment_in_use_is_kept_until_its_nodes_move_away,
    a_token_names_only_roles_and_environments_that_exist,
    a_moved_node_leaves_its_ordinals_and_takes_the_lowest_free_ones,
);

fn precondition(e: StoreError) -> String {
    match e {
        StoreError::Precondition(m) => m,
        other => panic!("expected a precondition refusal, got {other:?}"),
    }
}

async fn last_audit(s: &Store) -> (String, Option<serde_json::Value>) {
    let e = s.audit(1, None).await.unwrap().remove(0);
    let before = e.before_json.map(|j| serde_json::from_str(&j).unwrap());
    (e.what, before)
}

async fn a_role_in_use_is_kept_and_the_refusal_names_its_users(db: &mut Db) {
    let s = &db.store;
    s.put_document(DocKind::Role, "cache", "name: cache\n", ALICE)
        .await
        .unwrap();
    s.put_document(DocKind::Role, "cache", "name: cache\n# 2\n", ALICE)
        .await
        .unwrap();
    enrolled(s, "n1", &["cache"]).await;
    token(s, "live", &["web", "cache"], 5, unix_now() + 3600).await;
    token(s, "stale", &["cache"], 5, unix_now() - 1).await;
    s.put_secret("pw", b"x", &["cache".into()], ALICE)
        .await
        .unwrap();

    let refusal = precondition(
        s.delete_document(DocKind::Role, "cache", ALICE)
            .await
            .unwrap_err(),
    );
    assert!(refusal.contains("role cache is still in use"), "{refusal}");
    assert!(refusal.contains("1 node: n1"), "{refusal}");
    assert!(refusal.contains("1 live token: live"), "{refusal}");
    assert!(refusal.contains("1 secret: pw"), "{refusal}");
    assert!(!refusal.contains("stale"), "expired tokens use nothing");
    assert_eq!(
        s.document(DocKind::Role, "cache").await.unwrap().revision,
        2
    );

    s.retire_node("n1", ALICE).await.unwrap();
    s.revoke_token("live", ALICE).await.unwrap();
    s.put_secret("pw", b"x", &[], ALICE).await.unwrap();
    s.delete_document(DocKind::Role, "cache", ALICE)
        .await
        .unwrap();
    assert!(matches!(
        s.document(DocKind::Role, "cache").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.history(DocKind::Role, "cache").await,
        Err(StoreError::NotFound(_))
    ));
    let (what, before) = last_audit(s).await;
    assert_eq!(what, "role.delete cache");
    let before = before.unwrap();
    assert_eq!(before["revision"], 2);
    assert_eq!(before["yaml"], "name: cache\n# 2\n");
    assert!(matches!(
        s.delete_document(DocKind::Role, "cache", ALICE).await,
        Err(StoreError::NotFound(_))
    ));
    let again = s
        .put_document(DocKind::Role, "cache", "name: cache\n", ALICE)
        .await
        .unwrap();
    assert_eq!(again.value.revision, 1, "a new role, a new history");
}

async fn an_environment_in_use_is_kept_until_its_nodes_move_away(db: &mut Db) {
    let s = &db.store;
    documents_exist(s, &["cache"], "production").await;
    documents_exist(s, &[], "staging").await;
    enrolled(s, "n1", &["cache"]).await;
    let refusal = precondition(
        s.delete_document(DocKind::Environment, "production", ALICE)
            .await
            .unwrap_err(),
    );
    assert!(refusal.contains("1 node: n1"), "{refusal}");
    assert!(
        !refusal.contains("live token"),
        "n1's token is used up: {refusal}"
    );
    s.move_node("n1", "staging", ALICE, None).await.unwrap();
    s.delete_document(DocKind::Environment, "production", ALICE)
        .await
        .unwrap();
    let refusal = precondition(
        s.delete_document(DocKind::Environment, "staging", ALICE)
            .await
            .unwrap_err(),
    );
    assert!(refusal.contains("1 node: n1"), "{refusal}");
    assert!(refusal.contains("cmctl node move"), "says how: {refusal}");
}

async fn a_token_names_only_roles_and_environments_that_exist(db: &mut Db) {
    let s = &db.store;
    documents_exist(s, &["web"], "production").await;
    let new = |roles: &[&str], environment: &str| NewToken {
        id: "t1".into(),
        secret_hash: sha256("t1"),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        environment: environment.into(),
        expires_at: unix_now() + 60,
        uses: 1,
    };
    let ghost_role = precondition(
        s.create_token(&new(&["web", "ghost"], "production"), ALICE)
            .await
            .unwrap_err(),
    );
    assert!(
        ghost_role.contains("role ghost does not exist"),
        "{ghost_role}"
    );
    let ghost_env = precondition(
        s.create_token(&new(&["web"], "moon"), ALICE)
            .await
            .unwrap_err(),
    );
    assert!(
        ghost_env.contains("environment moon does not exist"),
        "{ghost_env}"
    );
    assert!(s.tokens().await.unwrap().is_empty(), "nothing was written");
    s.create_token(&new(&["web"], "production"), ALICE)
        .await
        .unwrap();
}

async fn a_moved_node_leaves_its_ordinals_and_takes_the_lowest_free_ones(db: &mut Db) {
    let s = &db.store;
    documents_exist(s, &["cache"], "production").await;
    documents_exist(s, &[], "staging").await;
    for n in ["c1", "c2", "c3"] {
        enrolled(s, n, &["cache"]).await;
    }
    let members = |env: &'static str| async move {
        s.members(Some(env), Some("cache"))
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.node, m.ordinal))
            .collect::<Vec<_>>()
    };
    let pair = |n: &str, o: i64| (n.to_string(), o);

    let moved = s.move_node("c1", "staging", ALICE, None).await.unwrap();
    assert!(moved.changed);
    assert_eq!(moved.value.environment, "staging");
    assert_eq!(s.node("c1").await.unwrap().environment, "staging");
    assert_eq!(
        members("production").await,
        vec![pair("c2", 1), pair("c3", 2)]
    );
    assert_eq!(members("staging").await, vec![pair("c1", 0)]);
    let (what, before) = last_audit(s).await;
    assert_eq!(what, "node.move c1 staging");
    assert_eq!(before.unwrap()["environment"], "production");

    s.move_node("c2", "staging", ALICE, None).await.unwrap();
    s.move_node("c1", "production", ALICE, None).await.unwrap();
    assert_eq!(
        members("production").await,
        vec![pair("c1", 0), pair("c3", 2)]
    );
    assert_eq!(members("staging").await, vec![pair("c2", 1)]);

    let same = s.move_node("c1", "production", ALICE, None).await.unwrap();
    assert!(!same.changed, "already there");
    let ghost = precondition(s.move_node("c3", "moon", ALICE, None).await.unwrap_err());
    assert!(ghost.contains("environment moon does not exist"), "{ghost}");
    assert_eq!(s.node("c3").await.unwrap().environment, "production");
    assert_eq!(
        members("production").await,
        vec![pair("c1", 0), pair("c3", 2)]
    );

    s.retire_node("c3", ALICE).await.unwrap();
    assert!(s.move_node("c3", "staging", ALICE, None).await.is_err());
}
