//! A store closed and opened again keeps everything (and runs no
//! migration twice); SQLite runs in WAL mode with full sync.

use cm_server::store::Level;
use cm_server::store::{DocKind, unix_now};
use sqlx::Row;

use crate::Db;
use crate::fixtures::{ALICE, audit_count, cookbook, enrollment, run, strings, token};

on_both_engines!(a_reopened_store_keeps_everything,);

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
        s.add_admin("root", "sr", Level::Owner, &[], "cm-server")
            .await
            .unwrap();
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
