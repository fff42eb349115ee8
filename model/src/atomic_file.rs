//! Writing a file so that no reader ever sees it partly written and no
//! other user ever sees a byte of a private one: the file is created
//! beside its target with its final mode before a byte is written,
//! fsynced, then renamed (or linked) into place, and the directory is
//! fsynced. The server's keys and certificates, the admin credential
//! (written by the server and by cmctl) and the agent's own state (its
//! identity, plans, blobs and reports) are all written here.
//!
//! A link at the target is replaced, never followed: rename and link act
//! on the name. The directory itself is trusted; the agent's resources,
//! which write where others may have planted links, go through its own
//! `safe_path` walk instead.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `path` with `bytes`, the file having `mode` from its first byte.
/// On failure the old file is left as it was and no temp file remains.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_temp(path, bytes, mode)?;
    let renamed = std::fs::rename(&tmp, path);
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed.and_then(|()| sync_parent(path))
}

/// Creates `path` with `bytes` and `mode` unless it exists: `Ok(false)`
/// when another process created it first, so both end up using one file.
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
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

/// Numbers the temp files of this process: with the pid, a name no other
/// live writer uses; create_new refuses one a crashed process left behind,
/// and the next number is tried.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A new temp file beside `path` holding `bytes`, fsynced.
fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let mut attempts = 0;
    let (tmp, mut file) = loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = parent(path).join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    };
    match file.write_all(bytes).and_then(|()| file.sync_all()) {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    fn entries(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn a_write_replaces_the_file_with_the_mode_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        write(&p, b"one", 0o644).unwrap();
        write(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(mode(&p), 0o600);
        assert_eq!(entries(dir.path()), 1, "no temp file left behind");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        write(&p, b"old", 0o600).unwrap();
        // A directory where the file should be: the rename fails.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("inside"), "x").unwrap();
        assert!(write(&blocked, b"new", 0o600).is_err());
        assert!(write(&dir.path().join("missing/key"), b"new", 0o600).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(entries(dir.path()), 2, "only the key and the directory");
    }

    #[test]
    fn a_planted_link_is_replaced_instead_of_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "untouched").unwrap();
        let p = dir.path().join("plan.pb");
        std::os::unix::fs::symlink(&outside, &p).unwrap();
        write(&p, b"plan", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
        assert_eq!(std::fs::read(&p).unwrap(), b"plan");
        assert_eq!(mode(&p), 0o600);
    }

    #[test]
    fn create_new_keeps_what_was_there_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secrets.key");
        assert!(create_new(&p, b"first", 0o600).unwrap());
        assert!(!create_new(&p, b"second", 0o600).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        assert_eq!(mode(&p), 0o600);
        assert_eq!(entries(dir.path()), 1, "no temp file left behind");
    }

    #[test]
    fn a_crashed_writers_leftover_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        let next = NEXT.load(Ordering::Relaxed);
        for n in next..next + 3 {
            let leftover = dir
                .path()
                .join(format!(".key.{}.{n}.tmp", std::process::id()));
            std::fs::write(leftover, "stale").unwrap();
        }
        write(&p, b"fresh", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"fresh");
        let leftover = dir
            .path()
            .join(format!(".key.{}.{next}.tmp", std::process::id()));
        assert_eq!(std::fs::read(leftover).unwrap(), b"stale");
    }
}
