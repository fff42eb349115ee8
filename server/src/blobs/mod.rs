//! The content-addressed blob store: cookbook files stored under their
//! SHA-256, in a local directory (the embedded default) or an S3 bucket
//! (replicas), behind one type.
//!
//! Keys are `blobs/ab/abcdef...` (the first two hex digits fan the
//! directory out). A digest is checked to be 64 lowercase hex digits before
//! any path is built, so no input can name another object. Content is
//! hashed on the way in (a mismatch is refused) and on the way out (a
//! corrupted store is an error, never bad data handed to an agent).
//! Uploads use `PutMode::Create`: two identical concurrent uploads both
//! succeed and the object is written once.
//!
//! A local directory is private: directories 0700 and blobs 0600 whatever
//! the umask; [`local_dir::tidy`] closes older ones and removes what killed
//! uploads left, at start.
//!
//! This module knows nothing of cookbooks or of who may read a blob.

pub mod local_dir;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use sha2::{Digest, Sha256};

/// How many existence checks [`Blobs::missing`] runs at once: enough to
/// hide S3 latency, few enough not to flood it.
const CONCURRENT_CHECKS: usize = 16;
const PREFIX: &str = "blobs";

/// What can go wrong storing or fetching a blob.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid digest {0:?}: expected 64 lowercase hex digits (sha256)")]
    InvalidDigest(String),
    #[error("content does not match its digest: announced {expected}, content hashes to {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("blob {0} is not in the store")]
    NotFound(String),
    #[error("blob {digest} is corrupted in the store: its content hashes to {actual}")]
    Corrupted { digest: String, actual: String },
    #[error("blob store configuration: {0}")]
    Config(String),
    #[error("blob store: {0}")]
    Store(#[from] object_store::Error),
}

/// Where an S3 blob store lives. Unset credentials and region come from the
/// usual `AWS_*` variables, then from the instance's role.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    pub bucket: String,
    /// A custom endpoint (an S3-compatible server); AWS when `None`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow `http://` endpoints. Loopback endpoints are always allowed,
    /// since their traffic never leaves the machine.
    pub allow_http: bool,
}

/// The blob store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store, whose new files get private modes.
    local: Option<PathBuf>,
}

impl Blobs {
    /// Blobs in a local directory, created if missing. Writes are fsynced
    /// (off by default in object_store, decisions.md, "object_store for
    /// blobs"): a blob a cookbook version refers to must survive a power cut.
    pub fn local(dir: &Path) -> Result<Blobs, BlobError> {
        crate::data_dir::ensure_private_dir(dir)
            .map_err(|e| BlobError::Config(format!("cannot create blob directory: {e}")))?;
        let store = LocalFileSystem::new_with_prefix(dir)?.with_fsync(true);
        Ok(Blobs {
            store: Arc::new(store),
            local: Some(dir.to_path_buf()),
        })
    }

    /// Blobs in an S3 bucket (or an S3-compatible server at `endpoint`).
    pub fn s3(options: S3Options) -> Result<Blobs, BlobError> {
        if options.bucket.is_empty() {
            return Err(BlobError::Config("the S3 bucket name is empty".into()));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&options.bucket);
        if let Some(endpoint) = &options.endpoint {
            let is_http = url::Url::parse(endpoint).is_ok_and(|u| u.scheme() == "http");
            if is_http && !options.allow_http && !is_loopback_url(endpoint) {
                return Err(BlobError::Config(format!(
                    "S3 endpoint {endpoint} is plain HTTP: use https, or allow http explicitly"
                )));
            }
            builder = builder.with_endpoint(endpoint).with_allow_http(is_http);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &options.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &options.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        Ok(Blobs {
            store: Arc::new(builder.build()?),
            local: None,
        })
    }

    /// Stores `content` under `digest` after checking that it hashes to
    /// it. Returns `true` when this call wrote it, `false` when it was
    /// already there (which is success: content-addressed writes are
    /// idempotent).
    pub async fn put(&self, digest: &str, content: Bytes) -> Result<bool, BlobError> {
        let path = blob_path(digest)?;
        let actual = sha256_hex(&content);
        if actual != digest {
            return Err(BlobError::DigestMismatch {
                expected: digest.to_string(),
                actual,
            });
        }
        let options = PutOptions::from(PutMode::Create);
        match self
            .store
            .put_opts(&path, PutPayload::from_bytes(content), options)
            .await
        {
            Ok(_) => {
                self.make_private(&path)?;
                Ok(true)
            }
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The object store creates files and directories with the umask's
    /// modes; a local blob and its fan-out directory are closed here.
    fn make_private(&self, path: &StorePath) -> Result<(), BlobError> {
        let Some(root) = &self.local else {
            return Ok(());
        };
        let file = root.join(path.as_ref());
        let mode_error = |e: crate::data_dir::ModeError| BlobError::Config(e.to_string());
        crate::data_dir::set_mode(&file, crate::data_dir::FILE_MODE).map_err(mode_error)?;
        for dir in file.ancestors().skip(1).take_while(|d| d != root) {
            crate::data_dir::set_mode(dir, crate::data_dir::DIR_MODE).map_err(mode_error)?;
        }
        Ok(())
    }

    /// Whether the store holds `digest`.
    pub async fn has(&self, digest: &str) -> Result<bool, BlobError> {
        let path = blob_path(digest)?;
        match self.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The digests of `digests` the store lacks, in their order, each once:
    /// the first step of a push, so only those are uploaded. Every digest
    /// is validated before any request is made.
    pub async fn missing(&self, digests: &[String]) -> Result<Vec<String>, BlobError> {
        let mut unique: Vec<String> = Vec::with_capacity(digests.len());
        for digest in digests {
            validate_digest(digest)?;
            if !unique.contains(digest) {
                unique.push(digest.clone());
            }
        }
        // Owned digests and a cloned handle keep the future free of borrowed
        // lifetimes, so callers in async traits (tonic services) stay Send.
        let present: Vec<(String, bool)> = futures::stream::iter(unique)
            .map(|digest| {
                let blobs = self.clone();
                async move { blobs.has(&digest).await.map(|has| (digest, has)) }
            })
            .buffered(CONCURRENT_CHECKS)
            .try_collect()
            .await?;
        Ok(present
            .into_iter()
            .filter(|(_, has)| !has)
            .map(|(digest, _)| digest)
            .collect())
    }

    /// The content of `digest`, verified against it.
    pub async fn get(&self, digest: &str) -> Result<Bytes, BlobError> {
        let path = blob_path(digest)?;
        let content = match self.store.get(&path).await {
            Ok(result) => result.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::NotFound(digest.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let actual = sha256_hex(&content);
        if actual != digest {
            return Err(BlobError::Corrupted {
                digest: digest.to_string(),
                actual,
            });
        }
        Ok(content)
    }

    /// Removes `digest`; removing an absent blob succeeds.
    pub async fn delete(&self, digest: &str) -> Result<(), BlobError> {
        let path = blob_path(digest)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every digest in the store, sorted. Objects that are not blobs under
    /// their proper key are skipped.
    pub async fn list(&self) -> Result<Vec<String>, BlobError> {
        Ok(self
            .list_with_age()
            .await?
            .into_iter()
            .map(|blob| blob.digest)
            .collect())
    }

    /// Every blob with when it was written, sorted by digest: garbage
    /// collection spares recent blobs, which may belong to a push that has
    /// not committed yet.
    pub async fn list_with_age(&self) -> Result<Vec<StoredBlob>, BlobError> {
        let prefix = StorePath::from(PREFIX);
        let mut blobs: Vec<StoredBlob> = self
            .store
            .list(Some(&prefix))
            .try_filter_map(|meta| async move {
                let digest = meta.location.filename().map(str::to_string);
                Ok(digest
                    .filter(|d| blob_path(d).is_ok_and(|p| p == meta.location))
                    .map(|digest| StoredBlob {
                        digest,
                        size: meta.size,
                        last_modified: meta.last_modified.into(),
                    }))
            })
            .try_collect()
            .await?;
        blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(blobs)
    }
}

/// A blob as [`Blobs::list_with_age`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub digest: String,
    pub size: u64,
    pub last_modified: SystemTime,
}

/// SHA-256 of `content`, lowercase hex: the digest blobs are stored under.
pub fn sha256_hex(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

/// Refuses anything but 64 lowercase hex digits.
pub fn validate_digest(digest: &str) -> Result<(), BlobError> {
    let valid = digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if valid {
        Ok(())
    } else {
        Err(BlobError::InvalidDigest(digest.to_string()))
    }
}

fn blob_path(digest: &str) -> Result<StorePath, BlobError> {
    validate_digest(digest)?;
    Ok(StorePath::from(format!(
        "{PREFIX}/{}/{digest}",
        &digest[..2]
    )))
}

fn is_loopback_url(text: &str) -> bool {
    let Ok(url) = url::Url::parse(text) else {
        return false;
    };
    match url.host() {
        _ if url.scheme() != "http" => false,
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_validated_before_paths_are_built() {
        let good = sha256_hex(b"x");
        assert_eq!(
            blob_path(&good).unwrap().to_string(),
            format!("blobs/{}/{good}", &good[..2])
        );
        for bad in [
            "",
            "../../etc/passwd",
            &good.to_uppercase(),
            &good[..63],
            &format!("{good}0"),
        ] {
            assert!(
                matches!(blob_path(bad), Err(BlobError::InvalidDigest(_))),
                "{bad:?}"
            );
        }
        let traversal = format!("{}/../{}", &good[..30], &good[34..]);
        assert_eq!(traversal.len(), 64);
        assert!(blob_path(&traversal).is_err());
    }

    #[test]
    fn loopback_urls_are_recognised() {
        for url in [
            "http://127.0.0.1:9000",
            "http://localhost:9000/",
            "http://[::1]:9000",
            "http://127.1.2.3",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://10.0.0.1:9000",
            "https://127.0.0.1",
            "http://s3.example.com",
            "http://127.0.0.1.example.com",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }
}
