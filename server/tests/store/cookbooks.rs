//! Cookbook versions: listing, deletion (refused while an environment
//! pins the version) and immutability of a pushed version.

use std::collections::HashSet;

use cm_model::manifest::Manifest;
use cm_server::store::{DocKind, Inserted, NewCookbookVersion, OptionalExt, StoreError};

use crate::Db;
use crate::fixtures::{ALICE, audit_count, cookbook, entry, sha256};

on_both_engines!(
    cookbook_versions_list_newest_first_and_delete_unless_pinned,
    identical_repush_is_a_noop_and_different_content_is_refused,
);

async fn cookbook_versions_list_newest_first_and_delete_unless_pinned(db: &mut Db) {
    let s = &db.store;
    for v in ["1.9.0", "1.10.0", "1.2.0"] {
        let cb = cookbook(
            "memcached",
            v,
            &[("recipes/default.yaml", v), ("metadata.yaml", "m")],
        );
        assert_eq!(
            s.insert_cookbook_version(&cb, ALICE).await.unwrap(),
            Inserted::Created
        );
    }
    let mut apache = cookbook("apache_php", "0.1.0", &[("recipes/default.yaml", "a")]);
    apache.depends.insert("memcached".into(), ">= 1.2".into());
    s.insert_cookbook_version(&apache, ALICE).await.unwrap();

    let all = s.cookbook_versions(None).await.unwrap();
    let listed: Vec<(&str, &str)> = all
        .iter()
        .map(|c| (c.name.as_str(), c.version.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("apache_php", "0.1.0"),
            ("memcached", "1.10.0"),
            ("memcached", "1.9.0"),
            ("memcached", "1.2.0")
        ]
    );
    assert_eq!(
        s.cookbook_versions(Some("memcached")).await.unwrap().len(),
        3
    );
    assert!(s.cookbook_versions(Some("nope")).await.unwrap().is_empty());

    let shown = s.cookbook_version("apache_php", "0.1.0").await.unwrap();
    assert_eq!(shown.depends["memcached"], ">= 1.2");
    assert_eq!(shown.pushed_by, ALICE);
    let stored = s.cookbook_version("memcached", "1.2.0").await.unwrap();
    let paths: Vec<&str> = stored
        .manifest
        .entries
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(
        paths,
        ["metadata.yaml", "recipes/default.yaml"],
        "manifest stored sorted"
    );
    assert!(matches!(
        s.cookbook_version("memcached", "9.9.9").await,
        Err(StoreError::NotFound(_))
    ));

    let blobs = s.referenced_blobs().await.unwrap();
    let expected: HashSet<String> = ["1.9.0", "1.10.0", "1.2.0", "m", "a"]
        .iter()
        .map(|c| sha256(c))
        .collect();
    assert_eq!(blobs, expected);

    s.put_document(
        DocKind::Environment,
        "production",
        "cookbooks:\n  memcached: = 1.9.0\n",
        ALICE,
    )
    .await
    .unwrap();
    s.put_document(DocKind::Environment, "staging", "cookbooks: {}\n", ALICE)
        .await
        .unwrap();
    // What the API layer passes: does this environment pin exactly that version?
    let pins = |version: &'static str| {
        move |env: &cm_server::store::Document| {
            env.yaml.contains(&format!("memcached: = {version}"))
        }
    };
    let err = s
        .delete_cookbook_version("memcached", "1.9.0", ALICE, pins("1.9.0"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("production") && !m.contains("staging")),
        "{err}"
    );
    assert!(s.cookbook_version("memcached", "1.9.0").await.is_ok());

    s.delete_cookbook_version("memcached", "1.10.0", ALICE, pins("1.10.0"))
        .await
        .unwrap();
    assert!(
        s.cookbook_version("memcached", "1.10.0")
            .await
            .optional()
            .unwrap()
            .is_none()
    );
    assert!(
        !s.referenced_blobs()
            .await
            .unwrap()
            .contains(&sha256("1.10.0"))
    );
    let err = s
        .delete_cookbook_version("memcached", "1.10.0", ALICE, |_| false)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    let last = &s.audit(1, None).await.unwrap()[0];
    assert_eq!(last.what, "cookbook.delete memcached 1.10.0");
    assert!(last.after_json.is_none());
}

async fn identical_repush_is_a_noop_and_different_content_is_refused(db: &mut Db) {
    let s = &db.store;
    let cb = cookbook("memcached", "1.0.0", &[("recipes/default.yaml", "v1")]);
    assert_eq!(
        s.insert_cookbook_version(&cb, ALICE).await.unwrap(),
        Inserted::Created
    );
    let audits = audit_count(s).await;
    assert_eq!(
        s.insert_cookbook_version(&cb, "bob").await.unwrap(),
        Inserted::Identical
    );
    assert_eq!(
        audit_count(s).await,
        audits,
        "an identical re-push writes no audit row"
    );
    assert_eq!(
        s.cookbook_version("memcached", "1.0.0")
            .await
            .unwrap()
            .pushed_by,
        ALICE
    );

    let changed = cookbook("memcached", "1.0.0", &[("recipes/default.yaml", "v2")]);
    let err = s
        .insert_cookbook_version(&changed, ALICE)
        .await
        .unwrap_err();
    match &err {
        StoreError::Conflict(m) => {
            assert!(
                m.contains("memcached 1.0.0 already exists with different files"),
                "{m}"
            );
            assert!(m.contains("bump the version"), "{m}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let mut redescribed = cb.clone();
    redescribed.description = "other".into();
    let err = s
        .insert_cookbook_version(&redescribed, ALICE)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("different description")),
        "{err}"
    );
    assert_eq!(audit_count(s).await, audits);

    let bad = cookbook("memcached", "1.0", &[]);
    assert!(matches!(
        s.insert_cookbook_version(&bad, ALICE).await,
        Err(StoreError::Invalid(_))
    ));
    let dup = NewCookbookVersion {
        manifest: Manifest {
            entries: vec![entry("a", "1"), entry("a", "2")],
        },
        ..cookbook("x", "1.0.0", &[])
    };
    assert!(matches!(
        s.insert_cookbook_version(&dup, ALICE).await,
        Err(StoreError::Invalid(_))
    ));
}
