//! The file handling backups and restores share: walking a directory,
//! hashing files, and copying them durably (fsynced, with their mode) while
//! hashing what was copied, so a digest checked is the digest written.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// The relative paths (`/`-separated) of every regular file under `dir`,
/// sorted. Anything else (a symlink, a socket) is an error: a backup holds
/// plain files only, and a link could point a restore outside its target.
pub(crate) fn walk(dir: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    walk_into(dir, "", &mut files)?;
    files.sort();
    Ok(files)
}

fn walk_into(dir: &Path, prefix: &str, files: &mut Vec<String>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            bail!("{}: a file name that is not UTF-8", entry.path().display());
        };
        let relative = format!("{prefix}{name}");
        let kind = entry
            .file_type()
            .with_context(|| format!("reading {}", entry.path().display()))?;
        if kind.is_dir() {
            walk_into(&entry.path(), &format!("{relative}/"), files)?;
        } else if kind.is_file() {
            files.push(relative);
        } else {
            bail!(
                "{}: not a regular file or directory",
                entry.path().display()
            );
        }
    }
    Ok(())
}

/// SHA-256 (lowercase hex) and size of the file at `path`.
pub(crate) fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    hash_stream(&mut file, &mut io::sink()).with_context(|| format!("reading {}", path.display()))
}

/// Copy `from` to the new file `to` (parents created, mode kept), fsync it,
/// and return the SHA-256 and size of what was written.
pub(crate) fn copy_hashed(from: &Path, to: &Path) -> Result<(String, u64)> {
    let mut source = File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mode = source
        .metadata()
        .with_context(|| format!("reading {}", from.display()))?
        .permissions()
        .mode()
        & 0o777;
    if let Some(parent) = to.parent() {
        create_private_dir_all(parent)?;
    }
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(to)
        .with_context(|| format!("creating {}", to.display()))?;
    let digest = hash_stream(&mut source, &mut target)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    target
        .sync_all()
        .with_context(|| format!("writing {}", to.display()))?;
    Ok(digest)
}

fn hash_stream(from: &mut impl Read, to: &mut impl Write) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = from.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        to.write_all(&buffer[..n])?;
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// `bytes` written to `path` atomically with `mode` (`cm_model::atomic_file`).
pub(crate) fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    cm_model::atomic_file::write(path, bytes, mode)
        .with_context(|| format!("writing {}", path.display()))
}

/// Create `dir` and its missing parents, readable by the owner only: a
/// backup holds the CA key and the secrets key.
pub(crate) fn create_private_dir_all(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Whether `dir` is absent or an empty directory.
pub(crate) fn is_absent_or_empty(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

/// Flush `dir`'s entries (new names, renames) to disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// Fsync every directory on the way from `root` to each of `files`, so
/// their names survive a power cut, not only their contents.
pub(crate) fn sync_dirs_of(root: &Path, files: &[String]) -> Result<()> {
    let mut dirs: Vec<&str> = files
        .iter()
        .filter_map(|f| f.rsplit_once('/').map(|(dir, _)| dir))
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        let mut path = root.to_path_buf();
        for part in dir.split('/') {
            path.push(part);
            sync_dir(&path)?;
        }
    }
    sync_dir(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_keeps_mode_and_reports_the_digest_of_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("key");
        std::fs::write(&from, b"secret").unwrap();
        std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o600)).unwrap();
        let to = dir.path().join("copy/sub/key");
        let (digest, size) = copy_hashed(&from, &to).unwrap();
        assert_eq!(
            (digest.as_str(), size),
            (crate::blobs::sha256_hex(b"secret").as_str(), 6)
        );
        let mode = std::fs::metadata(&to).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(hash_file(&to).unwrap(), (digest, size));
        assert!(copy_hashed(&from, &to).is_err(), "never overwrites");
        assert_eq!(walk(dir.path()).unwrap(), ["copy/sub/key", "key"]);
    }

    #[test]
    fn symlinks_are_refused_by_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let err = walk(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
