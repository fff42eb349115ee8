//! Between cm-model's types and their wire form, one conversion each, so
//! cmctl, the server, the agent and the benchmarks cannot disagree on it.

use cm_model::manifest::{Manifest, ManifestEntry};

use crate::v1;

/// A manifest as `Commit`, `GetPlan` and the cookbook listings carry it.
pub fn manifest_to_wire(m: &Manifest) -> Vec<v1::ManifestEntry> {
    m.entries
        .iter()
        .map(|e| v1::ManifestEntry {
            path: e.path.clone(),
            sha256: e.sha256.clone(),
            size: e.size,
            mode: e.mode,
        })
        .collect()
}

/// A manifest from the wire, sorted by path as [`Manifest`] keeps it
/// (its lookups search by path). Nothing is checked here: the receiver
/// runs [`Manifest::check`] on what it was sent.
pub fn manifest_from_wire(entries: &[v1::ManifestEntry]) -> Manifest {
    let mut entries: Vec<ManifestEntry> = entries
        .iter()
        .map(|e| ManifestEntry {
            path: e.path.clone(),
            sha256: e.sha256.clone(),
            size: e.size,
            mode: e.mode,
        })
        .collect();
    entries.sort();
    Manifest { entries }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, mode: u32) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            sha256: format!("{:064}", path.len()),
            size: path.len() as u64,
            mode,
        }
    }

    #[test]
    fn a_manifest_round_trips_and_comes_back_sorted() {
        let sorted = Manifest {
            entries: vec![entry("files/run.sh", 0o755), entry("metadata.yaml", 0o644)],
        };
        let mut wire = manifest_to_wire(&sorted);
        assert_eq!(wire.len(), 2);
        assert_eq!(wire[0].path, "files/run.sh");
        assert_eq!(wire[0].mode, 0o755);
        wire.reverse();
        let back = manifest_from_wire(&wire);
        assert_eq!(back, sorted);
        assert!(back.get("metadata.yaml").is_some());
    }
}
