//! What can go wrong reaching or changing a path through [`super::Dir`].

use std::path::PathBuf;

use nix::errno::Errno;

/// Why a symbolic link on the way to a managed path is not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Distrust {
    #[error("owned by uid {0}")]
    LinkOwner(u32),
    #[error("in a directory owned by uid {0}")]
    DirectoryOwner(u32),
    #[error("in a directory every user may write")]
    DirectoryWorldWritable,
    #[error("in a directory group {0} may write")]
    DirectoryGroupWritable(u32),
}

/// A path could not be reached or changed safely. Each names the path at fault.
#[derive(Debug, thiserror::Error)]
pub enum SafePathError {
    #[error("{path}: not an absolute path")]
    NotAbsolute { path: PathBuf },
    #[error("{path} names no file")]
    NoFileName { path: PathBuf },
    #[error(
        "{link} is a symbolic link {why}: refusing to follow it (the agent follows only \
         links owned by root in directories only root may write)"
    )]
    UntrustedLink { link: PathBuf, why: Distrust },
    #[error("{path}: more than {limit} symbolic links on the way")]
    TooManyLinks { path: PathBuf, limit: usize },
    #[error("{path} does not exist")]
    Missing { path: PathBuf },
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path} is a {kind}, not a regular file; refusing to replace it")]
    NotARegularFile { path: PathBuf, kind: &'static str },
    #[error("{path} changed while it was being read; try again")]
    Changed { path: PathBuf },
    #[error("{op} {path}: {errno}")]
    Io {
        op: &'static str,
        path: PathBuf,
        errno: Errno,
    },
}

impl SafePathError {
    pub(super) fn io(op: &'static str, path: impl Into<PathBuf>, errno: Errno) -> Self {
        SafePathError::Io {
            op,
            path: path.into(),
            errno,
        }
    }

    pub(super) fn from_io(op: &'static str, path: impl Into<PathBuf>, e: std::io::Error) -> Self {
        let errno = e.raw_os_error().map_or(Errno::EIO, Errno::from_raw);
        SafePathError::io(op, path, errno)
    }
}

/// For the agent's own files, whose callers speak `std::io`.
impl From<SafePathError> for std::io::Error {
    fn from(e: SafePathError) -> Self {
        let kind = match &e {
            SafePathError::Missing { .. } => std::io::ErrorKind::NotFound,
            SafePathError::Io { errno, .. } => std::io::Error::from(*errno).kind(),
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}
