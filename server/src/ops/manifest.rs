//! The manifest a backup ends with: what the backup is (format, cm version,
//! time, CA fingerprint, how many of each thing the database holds) and the
//! SHA-256 and size of every file in it. It is written last, atomically, so
//! a directory without one is a backup that did not finish.
//!
//! `SHA256SUMS` beside it says the same in the format `sha256sum -c` reads,
//! so a backup can be checked where cm is not installed.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The manifest's file name, at the top of a backup.
pub const MANIFEST: &str = "manifest.json";
/// Checksums for `sha256sum -c`, derived from the manifest.
pub const SHA256SUMS: &str = "SHA256SUMS";
/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    pub format: u32,
    /// The cm-server that wrote it.
    pub cm_version: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The data dir it was taken from.
    pub data_dir: String,
    /// SHA-256 of the CA certificate: nodes and admins trust this CA.
    pub ca_fingerprint: String,
    /// Rows in the database snapshot (`cookbook_versions`, `roles`, ...)
    /// and `blobs`, the blob files copied.
    pub counts: BTreeMap<String, u64>,
    /// Every file of the backup except the manifest and SHA256SUMS, sorted
    /// by path.
    pub files: Vec<BackupFile>,
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    /// Relative to the backup directory, `/`-separated.
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

impl BackupManifest {
    /// Total size of the files, in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The `sha256sum -c` rendering of [`BackupManifest::files`].
    pub fn sha256sums(&self) -> String {
        self.files
            .iter()
            .map(|f| format!("{}  {}\n", f.sha256, f.path))
            .collect()
    }

    /// Write SHA256SUMS, then the manifest, each atomically: the manifest's
    /// presence is what says the backup is complete.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("a manifest is plain data");
        super::files::write(&dir.join(SHA256SUMS), self.sha256sums().as_bytes(), 0o600)?;
        super::files::write(&dir.join(MANIFEST), &json, 0o600)?;
        Ok(())
    }

    /// Read and check the manifest of the backup in `dir`: the format is one
    /// this build knows, paths stay inside the backup, and SHA256SUMS agrees
    /// with it.
    pub fn read(dir: &Path) -> Result<BackupManifest> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "{} has no {MANIFEST}: it is not a backup, or a backup that did not finish",
                dir.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let manifest: BackupManifest = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a backup manifest", path.display()))?;
        if manifest.format != FORMAT {
            bail!(
                "{}: backup format {} (written by cm-server {}); this cm-server reads format {FORMAT}",
                path.display(),
                manifest.format,
                manifest.cm_version
            );
        }
        for file in &manifest.files {
            if !is_plain_relative(&file.path) || [MANIFEST, SHA256SUMS].contains(&&*file.path) {
                bail!("{}: invalid file path {:?}", path.display(), file.path);
            }
        }
        let sums_path = dir.join(SHA256SUMS);
        let sums = std::fs::read_to_string(&sums_path)
            .with_context(|| format!("reading {}", sums_path.display()))?;
        if sums != manifest.sha256sums() {
            bail!(
                "{} does not agree with {MANIFEST}: the backup was changed after it was written",
                sums_path.display()
            );
        }
        Ok(manifest)
    }
}

/// A relative path of plain components: no `..`, no `.`, no leading `/`.
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_accepted() {
        for good in ["cm.db", "blobs/blobs/ab/abcd"] {
            assert!(is_plain_relative(good), "{good}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/"] {
            assert!(!is_plain_relative(bad), "{bad}");
        }
    }

    #[test]
    fn a_manifest_round_trips_and_sums_must_agree() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = BackupManifest {
            format: FORMAT,
            cm_version: "0.1.0".into(),
            created_at: 1,
            data_dir: "/var/lib/cm/server".into(),
            ca_fingerprint: "ab".into(),
            counts: BTreeMap::from([("roles".to_string(), 2)]),
            files: vec![BackupFile {
                path: "cm.db".into(),
                sha256: "0".repeat(64),
                size: 3,
            }],
        };
        manifest.write(dir.path()).unwrap();
        assert_eq!(BackupManifest::read(dir.path()).unwrap(), manifest);
        std::fs::write(dir.path().join(SHA256SUMS), "").unwrap();
        let err = BackupManifest::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("does not agree"), "{err}");
    }
}
