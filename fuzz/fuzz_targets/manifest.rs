//! The server's commit validation must refuse or accept, never panic or
//! overflow, whatever the manifest and the files: each record is
//! `MODE PATH` `\x01` `CONTENT`, records separated by `\0`.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use cm_model::LoadError;
use cm_model::cookbook::Cookbook;
use cm_model::manifest::{Manifest, ManifestEntry, sha256_hex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut entries = Vec::new();
    let mut blobs = BTreeMap::new();
    for record in data.split(|b| *b == 0) {
        let Some(split) = record.iter().position(|b| *b == 1) else {
            continue;
        };
        let (header, content) = (&record[..split], &record[split + 1..]);
        let Ok(header) = std::str::from_utf8(header) else {
            continue;
        };
        let (mode, path) = header.split_once(' ').unwrap_or(("644", header));
        let sha256 = sha256_hex(content);
        entries.push(ManifestEntry {
            path: path.to_string(),
            sha256: sha256.clone(),
            size: content.len() as u64,
            mode: u32::from_str_radix(mode, 8).unwrap_or(0o644),
        });
        blobs.insert(sha256, content.to_vec());
    }
    entries.sort();
    let manifest = Manifest { entries };
    let _ = Cookbook::from_manifest(Path::new("fuzz@1.0.0"), &manifest, |e| {
        blobs
            .get(&e.sha256)
            .cloned()
            .ok_or_else(|| LoadError::in_file("fuzz", "no blob"))
    });
});
