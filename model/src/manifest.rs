//! Content manifests: what a cookbook version is made of, file by file.
//! The server stores blobs by sha256 and a version as its manifest.
//!
//! [`Manifest::check`] holds the rules every manifest meets, wherever it
//! comes from (a directory cmctl read, a push the server commits, a plan the
//! agent assembles): plain relative paths written one way only, no control
//! characters, no two entries for one file (including paths that differ only
//! in case), permission bits only, and limits on size and count.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One file of a cookbook.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path relative to the cookbook root, `/`-separated.
    pub path: String,
    /// Lowercase hex sha256 of the content.
    pub sha256: String,
    pub size: u64,
    /// Permission bits (e.g. 0o644, 0o755): executables in `files/` stay executable.
    pub mode: u32,
}

/// Every file of a cookbook version, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// A digest of the manifest itself: equal manifests, equal digests.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for e in &self.entries {
            h.update(format!(
                "{}\0{}\0{}\0{:o}\n",
                e.path, e.sha256, e.size, e.mode
            ));
        }
        hex::encode(h.finalize())
    }

    /// The manifest rules; see [`check_entries`].
    pub fn check(&self) -> Result<(), ManifestError> {
        check_entries(&self.entries)
    }

    pub fn get(&self, path: &str) -> Option<&ManifestEntry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// Largest single file a cookbook may hold; config management is not artifact storage.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Most files a cookbook version may hold.
pub const MAX_FILES: usize = 10_000;
/// Largest total size of a cookbook version's files.
pub const MAX_TOTAL_BYTES: u64 = 256 << 20;
/// Permission bits, setuid, setgid and sticky: nothing else is a mode.
pub const MAX_MODE: u32 = 0o7777;

/// Why a manifest is refused; names the entry (or entries) at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("{path:?}: {reason}")]
    Path { path: String, reason: String },
    #[error(
        "{path:?}: control characters (newline, carriage return, ...) are not allowed in file names"
    )]
    ControlCharacter { path: String },
    #[error("{second:?} names the same file as {first:?}")]
    Duplicate { first: String, second: String },
    #[error(
        "{second:?} differs from {first:?} only in case; on a case-insensitive disk they are one file"
    )]
    CaseCollision { first: String, second: String },
    #[error("{path:?}: write the path as {normal:?}")]
    NotNormal { path: String, normal: String },
    #[error("{path:?}: mode {mode:#o} is more than permission bits (at most 0o7777)")]
    Mode { path: String, mode: u32 },
    #[error("{path:?} is {size} bytes, over the {} MiB limit for one file", MAX_FILE_BYTES >> 20)]
    FileTooLarge { path: String, size: u64 },
    #[error("{count} files, over the limit of {MAX_FILES} files in a cookbook")]
    TooManyFiles { count: usize },
    #[error("the files add up to more than the {} MiB limit for a cookbook", MAX_TOTAL_BYTES >> 20)]
    TooLarge,
}

impl ManifestError {
    /// The entry to blame in a message that names a file.
    pub fn path(&self) -> Option<&str> {
        match self {
            ManifestError::Path { path, .. }
            | ManifestError::ControlCharacter { path }
            | ManifestError::NotNormal { path, .. }
            | ManifestError::Mode { path, .. }
            | ManifestError::FileTooLarge { path, .. } => Some(path),
            ManifestError::Duplicate { second, .. }
            | ManifestError::CaseCollision { second, .. } => Some(second),
            ManifestError::TooManyFiles { .. } | ManifestError::TooLarge => None,
        }
    }
}

/// What to check of a manifest's entries; each input knows only these.
pub trait EntryFacts {
    fn path(&self) -> &str;
    fn size(&self) -> u64;
    fn mode(&self) -> u32;
}

impl EntryFacts for ManifestEntry {
    fn path(&self) -> &str {
        &self.path
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn mode(&self) -> u32 {
        self.mode
    }
}

/// Check entries against the manifest rules (see the module comment),
/// before anything is read or fetched for them.
pub fn check_entries<E: EntryFacts>(entries: &[E]) -> Result<(), ManifestError> {
    if entries.len() > MAX_FILES {
        return Err(ManifestError::TooManyFiles {
            count: entries.len(),
        });
    }
    let mut normals = Vec::with_capacity(entries.len());
    for e in entries {
        normals.push(normal_form(e.path())?);
    }
    // Two entries for one file are named together, before either is blamed alone.
    let mut by_normal: BTreeMap<&str, &str> = BTreeMap::new();
    let mut by_folded: BTreeMap<String, &str> = BTreeMap::new();
    for (e, normal) in entries.iter().zip(&normals) {
        if let Some(first) = by_normal.insert(normal, e.path()) {
            return Err(ManifestError::Duplicate {
                first: first.into(),
                second: e.path().into(),
            });
        }
        if let Some(first) = by_folded.insert(normal.to_lowercase(), e.path()) {
            return Err(ManifestError::CaseCollision {
                first: first.into(),
                second: e.path().into(),
            });
        }
    }
    let mut total: u64 = 0;
    for (e, normal) in entries.iter().zip(normals) {
        let path = e.path();
        if normal != path {
            return Err(ManifestError::NotNormal {
                path: path.into(),
                normal,
            });
        }
        if e.mode() > MAX_MODE {
            return Err(ManifestError::Mode {
                path: path.into(),
                mode: e.mode(),
            });
        }
        if e.size() > MAX_FILE_BYTES {
            return Err(ManifestError::FileTooLarge {
                path: path.into(),
                size: e.size(),
            });
        }
        total = total.saturating_add(e.size());
        if total > MAX_TOTAL_BYTES {
            return Err(ManifestError::TooLarge);
        }
    }
    Ok(())
}

/// `path` without `./` and doubled slashes, or why it is no cookbook path.
fn normal_form(path: &str) -> Result<String, ManifestError> {
    if path.chars().any(char::is_control) {
        return Err(ManifestError::ControlCharacter { path: path.into() });
    }
    let bad = |reason: String| ManifestError::Path {
        path: path.into(),
        reason,
    };
    let clean = crate::paths::check_relative(path).map_err(bad)?;
    clean
        .to_str()
        .map(str::to_string)
        .ok_or_else(|| bad("not UTF-8".into()))
}

/// Hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Build the entry for one file on disk.
pub fn entry_for(path: &str, file: &Path) -> std::io::Result<ManifestEntry> {
    use std::os::unix::fs::PermissionsExt;
    let bytes = std::fs::read(file)?;
    let mode = std::fs::metadata(file)?.permissions().mode() & 0o7777;
    Ok(ManifestEntry {
        path: path.to_string(),
        sha256: sha256_hex(&bytes),
        size: bytes.len() as u64,
        mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            sha256: sha256_hex(path.as_bytes()),
            size: 1,
            mode: 0o644,
        }
    }

    fn check(paths: &[&str]) -> Result<(), ManifestError> {
        check_entries(&paths.iter().map(|p| entry(p)).collect::<Vec<_>>())
    }

    #[test]
    fn control_characters_in_file_names_are_refused() {
        for bad in [
            "files/a\nb",
            "files/a\rb",
            "files/a\tb",
            "files/\u{7f}",
            "files/\u{85}x",
        ] {
            assert!(
                matches!(
                    check(&["metadata.yaml", bad]),
                    Err(ManifestError::ControlCharacter { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn one_file_written_two_ways_is_refused_naming_both() {
        let err = check(&["files/a", "files/a"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"files/a\" names the same file as \"files/a\""
        );
        for (first, second) in [
            ("./files/a", "files/a"),
            ("files/a", "files//a"),
            ("files/a", "files/./a"),
        ] {
            let err = check(&[first, second]).unwrap_err();
            assert!(
                matches!(&err, ManifestError::Duplicate { first: f, second: s } if f == first && s == second),
                "{err}"
            );
        }
        let err = check(&["files/Motd", "files/motd"]).unwrap_err();
        assert!(matches!(err, ManifestError::CaseCollision { .. }), "{err}");
        assert!(err.to_string().contains("files/Motd") && err.to_string().contains("files/motd"));
    }

    #[test]
    fn a_path_not_in_its_plain_form_is_refused() {
        let err = check(&["./metadata.yaml"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"./metadata.yaml\": write the path as \"metadata.yaml\""
        );
        assert!(matches!(
            check(&["a/../b"]),
            Err(ManifestError::Path { .. })
        ));
    }

    #[test]
    fn modes_beyond_permission_bits_are_refused() {
        let mut e = entry("files/x");
        e.mode = 0o7777;
        assert!(check_entries(&[e.clone()]).is_ok());
        e.mode = 0o10644;
        let err = check_entries(&[e]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"files/x\": mode 0o10644 is more than permission bits (at most 0o7777)"
        );
    }

    #[test]
    fn count_and_size_limits() {
        let many: Vec<_> = (0..=MAX_FILES)
            .map(|i| entry(&format!("files/{i}")))
            .collect();
        assert!(
            matches!(check_entries(&many), Err(ManifestError::TooManyFiles { count }) if count == MAX_FILES + 1)
        );
        assert!(check_entries(&many[..MAX_FILES]).is_ok());
        let mut big = entry("files/big");
        big.size = MAX_FILE_BYTES + 1;
        assert!(matches!(
            check_entries(&[big]),
            Err(ManifestError::FileTooLarge { .. })
        ));
        let five: Vec<_> = (0..5)
            .map(|i| ManifestEntry {
                size: MAX_FILE_BYTES,
                ..entry(&format!("files/{i}"))
            })
            .collect();
        assert_eq!(check_entries(&five), Err(ManifestError::TooLarge));
        assert!(check_entries(&five[..4]).is_ok());
    }
}
