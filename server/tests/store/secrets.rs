//! Secrets: the ciphertext is stored, never audited.

use cm_server::store::StoreError;

use crate::Db;
use crate::fixtures::{ALICE, audit_count, strings};

on_both_engines!(secrets_keep_ciphertext_out_of_the_audit,);

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
