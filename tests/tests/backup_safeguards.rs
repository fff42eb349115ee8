//! The safeguards of `cm-server backup` that docs/operations.md promises,
//! on a real server's data dir: a backup is as private as the data dir; it
//! refuses a server whose state lives in PostgreSQL or S3 (naming where,
//! without a password) and writes nothing; and a blob rotten in the live
//! store fails the backup, which is left without a manifest, as unfinished.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use cm_e2e::TestServer;
use cm_e2e::agent::{cmctl, demo_cookbook};

/// `cm-server --data-dir DATA_DIR [OPTIONS] backup DIR`, as an operator runs it.
async fn backup(data_dir: &Path, options: &[&str], dir: &Path) -> Output {
    let mut command = std::process::Command::new(cm_e2e::bin("cm-server"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(options)
        .arg("backup")
        .arg(dir)
        .env("CM_LOG", "warn");
    tokio::task::spawn_blocking(move || command.output().expect("cm-server runs"))
        .await
        .expect("the command ran")
}

fn stderr_of_failed(out: &Output) -> String {
    assert!(!out.status.success(), "it succeeded: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_is_private_and_refuses_what_it_does_not_cover() {
    let server = TestServer::start().await;
    let books = tempfile::tempdir().unwrap();
    let demo = demo_cookbook(books.path(), "1.0.0");
    cmctl(&server, &["push", "cookbook", demo.to_str().unwrap()]).await;
    let work = tempfile::tempdir().unwrap();
    let data_dir = server.data_dir();

    // As secret as the data dir.
    let taken = work.path().join("taken");
    let out = backup(&data_dir, &[], &taken).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&taken), 0o700);
    for secret in [
        "cm.db",
        "ca.key",
        "server.key",
        "secrets.key",
        "admin.credential",
    ] {
        assert_eq!(mode(&taken.join(secret)), 0o600, "{secret}");
    }

    // State elsewhere is not the embedded default: refused, nothing written.
    let refusals = [
        (
            ["--database", "postgres://cm:hunter2@db.internal/cm"],
            "back up PostgreSQL with pg_dump",
        ),
        (
            ["--blobs", "s3://cm-blobs"],
            "use the bucket's versioning or replication",
        ),
    ];
    for (options, advice) in refusals {
        let dir = work.path().join("elsewhere");
        let error = stderr_of_failed(&backup(&data_dir, &options, &dir).await);
        assert!(error.contains(advice), "{options:?}: {error}");
        assert!(error.contains("covers the embedded default"), "{error}");
        assert!(!error.contains("hunter2"), "the password is shown: {error}");
        assert!(
            !dir.exists(),
            "{options:?}: the refused backup wrote {dir:?}"
        );
    }

    // A blob rotten in the live store: the backup fails and stays unfinished.
    let stored = server.blob_files();
    std::fs::write(&stored[0], "rotten").unwrap();
    let rotten = work.path().join("rotten");
    let error = stderr_of_failed(&backup(&data_dir, &[], &rotten).await);
    assert!(error.contains("is corrupted in the store"), "{error}");
    assert!(
        error.contains("is incomplete (it has no manifest.json): remove it"),
        "{error}"
    );
    assert!(!rotten.join("manifest.json").exists());
}
