//! Previous content kept under `--backup-dir`: private copies (mode 0600, in
//! directories created 0700), reached by the same safe walk as managed files,
//! the newest `keep` per file. Copies are not fsynced (as `cp` would not):
//! the managed file's own write is what must survive a crash.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::safe_path::{self, FileOwnership, Missing, SafePathError};

/// Keep `content`, the previous content of `path`, under `backup_dir` as
/// `PATH.NANOS`, and drop the oldest copies beyond `keep`. Nothing when `keep` is 0.
pub fn backup(
    path: &Path,
    content: &[u8],
    backup_dir: &Path,
    keep: u32,
) -> Result<Option<PathBuf>, SafePathError> {
    if keep == 0 {
        return Ok(None);
    }
    let (parent, base) = safe_path::split(path)?;
    let rel = parent.strip_prefix("/").unwrap_or(parent);
    let dir_path =
        std::path::absolute(backup_dir.join(rel)).map_err(|_| SafePathError::NotAbsolute {
            path: backup_dir.to_path_buf(),
        })?;
    let dir = safe_path::open_dir(&dir_path, Missing::Create(0o700))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut prefix = base.to_os_string();
    prefix.push(".");
    let mut name = prefix.clone();
    name.push(stamp.to_string());
    let private = FileOwnership {
        uid: None,
        gid: None,
        mode: 0o600,
    };
    dir.write_copy(&name, content, private)?;
    // Prune the oldest copies of this file beyond `keep`.
    let prefix = prefix.as_encoded_bytes();
    let mut copies: Vec<OsString> = dir
        .names()?
        .into_iter()
        .filter(|n| {
            n.as_encoded_bytes()
                .strip_prefix(prefix)
                .is_some_and(|s| !s.is_empty() && s.iter().all(u8::is_ascii_digit))
        })
        .collect();
    copies.sort();
    let excess = copies.len().saturating_sub(keep as usize);
    for old in &copies[..excess] {
        dir.remove_copy(old)?;
    }
    Ok(Some(dir.child_path(&name)))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn backups_keep_the_newest_private_copies() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("etc/app.conf");
        let backups = dir.path().join("backup");
        for i in 0..5 {
            backup(&p, format!("v{i}").as_bytes(), &backups, 3).unwrap();
        }
        let kept = backups.join(p.strip_prefix("/").unwrap().parent().unwrap());
        let mut contents: Vec<String> = std::fs::read_dir(&kept)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
                std::fs::read_to_string(path).unwrap()
            })
            .collect();
        contents.sort();
        assert_eq!(contents, ["v2", "v3", "v4"]);
        assert_eq!(std::fs::metadata(&kept).unwrap().mode() & 0o777, 0o700);
        assert_eq!(backup(&p, b"x", &backups, 0).unwrap(), None);
    }
}
