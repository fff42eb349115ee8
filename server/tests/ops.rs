//! Housekeeping on a real store and blob store: garbage collection
//! deletes only old unreferenced blobs, a collected blob a version still
//! needs is put back, and run retention prunes by age. On SQLite with a
//! local blob directory, and on PostgreSQL with an S3 bucket of its own
//! (`scripts/with-postgres.sh scripts/with-s3.sh`; under CI those variants
//! fail without them).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cm_model::manifest::{Manifest, ManifestEntry};
use cm_server::blobs::{Blobs, sha256_hex};
use cm_server::ops::gc::{GcReport, collect_garbage, ensure_stored};
use cm_server::ops::maintenance::{self, Maintenance};
use cm_server::store::{NewCookbookVersion, NodeEnrollment, RunRow, Store, unix_now};

const HOUR: Duration = Duration::from_secs(3600);

struct Server {
    /// SQLite and local blobs: the temp dir holding both.
    dir: Option<tempfile::TempDir>,
    store: Store,
    blobs: Blobs,
    /// PostgreSQL: the database made for this test.
    pg: Option<support::PgDatabase>,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/cm.db", dir.path().display()))
        .await
        .unwrap();
    let blobs = Blobs::local(&dir.path().join("blobs")).unwrap();
    Server {
        dir: Some(dir),
        store,
        blobs,
        pg: None,
    }
}

/// A database and a bucket of their own: the collector deletes whatever no
/// version in its database references, so it may not share a bucket.
async fn server_on_postgres_and_s3(label: &str) -> Option<Server> {
    let options = support::s3_bucket_of_its_own(label)?;
    let pg = support::PgDatabase::create(label).await?;
    Some(Server {
        dir: None,
        store: Store::open(&pg.url).await.unwrap(),
        blobs: Blobs::s3(options).unwrap(),
        pg: Some(pg),
    })
}

impl Server {
    async fn blob(&self, content: &str) -> String {
        let digest = sha256_hex(content.as_bytes());
        self.blobs
            .put(&digest, Bytes::from(content.to_string()))
            .await
            .unwrap();
        digest
    }

    async fn close(self) {
        self.store.close().await;
        if let Some(pg) = self.pg {
            pg.drop().await;
        }
    }

    /// Pretend the blob was written `age` ago (local blobs only: S3 keeps
    /// the upload time).
    fn age(&self, digest: &str, age: Duration) {
        let path = self
            .dir
            .as_ref()
            .expect("local blobs")
            .path()
            .join("blobs/blobs")
            .join(&digest[..2])
            .join(digest);
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    async fn push(&self, name: &str, files: &[(&str, &str)]) {
        let entries = files
            .iter()
            .map(|(path, content)| ManifestEntry {
                path: path.to_string(),
                sha256: sha256_hex(content.as_bytes()),
                size: content.len() as u64,
                mode: 0o644,
            })
            .collect();
        let version = NewCookbookVersion {
            name: name.into(),
            version: "1.0.0".into(),
            description: String::new(),
            depends: BTreeMap::new(),
            manifest: Manifest { entries },
            min_agent: "0.1.0".into(),
            cluster: Default::default(),
        };
        self.store
            .insert_cookbook_version(&version, "admin")
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn gc_deletes_old_unreferenced_blobs_and_keeps_referenced_and_fresh_ones() {
    let s = server().await;
    let referenced = s.blob("in a version").await;
    let orphan = s.blob("left by a deleted version").await;
    let pushing = s.blob("uploaded by a push in progress").await;
    s.push("kept", &[("recipes/default.yaml", "in a version")])
        .await;
    s.age(&referenced, 2 * HOUR);
    s.age(&orphan, 2 * HOUR);

    let report = collect_garbage(&s.store, &s.blobs, HOUR).await.unwrap();
    assert_eq!(
        report,
        GcReport {
            stored: 3,
            referenced: 1,
            recent: 1,
            deleted: 1,
            deleted_bytes: "left by a deleted version".len() as u64,
            restored: 0,
            skipped: 0,
        }
    );
    assert!(s.blobs.has(&referenced).await.unwrap());
    assert!(!s.blobs.has(&orphan).await.unwrap());
    assert!(s.blobs.has(&pushing).await.unwrap());

    // Once the push's grace period is over and it never committed, it goes too.
    s.age(&pushing, 2 * HOUR);
    let again = collect_garbage(&s.store, &s.blobs, HOUR).await.unwrap();
    assert_eq!((again.deleted, again.referenced), (1, 1));
    assert_eq!(s.blobs.list().await.unwrap(), [referenced]);
}

/// GC on PostgreSQL and S3: S3 keeps the upload time, which cannot be set
/// back, so the grace period moves instead of the blobs' age.
#[tokio::test]
async fn gc_on_postgres_and_s3_deletes_only_unreferenced_blobs_past_the_grace_period() {
    let Some(s) = server_on_postgres_and_s3("gc").await else {
        return;
    };
    let referenced = s.blob("in a version").await;
    let orphan = s.blob("left by a deleted version").await;
    s.push("kept", &[("recipes/default.yaml", "in a version")])
        .await;

    // Both are younger than an hour: the orphan may be a push in progress.
    let fresh = collect_garbage(&s.store, &s.blobs, HOUR).await.unwrap();
    assert_eq!(
        fresh,
        GcReport {
            stored: 2,
            referenced: 1,
            recent: 1,
            ..GcReport::default()
        }
    );
    assert!(s.blobs.has(&orphan).await.unwrap());

    // With no grace period the orphan is old enough; the referenced blob stays.
    let report = collect_garbage(&s.store, &s.blobs, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        report,
        GcReport {
            stored: 2,
            referenced: 1,
            deleted: 1,
            deleted_bytes: "left by a deleted version".len() as u64,
            ..GcReport::default()
        }
    );
    assert_eq!(s.blobs.list().await.unwrap(), [referenced]);
    s.close().await;
}

async fn a_committed_version_puts_back_a_blob_collected_under_it(s: Server) {
    let content = Bytes::from_static(b"reused by a push");
    let digest = s.blob("reused by a push").await;
    // The collector deleted it after the commit had read it.
    s.blobs.delete(&digest).await.unwrap();
    let put = ensure_stored(&s.blobs, &[(digest.clone(), content.clone())])
        .await
        .unwrap();
    assert_eq!(put, 1);
    assert_eq!(s.blobs.get(&digest).await.unwrap(), content);
    // Present blobs are left alone.
    assert_eq!(
        ensure_stored(&s.blobs, &[(digest, content)]).await.unwrap(),
        0
    );
    s.close().await;
}

#[tokio::test]
async fn a_committed_version_puts_back_a_blob_collected_under_it_locally() {
    a_committed_version_puts_back_a_blob_collected_under_it(server().await).await;
}

#[tokio::test]
async fn a_committed_version_puts_back_a_blob_collected_under_it_on_s3() {
    if let Some(s) = server_on_postgres_and_s3("putback").await {
        a_committed_version_puts_back_a_blob_collected_under_it(s).await;
    }
}

#[tokio::test]
async fn listed_blobs_carry_their_size_and_age() {
    let s = server().await;
    let digest = s.blob("twelve bytes").await;
    s.age(&digest, 3 * HOUR);
    let listed = s.blobs.list_with_age().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].digest.as_str(), listed[0].size), (&*digest, 12));
    let age = SystemTime::now()
        .duration_since(listed[0].last_modified)
        .unwrap();
    assert!(age > 2 * HOUR && age < 4 * HOUR, "{age:?}");
}

/// The same on a real S3 API (scripts/with-s3.sh): S3 reports the upload
/// time, which cannot be set.
#[tokio::test]
async fn s3_lists_blobs_with_their_upload_time() {
    let Some(options) = support::s3_options() else {
        return;
    };
    let blobs = Blobs::s3(options).unwrap();
    let mut nonce = [0u8; 16];
    rand::fill(&mut nonce);
    let content = Bytes::from(format!("listed with age {}", hex::encode(nonce)));
    let digest = sha256_hex(&content);
    blobs.put(&digest, content.clone()).await.unwrap();
    let listed = blobs.list_with_age().await.unwrap();
    let blob = listed.iter().find(|b| b.digest == digest).expect("listed");
    assert_eq!(blob.size, content.len() as u64);
    let skew = match SystemTime::now().duration_since(blob.last_modified) {
        Ok(age) => age,
        Err(ahead) => ahead.duration(),
    };
    assert!(skew < Duration::from_secs(300), "{skew:?}");
    blobs.delete(&digest).await.unwrap();
}

fn run(node: &str, at: i64) -> RunRow {
    RunRow {
        node: node.into(),
        at,
        status: "success".into(),
        cause: "new_plan".into(),
        ..RunRow::default()
    }
}

async fn retention_prunes_old_runs_and_keeps_new_ones(s: Server) {
    let now = unix_now();
    s.store
        .enroll_node(
            &NodeEnrollment {
                name: "web-1".into(),
                facts_json: r#"{"hostname": "web-1", "ipaddress": "10.0.0.1"}"#.into(),
                cert_serial: "01".into(),
                cert_expires_at: now + 86400,
                now,
            },
            "production",
            &[],
            "admin",
        )
        .await
        .unwrap();
    let day = 86400;
    for age_days in [45, 31, 29, 1, 0] {
        s.store
            .insert_run(&run("web-1", now - age_days * day))
            .await
            .unwrap();
    }
    let config = Maintenance {
        keep_runs: Duration::from_secs(30 * 86400),
        ..Maintenance::default()
    };
    let report = maintenance::run_once(&s.store, &s.blobs, &config).await;
    assert_eq!(report.runs_pruned, Some(2));
    let left: Vec<i64> = s
        .store
        .runs(Some("web-1"), 100)
        .await
        .unwrap()
        .iter()
        .map(|r| (now - r.at) / day)
        .collect();
    assert_eq!(left, [0, 1, 29]);
    // The node keeps its last run summary whatever is pruned.
    let node = s.store.node("web-1").await.unwrap();
    assert!(node.last_run.is_some());
    assert_eq!(
        maintenance::run_once(&s.store, &s.blobs, &config)
            .await
            .runs_pruned,
        Some(0)
    );
    s.close().await;
}

#[tokio::test]
async fn retention_prunes_old_runs_and_keeps_new_ones_on_sqlite() {
    retention_prunes_old_runs_and_keeps_new_ones(server().await).await;
}

#[tokio::test]
async fn retention_prunes_old_runs_and_keeps_new_ones_on_postgres() {
    if let Some(s) = server_on_postgres_and_s3("retention").await {
        retention_prunes_old_runs_and_keeps_new_ones(s).await;
    }
}

/// The snapshot helper refuses a database that is not there rather than
/// creating an empty one.
#[tokio::test]
async fn a_snapshot_of_a_missing_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        cm_server::ops::snapshot::take(&dir.path().join("absent.db"), &dir.path().join("copy.db"))
            .await
            .unwrap_err();
    assert!(format!("{err:#}").contains("absent.db"), "{err:#}");
    assert!(!Path::new(&dir.path().join("absent.db")).exists());
}
