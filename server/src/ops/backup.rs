//! `cm-server backup DIR`: a consistent copy of the embedded default (the
//! SQLite database, the blobs it references, the CA, the server certificate
//! and the secrets key) taken while the server keeps serving.
//!
//! Order matters. The database snapshot comes first and decides everything
//! else: the blobs copied are those its cookbook versions reference, which
//! were all stored before those versions became visible, and blobs never
//! change once written. The keys never change while a server runs. The
//! manifest comes last, so a directory without one is a backup that did not
//! finish. PostgreSQL and S3 deployments are not covered: their own tooling
//! does it better (docs/operations.md).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::files;
use super::manifest::{BackupFile, BackupManifest, FORMAT};
use super::snapshot;
use crate::blobs::{BlobError, Blobs};
use crate::pki::Ca;
use crate::serve::Config;
use crate::store::{redact_url, unix_now};

/// The database file, in a data dir and in a backup.
pub const DATABASE: &str = "cm.db";
/// The blob directory, in a data dir and in a backup.
pub const BLOBS: &str = "blobs";

/// Where the embedded default keeps what a backup copies.
struct Sources {
    data_dir: PathBuf,
    /// The CA as the server loads it (data dir, or --ca-cert/--ca-key).
    ca: Ca,
    secrets_key: PathBuf,
}

impl Sources {
    fn of(config: &Config) -> Result<Sources> {
        if let Some(url) = &config.database {
            bail!(
                "this server keeps its state in {}: cm-server backup covers the embedded \
                 default (SQLite in the data dir); back up PostgreSQL with pg_dump or its \
                 continuous archiving (docs/operations.md)",
                redact_url(url)
            );
        }
        if let Some(url) = &config.blobs {
            bail!(
                "this server keeps its blobs in {url}: cm-server backup covers the embedded \
                 default (blobs in the data dir); use the bucket's versioning or replication \
                 (docs/operations.md)"
            );
        }
        let data_dir = config.data_dir.clone();
        let ca = match (&config.ca_cert, &config.ca_key) {
            (Some(cert), Some(key)) => {
                Ca::from_pem_or_path(&cert.display().to_string(), &key.display().to_string())?
            }
            (None, None) => {
                let read = |name: &str| {
                    let path = data_dir.join(name);
                    std::fs::read_to_string(&path).with_context(|| {
                        format!(
                            "reading {}: is --data-dir the server's data dir?",
                            path.display()
                        )
                    })
                };
                Ca::from_pem(&read("ca.pem")?, &read("ca.key")?)?
            }
            _ => bail!("give both --ca-cert and --ca-key, or neither"),
        };
        let secrets_key = config
            .secrets_key
            .clone()
            .unwrap_or_else(|| data_dir.join("secrets.key"));
        Ok(Sources {
            data_dir,
            ca,
            secrets_key,
        })
    }
}

/// Back up the server `config` describes into `dest`, which must be absent
/// or empty. Returns the manifest written.
pub async fn backup(config: &Config, dest: &Path) -> Result<BackupManifest> {
    let sources = Sources::of(config)?;
    if !files::is_absent_or_empty(dest)? {
        bail!(
            "{} is not empty: a backup goes into a new or empty directory",
            dest.display()
        );
    }
    files::create_private_dir_all(dest)?;
    let written = write_backup(&sources, dest).await;
    written.with_context(|| {
        format!(
            "the backup in {} is incomplete (it has no manifest.json): remove it",
            dest.display()
        )
    })
}

async fn write_backup(sources: &Sources, dest: &Path) -> Result<BackupManifest> {
    let live = sources.data_dir.join(DATABASE);
    if !live.is_file() {
        bail!(
            "no database at {}: is --data-dir the server's data dir?",
            live.display()
        );
    }
    let created_at = unix_now();
    snapshot::take(&live, &dest.join(DATABASE)).await?;
    let mut contents = snapshot::inspect(&dest.join(DATABASE)).await?;
    copy_blobs(
        &sources.data_dir.join(BLOBS),
        &dest.join(BLOBS),
        &contents.referenced,
    )
    .await?;
    copy_keys(sources, dest)?;

    let paths = files::walk(dest)?;
    let mut entries = Vec::with_capacity(paths.len());
    for path in &paths {
        let (sha256, size) = files::hash_file(&dest.join(path))?;
        entries.push(BackupFile {
            path: path.clone(),
            sha256,
            size,
        });
    }
    files::sync_dirs_of(dest, &paths)?;
    contents
        .counts
        .insert("blobs".into(), contents.referenced.len() as u64);
    let manifest = BackupManifest {
        format: FORMAT,
        cm_version: cm_proto::VERSION.to_string(),
        created_at,
        data_dir: sources.data_dir.display().to_string(),
        ca_fingerprint: sources.ca.fingerprint(),
        counts: contents.counts,
        files: entries,
    };
    manifest.write(dest)?;
    Ok(manifest)
}

/// Copy the referenced blobs, each checked against its digest on the way
/// out of the live store and on the way into the backup.
async fn copy_blobs(
    from: &Path,
    to: &Path,
    referenced: &std::collections::BTreeSet<String>,
) -> Result<()> {
    if referenced.is_empty() {
        return Ok(());
    }
    let source = Blobs::local(from)?;
    let target = Blobs::local(to)?;
    for digest in referenced {
        let content = source.get(digest).await.map_err(|e| match e {
            BlobError::NotFound(_) => anyhow::anyhow!(
                "blob {digest}, which the database snapshot references, is gone from {}: \
                 was its cookbook version deleted and the blob collected during the backup? \
                 Run the backup again",
                from.display()
            ),
            other => anyhow::Error::new(other).context(format!("reading blob {digest}")),
        })?;
        target
            .put(digest, content)
            .await
            .with_context(|| format!("writing blob {digest} into {}", to.display()))?;
    }
    Ok(())
}

/// The CA (as loaded, so a CA given as PEM text is saved too), the server
/// certificate and key, the secrets key, and the bootstrap admin credential
/// when there is one.
fn copy_keys(sources: &Sources, dest: &Path) -> Result<()> {
    files::write(
        &dest.join("ca.pem"),
        sources.ca.cert_pem().as_bytes(),
        0o644,
    )?;
    files::write(&dest.join("ca.key"), sources.ca.key_pem().as_bytes(), 0o600)?;
    for name in ["server.pem", "server.key"] {
        files::copy_hashed(&sources.data_dir.join(name), &dest.join(name))?;
    }
    files::copy_hashed(&sources.secrets_key, &dest.join("secrets.key"))?;
    let credential = sources.data_dir.join("admin.credential");
    if credential.exists() {
        files::copy_hashed(&credential, &dest.join("admin.credential"))?;
    }
    Ok(())
}
