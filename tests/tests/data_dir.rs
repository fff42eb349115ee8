//! What the server keeps on disk: private modes whatever the umask (a data
//! dir left open is closed at start), and no partial blob left by a push
//! killed mid-upload once the server starts again.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cm_e2e::TestServer;
use nix::sys::stat::{Mode, umask};

/// A blob's digest and content.
fn content(label: &str) -> (String, Vec<u8>) {
    let bytes = format!("blob {label}").into_bytes();
    (cm_server::blobs::sha256_hex(&bytes), bytes)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Where the local store keeps a blob (`blobs/` + its key `blobs/ab/DIGEST`).
fn blob_file(data_dir: &Path, digest: &str) -> PathBuf {
    data_dir.join("blobs/blobs").join(&digest[..2]).join(digest)
}

/// Every directory and file under `dir`, with its mode.
fn modes_under(dir: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let is_dir = path.is_dir();
        found.push((path.clone(), is_dir, mode(&path)));
        if is_dir {
            found.extend(modes_under(&path));
        }
    }
    found
}

fn assert_private(data_dir: &Path) {
    assert_eq!(mode(data_dir), 0o700, "the data dir");
    for name in ["cm.db", "cm.db-wal", "cm.db-shm"] {
        let path = data_dir.join(name);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }
    let blobs = modes_under(&data_dir.join("blobs"));
    assert!(blobs.iter().any(|(_, dir, _)| !dir), "a blob was written");
    for (path, is_dir, mode) in blobs {
        let want = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_dir_database_and_blobs_are_private_under_umask_022() {
    umask(Mode::from_bits_truncate(0o022));
    let s = TestServer::start().await;
    let (digest, bytes) = content("umask");
    assert!(
        s.running
            .state
            .blobs
            .put(&digest, bytes.into())
            .await
            .unwrap()
    );
    let data_dir = s.data_dir();
    assert!(data_dir.join("cm.db-wal").exists(), "SQLite is in WAL mode");
    assert_private(&data_dir);
    s.running.stop().await;
}

/// A server that stored one blob, then stopped: its temp dir, data dir
/// and the blob's digest.
async fn stopped_server_with_a_blob(label: &str) -> (tempfile::TempDir, PathBuf, String) {
    let s = TestServer::start().await;
    let (digest, bytes) = content(label);
    s.running
        .state
        .blobs
        .put(&digest, bytes.into())
        .await
        .unwrap();
    let data_dir = s.data_dir();
    (s.stop().await, data_dir, digest)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_dir_left_open_is_closed_at_start() {
    umask(Mode::from_bits_truncate(0o022));
    let (dir, data_dir, digest) = stopped_server_with_a_blob("reopened").await;
    // As an older server (or a careless copy) left it.
    for (path, is_dir, _) in modes_under(&data_dir) {
        let open = if is_dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(open)).unwrap();
    }
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();

    let s = TestServer::start_in(dir).await;
    assert_private(&data_dir);
    assert!(s.running.state.blobs.has(&digest).await.unwrap());
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_killed_mid_upload_leaves_no_partial_blob_after_the_next_start() {
    let (dir, data_dir, kept) = stopped_server_with_a_blob("complete").await;
    // What the object store leaves when the process dies between writing
    // an upload's staged file and linking it into place.
    let (digest, bytes) = content("killed");
    let staged = {
        let file = blob_file(&data_dir, &digest);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let mut name = file.into_os_string();
        name.push("#1");
        PathBuf::from(name)
    };
    std::fs::write(&staged, &bytes[..bytes.len() / 2]).unwrap();

    let s = TestServer::start_in(dir).await;
    assert!(!staged.exists(), "{} is still there", staged.display());
    assert!(!s.running.state.blobs.has(&digest).await.unwrap());
    assert!(
        s.running.state.blobs.has(&kept).await.unwrap(),
        "complete blobs stay"
    );
    // The upload, sent again, completes under its own name.
    assert!(
        s.running
            .state
            .blobs
            .put(&digest, bytes.into())
            .await
            .unwrap()
    );
    s.running.stop().await;
}
