//! Content manifests: what a cookbook version is made of, file by file.
//! The server stores blobs by sha256 and a version as its manifest.

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

    pub fn get(&self, path: &str) -> Option<&ManifestEntry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }
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
