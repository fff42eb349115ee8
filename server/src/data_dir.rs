//! The modes of what the server keeps on disk. The data dir holds token
//! hashes, sealed secrets, the audit log and every node's facts: it is
//! 0700, the database files and blobs 0600 (blob directories 0700),
//! whatever the umask, and a data dir left more open by an older server or
//! by hand is closed at start. Keys are written with their mode from the
//! first byte (`cm_model::atomic_file`); this module sets modes on what
//! others create (SQLite, the blob store) and warns of keys left open.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of the data dir and of every directory under it.
pub const DIR_MODE: u32 = 0o700;
/// The mode of the database files and blobs.
pub const FILE_MODE: u32 = 0o600;

/// A mode that could not be set, naming the path.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct ModeError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> ModeError + '_ {
    move |source| ModeError {
        path: path.to_path_buf(),
        source,
    }
}

/// Logs a warning when a key file can be read by group or others: the
/// server still starts, but the operator is told.
pub fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "key file is readable by group or others; chmod 600 it");
    }
}

/// Create `dir` (and missing parents) as 0700, or close an existing one to 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<(), ModeError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(at(dir))?;
    set_mode(dir, DIR_MODE)
}

/// Create the file at `path` empty with mode 0600 when it is missing, or
/// set an existing one to 0600. SQLite gives its `-wal` and `-shm` files
/// the mode of the database file, so creating that first is enough.
pub fn ensure_private_file(path: &Path) -> Result<(), ModeError> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => set_mode(path, FILE_MODE),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => set_mode(path, FILE_MODE),
        Err(e) => Err(at(path)(e)),
    }
}

/// Set an existing file's or directory's mode (the umask does not apply);
/// a path that does not exist is left alone.
pub fn set_mode(path: &Path, mode: u32) -> Result<(), ModeError> {
    match std::fs::set_permissions(path, Permissions::from_mode(mode)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other.map_err(at(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn open_directories_and_files_are_closed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        let file = dir.join("cm.db");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();

        ensure_private_dir(&dir).unwrap();
        ensure_private_file(&file).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"x", "content kept");

        let new = dir.join("new.db");
        ensure_private_file(&new).unwrap();
        assert_eq!(mode(&new), 0o600);
        set_mode(&dir.join("absent"), 0o600).unwrap();
    }
}
