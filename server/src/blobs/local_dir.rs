//! The local blob directory at server start: what an upload killed half-way
//! left behind is removed, and modes are closed (directories 0700, blobs
//! 0600) whatever the umask was when they were written.
//!
//! The object store writes an upload to `<digest>#<n>` beside its final
//! name and links it into place when complete; a process killed in
//! between leaves that staged file. A digest never contains `#`, so any
//! such name is a leftover. This runs only before the server serves: on a
//! live directory it would remove an upload in flight.

use std::path::Path;

use super::BlobError;
use crate::data_dir::{DIR_MODE, FILE_MODE, set_mode};

/// What [`tidy`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tidied {
    /// Staged files of uploads that never completed, removed.
    pub partial_uploads_removed: usize,
    /// Blobs kept.
    pub blobs: usize,
}

/// Remove leftovers of killed uploads under `dir` and set modes. A missing
/// directory is created empty.
pub fn tidy(dir: &Path) -> Result<Tidied, BlobError> {
    let mut tidied = Tidied::default();
    crate::data_dir::ensure_private_dir(dir).map_err(mode_error)?;
    walk(dir, &mut tidied)?;
    Ok(tidied)
}

fn walk(dir: &Path, tidied: &mut Tidied) -> Result<(), BlobError> {
    let io = |e: std::io::Error| {
        BlobError::Config(format!("reading blob directory {}: {e}", dir.display()))
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            set_mode(&path, DIR_MODE).map_err(mode_error)?;
            walk(&path, tidied)?;
        } else if entry.file_name().to_string_lossy().contains('#') {
            std::fs::remove_file(&path).map_err(|e| {
                BlobError::Config(format!(
                    "removing the partial upload {}: {e}",
                    path.display()
                ))
            })?;
            tracing::info!(path = %path.display(), "removed the staged file of an upload that never completed");
            tidied.partial_uploads_removed += 1;
        } else if kind.is_file() {
            set_mode(&path, FILE_MODE).map_err(mode_error)?;
            tidied.blobs += 1;
        }
    }
    Ok(())
}

fn mode_error(e: crate::data_dir::ModeError) -> BlobError {
    BlobError::Config(e.to_string())
}
