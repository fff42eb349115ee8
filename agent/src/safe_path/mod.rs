//! Reaching a path as root without being led elsewhere by a symbolic link.
//!
//! The agent runs as root and must write only where a resource says. A path
//! is reached by walking its components from `/` with
//! `openat(O_PATH | O_NOFOLLOW | O_DIRECTORY)`, one directory handle at a time.
//! A symbolic link on the way is followed only when root owns it and no other
//! user may write the directory that holds it (no write bit for others, no
//! group write for a group other than root, owner root): such a link could
//! not have been planted, so `/var/run -> /run` and merged-/usr links keep
//! working. Any other link stops the walk with [`SafePathError::UntrustedLink`].
//!
//! Everything after the walk goes through the [`Dir`] handle it returns
//! (`openat`, `renameat`, `unlinkat`, `fchown`/`fchmod` on descriptors), so a
//! component swapped for a link after the check changes nothing: the write
//! lands in the directory that was checked. The last component of a managed
//! path is never followed (see [`Dir::read_file`]).
//!
//! `openat2(RESOLVE_NO_SYMLINKS)` could replace the walk when a path holds no
//! link at all, but the walk is still needed for every trusted link and costs
//! two system calls per component; one code path is kept.
//!
//! This module does not decide what a path may be (that is
//! `cm_model::paths`, checked when the resource is compiled) nor what to write.

mod deferred;
mod entry;
mod error;
mod tree;
mod walk;

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

pub use deferred::DeferredSyncs;
pub use entry::{Existing, FileOwnership};
pub use error::{Distrust, SafePathError};

/// An open directory reached by the safe walk. Operations on names inside it
/// are relative to the handle, never to a path looked up again.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// The path it was reached by, for messages.
    path: PathBuf,
}

/// The metadata of an entry, read without following a final link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    Symlink,
    Other(&'static str),
}

/// Whether the walk creates missing directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A missing component is an error ([`SafePathError::Missing`]).
    Fail,
    /// Create it, owned by the agent, with these permission bits.
    Create(u32),
}

impl Dir {
    /// The path this directory was reached by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` inside this directory, for messages.
    pub fn child_path(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }
}

/// Open the directory at `path` (absolute) by the safe walk.
pub fn open_dir(path: &Path, missing: Missing) -> Result<Dir, SafePathError> {
    walk::walk(path, missing)
}

/// Open the parent of `path` (absolute, naming a file) by the safe walk, and
/// return it with the final name, which is not looked at.
pub fn open_parent(path: &Path, missing: Missing) -> Result<(Dir, OsString), SafePathError> {
    let (parent, name) = split(path)?;
    Ok((walk::walk(parent, missing)?, name.to_os_string()))
}

/// Split an absolute path into its parent and final name.
pub fn split(path: &Path) -> Result<(&Path, &OsStr), SafePathError> {
    if !path.is_absolute() {
        return Err(SafePathError::NotAbsolute {
            path: path.to_path_buf(),
        });
    }
    match (path.parent(), path.components().next_back()) {
        (Some(parent), Some(Component::Normal(name))) => Ok((parent, name)),
        _ => Err(SafePathError::NoFileName {
            path: path.to_path_buf(),
        }),
    }
}

#[cfg(test)]
mod tests;
