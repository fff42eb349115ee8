//! Writing key files so that no reader ever sees a partial file, and no
//! other user ever sees the key: the file is created with its final mode
//! before a byte is written, fsynced, then renamed or linked into place.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::RngCore;

use super::PkiError;

/// Replaces `path` with `bytes` atomically.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let io_err = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = write_temp(path, bytes, mode).map_err(io_err)?;
    let renamed = std::fs::rename(&tmp, path);
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed.and_then(|()| sync_parent(path)).map_err(io_err)
}

/// Creates `path` with `bytes` unless it exists: `Ok(false)` when
/// another process created it first, so both end up using one file.
pub(crate) fn create_exclusively(path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
    let tmp = write_temp(path, bytes, mode)?;
    // link(2) fails if the target exists: an atomic create-if-absent
    // that, unlike rename, never replaces what another process wrote.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => sync_parent(path).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> io::Result<PathBuf> {
    let dir = parent(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::rng().next_u64()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Logs a warning when a key file can be read by group or others: the
/// server still starts, but the operator is told.
pub(crate) fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "key file is readable by group or others; chmod 600 it");
    }
}

fn sync_parent(path: &Path) -> io::Result<()> {
    File::open(parent(path))?.sync_all()
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}
