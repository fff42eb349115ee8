//! Shared by the server's integration tests: the PostgreSQL cluster and the
//! S3 API that the test command's wrappers start (`scripts/with-postgres.sh
//! scripts/with-s3.sh`, as scripts/test.sh runs them), and [`require`] for a
//! test that cannot run without them.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};

use cm_server::blobs::S3Options;
use sqlx::{AssertSqlSafe, Connection};

pub use cm_model::testing::require;

/// The variable `name` that `script` exports, or None when the test is to do nothing.
fn required_var(name: &str, script: &str) -> Option<String> {
    let value = std::env::var(name).ok().filter(|v| !v.is_empty());
    require(
        value.is_some(),
        &format!("{name} is not set: run the test under {script}"),
    )
    .then_some(value)
    .flatten()
}

/// The PostgreSQL cluster's URL (`CM_TEST_POSTGRES_URL`).
pub fn postgres_url() -> Option<String> {
    required_var("CM_TEST_POSTGRES_URL", "scripts/with-postgres.sh")
}

/// The shared test bucket on the S3 API (`CM_TEST_S3_ENDPOINT`,
/// `CM_TEST_S3_BUCKET`): tests sharing it use content of their own.
pub fn s3_options() -> Option<S3Options> {
    let endpoint = required_var("CM_TEST_S3_ENDPOINT", "scripts/with-s3.sh")?;
    let bucket = required_var("CM_TEST_S3_BUCKET", "scripts/with-s3.sh")?;
    Some(S3Options {
        bucket,
        endpoint: Some(endpoint),
        ..S3Options::default()
    })
}

/// A bucket of its own on the S3 API, for a test that deletes what it did
/// not write (garbage collection). The S3 server of the tests (moto) checks
/// no signatures, so a plain PUT creates it, as scripts/with-s3.sh does.
pub fn s3_bucket_of_its_own(label: &str) -> Option<S3Options> {
    let shared = s3_options()?;
    let endpoint = shared
        .endpoint
        .clone()
        .expect("s3_options sets the endpoint");
    let bucket = format!("cm-{label}-{}-{}", std::process::id(), next());
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(address)
        .unwrap_or_else(|e| panic!("the S3 API at {endpoint}: {e}"));
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "creating bucket {bucket}: {answer}"
    );
    Some(S3Options { bucket, ..shared })
}

/// A database of its own in the PostgreSQL cluster, dropped by [`PgDatabase::drop`].
pub struct PgDatabase {
    pub url: String,
    base: String,
    name: String,
}

impl PgDatabase {
    /// `label` goes into its name: a letter first, then letters, digits and `_`.
    pub async fn create(label: &str) -> Option<PgDatabase> {
        let base = postgres_url()?;
        let name = format!("cm_test_{}_{}_{label}", std::process::id(), next());
        sqlx::any::install_default_drivers();
        let mut admin = sqlx::AnyConnection::connect(&base).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}dbname={name}");
        Some(PgDatabase { url, base, name })
    }

    /// Drop the database and whatever connections are still open to it.
    pub async fn drop(self) {
        let mut admin = sqlx::AnyConnection::connect(&self.base).await.unwrap();
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        admin.close().await.unwrap();
    }
}

/// A number no other call in this process got: several tests share one cluster.
fn next() -> u32 {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}
