//! `remote_file` provider: download only when the file on disk does not have
//! the wanted sha256, and refuse a download whose digest differs.

use std::io::Read;
use std::time::Duration;

use cm_model::manifest::sha256_hex;
use cm_model::resources::FieldError;
use cm_model::resources::file::FileAction;
use cm_model::resources::remote_file::RemoteFileSpec;

use super::managed_file::ManagedFile;
use super::{Cx, Outcome, Provider, ProviderError};
use crate::engine::CompiledResource;
use crate::fsutil::FileError;
use crate::safe_path::Existing;

/// Largest download accepted; a remote file is config or a small artifact.
const MAX_BYTES: u64 = 1 << 30;

pub struct RemoteFile {
    file: ManagedFile,
    spec: RemoteFileSpec,
}

/// Why a remote file could not be fetched or written.
#[derive(Debug, thiserror::Error)]
pub enum RemoteFileError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("http client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("GET {url}: {source}")]
    Get { url: String, source: reqwest::Error },
    #[error("GET {url}: HTTP {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("GET {url}: {source}")]
    Read { url: String, source: std::io::Error },
    #[error("GET {url}: larger than {} MiB", MAX_BYTES >> 20)]
    TooLarge { url: String },
    #[error("GET {url}: {length} bytes, over the {} MiB limit", MAX_BYTES >> 20)]
    DeclaredTooLarge { url: String, length: u64 },
    #[error("GET {url}: sha256 is {got}, expected {expected}; not written")]
    Digest {
        url: String,
        got: String,
        expected: String,
    },
}

impl RemoteFile {
    fn download(&self) -> Result<Vec<u8>, RemoteFileError> {
        let url = &self.spec.url;
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(self.spec.timeout))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(RemoteFileError::Client)?;
        let resp = client
            .get(url)
            .send()
            .map_err(|source| RemoteFileError::Get {
                url: url.clone(),
                source,
            })?;
        if !resp.status().is_success() {
            return Err(RemoteFileError::Status {
                url: url.clone(),
                status: resp.status(),
            });
        }
        // Refused before a byte of the body is read, rather than after a gigabyte.
        if let Some(length) = resp.content_length()
            && length > MAX_BYTES
        {
            return Err(RemoteFileError::DeclaredTooLarge {
                url: url.clone(),
                length,
            });
        }
        let mut body = Vec::new();
        resp.take(MAX_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|source| RemoteFileError::Read {
                url: url.clone(),
                source,
            })?;
        if body.len() as u64 > MAX_BYTES {
            return Err(RemoteFileError::TooLarge { url: url.clone() });
        }
        let got = sha256_hex(&body);
        if !got.eq_ignore_ascii_case(&self.spec.sha256) {
            return Err(RemoteFileError::Digest {
                url: url.clone(),
                got,
                expected: self.spec.sha256.clone(),
            });
        }
        Ok(body)
    }

    fn create(&self, if_missing: bool, cx: &Cx) -> Result<Outcome, RemoteFileError> {
        let current = self.file.look()?;
        let up_to_date = match &current.existing {
            Existing::File { content, .. } => {
                if_missing || sha256_hex(content).eq_ignore_ascii_case(&self.spec.sha256)
            }
            Existing::Missing | Existing::Symlink { .. } => false,
        };
        if up_to_date {
            // Content is right: only owner and mode may differ.
            return Ok(self.file.create_in(current, None, true, cx)?);
        }
        if cx.why_run {
            let mut out = self.file.create_in(current, None, true, cx)?;
            out.changes.insert(0, format!("download {}", self.spec.url));
            return Ok(out);
        }
        let body = self.download()?;
        let mut out = self.file.create(Some(&body), false, cx)?;
        out.diff = Some(format!(
            "downloaded {} ({} bytes, sha256 {})",
            self.spec.url,
            body.len(),
            self.spec.sha256
        ));
        Ok(out)
    }
}

impl Provider for RemoteFile {
    type Spec = RemoteFileSpec;

    fn build(spec: RemoteFileSpec, _: &CompiledResource) -> Result<Self, FieldError> {
        Ok(RemoteFile {
            file: ManagedFile {
                path: spec.path.clone().into(),
                ownership: spec.ownership()?,
                backup: spec.backup,
                diff: None,
            },
            spec,
        })
    }

    fn converge(&mut self, action: FileAction, cx: &mut Cx) -> Result<Outcome, ProviderError> {
        Ok(match action {
            FileAction::Create => self.create(false, cx)?,
            FileAction::CreateIfMissing => self.create(true, cx)?,
            FileAction::Delete => self.file.delete(cx)?,
            FileAction::Nothing => Outcome::unchanged(),
        })
    }
}
