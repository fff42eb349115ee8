//! Where facts are read from: a root directory standing in for `/`.
//!
//! Every fact reader takes a [`SystemRoot`] instead of opening absolute
//! paths, so tests can point the whole module at a fake `/proc`, `/sys` and
//! `/etc` tree. Failures become `None` plus a `debug!` line: a fact that
//! cannot be read is empty, never an error that stops the run.

use std::path::{Path, PathBuf};

use tracing::debug;

/// The directory that plays `/` for fact gathering.
#[derive(Debug, Clone)]
pub(super) struct SystemRoot {
    root: PathBuf,
}

impl SystemRoot {
    pub(super) fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// Maps an absolute system path such as `/proc/meminfo` under the root.
    pub(super) fn path(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }

    /// Reads a whole file, or says at debug level why it could not.
    pub(super) fn read(&self, absolute: &str) -> Option<String> {
        let path = self.path(absolute);
        match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(error) => {
                debug!(path = %path.display(), %error, "fact source unreadable");
                None
            }
        }
    }

    /// Reads a one-value file (`/proc/sys/kernel/hostname`) without its
    /// trailing newline; an empty file counts as unreadable.
    pub(super) fn read_value(&self, absolute: &str) -> Option<String> {
        let value = self.read(absolute)?.trim().to_string();
        if value.is_empty() {
            debug!(path = absolute, "fact source is empty");
            return None;
        }
        Some(value)
    }

    /// Whether a marker file or directory (`/run/systemd/system`) exists.
    pub(super) fn exists(&self, absolute: &str) -> bool {
        self.path(absolute).exists()
    }
}

/// Builds a temporary root holding `(relative path, content)` files, for
/// tests of the fact readers. Keep the `TempDir` alive while reading.
#[cfg(test)]
pub(super) fn fake_root(files: &[(&str, &str)]) -> (tempfile::TempDir, SystemRoot) {
    let dir = tempfile::tempdir().expect("temp dir for the test");
    for (path, content) in files {
        let path = dir.path().join(path);
        let parent = path.parent().expect("fixture paths have a parent");
        std::fs::create_dir_all(parent).expect("make fixture dir");
        std::fs::write(path, content).expect("write fixture");
    }
    let root = SystemRoot::new(dir.path());
    (dir, root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_resolve_under_the_root() {
        let root = SystemRoot::new(Path::new("/tmp/fake"));
        assert_eq!(
            root.path("/proc/meminfo"),
            Path::new("/tmp/fake/proc/meminfo")
        );
    }

    #[test]
    fn missing_and_empty_files_read_as_none() {
        let (_dir, root) = fake_root(&[("empty", "\n")]);
        assert_eq!(root.read("/missing"), None);
        assert_eq!(root.read_value("/empty"), None);
    }
}
