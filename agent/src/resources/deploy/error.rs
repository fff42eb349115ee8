//! Why a deploy or a rollback did not happen. None of these leaves
//! `current` changed: it is switched last, and only to a complete release.

use std::path::PathBuf;

use super::tarball::ArchiveError;
use crate::fsutil::OwnerError;
use crate::resources::CommandFailed;
use crate::resources::download::DownloadError;
use crate::safe_path::SafePathError;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Path(#[from] SafePathError),
    #[error(transparent)]
    Owner(#[from] OwnerError),
    #[error("{path}: parent directory {parent} does not exist (declare a directory first)")]
    MissingParent { path: PathBuf, parent: PathBuf },
    #[error("{0} exists and is not a directory")]
    NotADirectory(PathBuf),
    #[error(
        "{path} is owned by uid {uid} with mode {mode:04o}: the deploy directory, its releases/ \
         and shared/ must be root's and writable by root only (whoever may write them could \
         swap a release or `current`; only the directories under shared/ are the application's)"
    )]
    Untrusted { path: PathBuf, uid: u32, mode: u32 },
    #[error(
        "{0} is not a symbolic link; not replacing it (cm keeps `current` as a link to a \
         release: move it away)"
    )]
    CurrentNotALink(PathBuf),
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error("release {id} from {from}: {error}; current is unchanged")]
    Archive {
        id: String,
        from: String,
        #[source]
        error: ArchiveError,
    },
    #[error(transparent)]
    Git(#[from] CommandFailed),
    #[error(
        "{url}: {revision} is a {kind}, not a commit: give the commit id (`git rev-parse {revision}^{{commit}}`)"
    )]
    NotACommit {
        url: String,
        revision: String,
        kind: String,
    },
    #[error("release {id}: {path} is not a directory, so shared {name} cannot be linked under it")]
    SharedParent {
        id: String,
        name: String,
        path: PathBuf,
    },
    #[error("{path}: nothing to roll back to (no release is kept but {id}, the source's)")]
    NothingToRollBack { path: PathBuf, id: String },
}

impl DeployError {
    /// The error without what git printed (a sensitive resource's).
    pub fn without_output(&self) -> String {
        match self {
            DeployError::Git(e) => e.without_output(),
            other => other.to_string(),
        }
    }
}
