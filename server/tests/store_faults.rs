//! The store under faults, with the real engines: SQLite on a full disk (a
//! small tmpfs, so this runs as root; under `CI=true` a mount that fails is
//! a failure, elsewhere the test says so and passes) and locked by another
//! process; PostgreSQL gone away (behind a TCP relay the test cuts) and
//! PostgreSQL not answering a statement (it waits on a lock another
//! connection holds); these need `CM_TEST_POSTGRES_URL`, as
//! `scripts/with-postgres.sh` sets.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cm_server::store::{Store, StoreError};
use sqlx::{Connection, Row};

/// A tmpfs of `size` mounted on a temp dir, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            other => {
                cm_model::testing::require(
                    false,
                    &format!("mounting a tmpfs (root needed): {other:?}"),
                );
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Write zeros to `path` until the file system is full.
fn fill(path: &Path) -> PathBuf {
    use std::io::Write;
    let filler = path.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while file.write_all(&chunk).is_ok() {}
    // The last partial chunk may fit byte by byte.
    while file.write_all(&[0]).is_ok() {}
    let _ = file.sync_all();
    filler
}

/// The status an agent or admin gets for `err`: UNAVAILABLE, `cm-cause:
/// database`, as `api::status` says.
fn unavailable_for_the_database(err: StoreError) -> tonic::Status {
    let status = cm_server::api::status::status(err);
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(
        status.metadata().get(cm_proto::STATUS_CAUSE).unwrap(),
        "database",
        "{status:?}"
    );
    status
}

async fn put(store: &Store, name: &str) -> Result<(), StoreError> {
    let sealed = vec![7u8; 256 << 10];
    store
        .put_secret(name, &sealed, &["web".to_string()], "alice")
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_work_again_once_a_full_disk_has_room() {
    let Some(tmpfs) = Tmpfs::mount("32m") else {
        return;
    };
    let url = format!("sqlite://{}/cm.db", tmpfs.path().display());
    let store = Store::open(&url).await.unwrap();
    put(&store, "before").await.unwrap();

    let filler = fill(tmpfs.path());
    let mut refused = 0;
    for i in 0..8 {
        if let Err(e) = put(&store, &format!("full-{i}")).await {
            assert!(matches!(e, StoreError::Database(_)), "{e}");
            refused += 1;
        }
    }
    assert!(refused > 0, "no write failed on a full disk");

    std::fs::remove_file(filler).unwrap();
    for i in 0..8 {
        put(&store, &format!("after-{i}"))
            .await
            .unwrap_or_else(|e| panic!("write {i} after the disk has room again: {e}"));
    }
    let names: Vec<String> = store
        .secrets()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(names.contains(&"after-7".to_string()), "{names:?}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_another_process_holds_locked_fails_writes_fast() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cm.db");
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    put(&store, "before").await.unwrap();

    // Another process takes the write lock and keeps it 5 s: longer than
    // the store waits for a foreign lock (2 s), shorter than it used to (10 s).
    let mut holder = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN IMMEDIATE')\n\
             print('locked', flush=True)\n\
             time.sleep(5)\n",
        )
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
    }

    let err = put(&store, "while-locked")
        .await
        .expect_err("the write fails while the other process holds the lock");
    let status = unavailable_for_the_database(err);
    assert!(status.message().contains("locked"), "{}", status.message());
    let _ = holder.kill();
    let _ = holder.wait();

    put(&store, "after").await.unwrap();
    store.close().await;
}

/// Relay `127.0.0.1:PORT` to `target` until the returned sender is dropped
/// or sent to; then every relayed connection is cut and new ones refused.
async fn relay(target: std::net::SocketAddr) -> (u16, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (cut, cut_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut accept_cut = cut_rx.clone();
        loop {
            let (mut client, _) = tokio::select! {
                _ = accept_cut.wait_for(|c| *c) => return,
                accepted = listener.accept() => accepted.unwrap(),
            };
            let mut conn_cut = cut_rx.clone();
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(target).await.unwrap();
                tokio::select! {
                    _ = conn_cut.wait_for(|c| *c) => {}
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                }
            });
        }
    });
    (port, cut)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgresql_gone_away_is_unavailable_with_its_cause() {
    let base = std::env::var("CM_TEST_POSTGRES_URL").unwrap_or_default();
    if !cm_model::testing::require(
        !base.is_empty(),
        "CM_TEST_POSTGRES_URL names a PostgreSQL (scripts/with-postgres.sh)",
    ) {
        return;
    }
    let url = url_of(&base);
    let target = format!("{}:{}", url.0, url.1).parse().unwrap();
    let (port, cut) = relay(target).await;
    let through = base.replacen(
        &format!("{}:{}", url.0, url.1),
        &format!("127.0.0.1:{port}"),
        1,
    );
    let store = Store::open(&through).await.unwrap();
    store
        .audit(10, None)
        .await
        .expect("reads through the relay");

    cut.send(true).unwrap();
    let err = store
        .audit(10, None)
        .await
        .expect_err("the database is gone");
    unavailable_for_the_database(err);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgresql_that_does_not_answer_fails_the_call_in_time() {
    let Some(db) = support::PgDatabase::create("silent").await else {
        return;
    };
    let store = Store::open(&db.url).await.unwrap();
    put(&store, "before").await.unwrap();

    // Another session holds the table: every statement reading it waits,
    // on a connection that stays up, as on a stopped database.
    let mut holder = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let mut holding = holder.begin().await.unwrap();
    sqlx::query("LOCK TABLE secrets IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holding)
        .await
        .unwrap();
    let err = store
        .secrets()
        .await
        .expect_err("a statement nobody answers ends");
    let status = unavailable_for_the_database(err);
    assert!(
        status.message().contains("did not answer in time"),
        "{status:?}"
    );
    // PostgreSQL cancels what the store gave up on (its statement_timeout),
    // so no statement of the store still waits on the lock: without it, one
    // would until the lock goes. Migrations ran without the timeout.
    let timeout: String = sqlx::query("SHOW statement_timeout")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(timeout, "16s");
    let mut watcher = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let waiting_on_locks = "SELECT COUNT(*) FROM pg_stat_activity \
        WHERE wait_event_type = 'Lock' AND datname = current_database()";
    let hang = std::time::Instant::now();
    loop {
        let waiting: i64 = sqlx::query(waiting_on_locks)
            .fetch_one(&mut watcher)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        if waiting == 0 {
            break;
        }
        assert!(
            hang.elapsed() < std::time::Duration::from_secs(60),
            "a statement the store gave up on still waits on the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    watcher.close().await.unwrap();

    // Once the database answers again, so does the store.
    holding.rollback().await.unwrap();
    holder.close().await.unwrap();
    put(&store, "after").await.unwrap();
    let names: Vec<_> = store
        .secrets()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["after", "before"]);
    store.close().await;
    db.drop().await;
}

/// The host and port of a `postgres://user:pass@host:port/db` URL.
fn url_of(url: &str) -> (String, u16) {
    let rest = url.rsplit('@').next().unwrap();
    let authority = rest.split('/').next().unwrap();
    let (host, port) = authority.rsplit_once(':').unwrap();
    (host.to_string(), port.parse().unwrap())
}
