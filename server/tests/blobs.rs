//! The blob store, on a temp directory always and on a real S3 server when
//! `CM_TEST_S3_ENDPOINT` and `CM_TEST_S3_BUCKET` are set (scripts/with-s3.sh
//! sets them; under CI a test fails without them). Each test uses content of
//! its own, so tests can share one bucket and run in parallel.

mod support;

use bytes::Bytes;
use cm_server::blobs::{BlobError, Blobs, S3Options, sha256_hex};

/// Content no other test (or earlier run against the same bucket) uses.
fn unique(label: &str) -> (String, Bytes) {
    let mut nonce = [0u8; 16];
    rand::fill(&mut nonce);
    let content = Bytes::from(format!("{label} {}", hex::encode(nonce)));
    (sha256_hex(&content), content)
}

fn s3() -> Option<Blobs> {
    let options = support::s3_options()?;
    Some(Blobs::s3(options).expect("the test S3 store configures"))
}

/// Runs `check` on a local store, then on S3 when one is configured.
async fn on_every_store<F, Fut>(check: F)
where
    F: Fn(Blobs) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let tmp = tempfile::tempdir().unwrap();
    check(Blobs::local(&tmp.path().join("blobs")).unwrap()).await;
    if let Some(blobs) = s3() {
        check(blobs).await;
    }
}

#[tokio::test]
async fn put_then_get_has_list_and_delete() {
    on_every_store(|blobs| async move {
        let (digest, content) = unique("round trip");
        assert!(!blobs.has(&digest).await.unwrap());
        assert!(
            blobs.put(&digest, content.clone()).await.unwrap(),
            "first put stores"
        );
        assert!(blobs.has(&digest).await.unwrap());
        assert_eq!(blobs.get(&digest).await.unwrap(), content);
        assert!(blobs.list().await.unwrap().contains(&digest));

        blobs.delete(&digest).await.unwrap();
        assert!(!blobs.has(&digest).await.unwrap());
        assert!(matches!(
            blobs.get(&digest).await,
            Err(BlobError::NotFound(_))
        ));
        blobs.delete(&digest).await.unwrap();
        assert!(!blobs.list().await.unwrap().contains(&digest));
    })
    .await;
}

#[tokio::test]
async fn content_that_does_not_match_its_digest_is_refused() {
    on_every_store(|blobs| async move {
        let (digest, _) = unique("announced");
        let (actual, other_content) = unique("sent");
        let err = blobs.put(&digest, other_content).await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&digest) && message.contains(&actual),
            "{message}"
        );
        assert!(!blobs.has(&digest).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn concurrent_identical_uploads_all_succeed_and_store_once() {
    on_every_store(|blobs| async move {
        let (digest, content) = unique("concurrent");
        let uploads = (0..8).map(|_| {
            let (blobs, digest, content) = (blobs.clone(), digest.clone(), content.clone());
            tokio::spawn(async move { blobs.put(&digest, content).await })
        });
        let results = futures::future::join_all(uploads).await;
        let stored = results
            .into_iter()
            .map(|r| r.unwrap().expect("every identical upload succeeds"))
            .filter(|stored| *stored)
            .count();
        assert_eq!(stored, 1, "exactly one upload wrote the object");
        assert!(
            !blobs.put(&digest, content.clone()).await.unwrap(),
            "re-upload is a no-op"
        );
        assert_eq!(blobs.get(&digest).await.unwrap(), content);
    })
    .await;
}

#[tokio::test]
async fn missing_reports_only_absent_digests_in_order_once() {
    on_every_store(|blobs| async move {
        let stored: Vec<_> = (0..5).map(|i| unique(&format!("stored {i}"))).collect();
        for (digest, content) in &stored {
            blobs.put(digest, content.clone()).await.unwrap();
        }
        let absent: Vec<String> = (0..40).map(|i| unique(&format!("absent {i}")).0).collect();
        let mut asked: Vec<String> = Vec::new();
        for (i, digest) in absent.iter().enumerate() {
            asked.push(digest.clone());
            if let Some((stored, _)) = stored.get(i) {
                asked.push(stored.clone());
            }
        }
        asked.push(absent[0].clone());
        assert_eq!(blobs.missing(&asked).await.unwrap(), absent);
        assert!(blobs.missing(&[]).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn invalid_digests_are_refused_before_touching_the_store() {
    on_every_store(|blobs| async move {
        let (good, content) = unique("valid");
        for bad in [
            "../../../etc/passwd",
            "",
            &good.to_uppercase(),
            &good[..60],
            "blobs/ab/cd",
        ] {
            assert!(
                matches!(blobs.has(bad).await, Err(BlobError::InvalidDigest(_))),
                "{bad:?}"
            );
            assert!(matches!(
                blobs.get(bad).await,
                Err(BlobError::InvalidDigest(_))
            ));
            assert!(matches!(
                blobs.delete(bad).await,
                Err(BlobError::InvalidDigest(_))
            ));
            assert!(matches!(
                blobs.put(bad, content.clone()).await,
                Err(BlobError::InvalidDigest(_))
            ));
            let asked = vec![good.clone(), bad.to_string()];
            assert!(matches!(
                blobs.missing(&asked).await,
                Err(BlobError::InvalidDigest(_))
            ));
        }
    })
    .await;
}

#[tokio::test]
async fn local_blobs_live_under_a_fanned_out_key_and_corruption_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let blobs = Blobs::local(tmp.path()).unwrap();
    assert!(blobs.list().await.unwrap().is_empty());
    let (digest, content) = unique("on disk");
    blobs.put(&digest, content).await.unwrap();
    let file = tmp.path().join("blobs").join(&digest[..2]).join(&digest);
    assert!(file.is_file(), "{} missing", file.display());

    std::fs::write(&file, b"bit rot").unwrap();
    let err = blobs.get(&digest).await.unwrap_err();
    assert!(matches!(err, BlobError::Corrupted { .. }), "{err}");
    assert!(err.to_string().contains(&sha256_hex(b"bit rot")), "{err}");

    // Stray files are not blobs.
    std::fs::write(
        tmp.path()
            .join("blobs")
            .join(&digest[..2])
            .join("notes.txt"),
        b"x",
    )
    .unwrap();
    std::fs::create_dir_all(tmp.path().join("blobs/zz")).unwrap();
    std::fs::write(tmp.path().join("blobs/zz").join(&digest), b"x").unwrap();
    assert_eq!(blobs.list().await.unwrap(), vec![digest]);
}

#[tokio::test]
async fn s3_store_reports_corruption_written_behind_its_back() {
    let Some(options) = support::s3_options() else {
        return;
    };
    let blobs = Blobs::s3(options.clone()).unwrap();
    use object_store::{ObjectStoreExt, PutPayload, aws::AmazonS3Builder, path::Path};
    let (digest, _) = unique("s3 corrupted");
    let raw = AmazonS3Builder::from_env()
        .with_bucket_name(options.bucket)
        .with_endpoint(options.endpoint.unwrap())
        .with_allow_http(true)
        .build()
        .unwrap();
    let key = Path::from(format!("blobs/{}/{digest}", &digest[..2]));
    raw.put(&key, PutPayload::from_static(b"bit rot"))
        .await
        .unwrap();
    assert!(matches!(
        blobs.get(&digest).await,
        Err(BlobError::Corrupted { .. })
    ));
    blobs.delete(&digest).await.unwrap();
}

#[test]
fn plain_http_to_a_remote_endpoint_is_refused_unless_allowed() {
    let options = S3Options {
        bucket: "b".into(),
        endpoint: Some("http://s3.example.com".into()),
        region: Some("us-east-1".into()),
        access_key_id: Some("k".into()),
        secret_access_key: Some("s".into()),
        allow_http: false,
    };
    let err = Blobs::s3(options.clone()).unwrap_err();
    assert!(err.to_string().contains("plain HTTP"), "{err}");
    Blobs::s3(S3Options {
        allow_http: true,
        ..options.clone()
    })
    .unwrap();
    Blobs::s3(S3Options {
        endpoint: Some("http://127.0.0.1:9000".into()),
        ..options.clone()
    })
    .unwrap();
    assert!(
        Blobs::s3(S3Options {
            bucket: String::new(),
            ..options
        })
        .is_err()
    );
}
