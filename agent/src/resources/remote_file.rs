//! `remote_file` provider: download only when the file on disk does not have
//! the wanted sha256, and refuse a download whose digest differs.

use std::time::Duration;

use cm_model::manifest::sha256_hex;
use cm_model::resources::FieldError;
use cm_model::resources::file::FileAction;
use cm_model::resources::remote_file::RemoteFileSpec;

use super::download::{DownloadError, download};
use super::managed_file::ManagedFile;
use super::{Cx, Outcome, Provider, ProviderError};
use crate::engine::CompiledResource;
use crate::fsutil::FileError;
use crate::safe_path::Existing;

pub struct RemoteFile {
    file: ManagedFile,
    spec: RemoteFileSpec,
}

/// Why a remote file could not be fetched or written.
#[derive(Debug, thiserror::Error)]
pub enum RemoteFileError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Download(#[from] DownloadError),
}

impl RemoteFile {
    fn download(&self) -> Result<Vec<u8>, DownloadError> {
        download(
            &self.spec.url,
            &self.spec.sha256,
            Duration::from_secs(self.spec.timeout),
        )
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
