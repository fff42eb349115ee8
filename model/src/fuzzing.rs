//! The bodies of the fuzz targets in `fuzz/fuzz_targets/`, kept here so that
//! a plain test replays every corpus in `fuzz/corpus/` on stable Rust, in
//! CI, without cargo-fuzz (`model/tests/fuzz_corpora.rs`). Not an API: each
//! function takes any bytes and must return without panicking.
//!
//! A new fuzz target is one function here and one row in [`TARGETS`]; its
//! file under `fuzz/fuzz_targets/` only calls the function.

use std::collections::BTreeMap;
use std::path::Path;

use crate::LoadError;
use crate::condition::Condition;
use crate::cookbook::Cookbook;
use crate::manifest::{Manifest, ManifestEntry, sha256_hex};
use crate::recipe::parse_recipe;
use crate::resources::CookbookRefs;
use crate::role::{Environment, Role};

/// A fuzz target's body: any bytes in, no panic.
pub type Body = fn(&[u8]);

/// Every fuzz target: its name (its file under `fuzz/fuzz_targets/` and its
/// corpus directory under `fuzz/corpus/`) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("recipe", recipe),
    ("condition", condition),
    ("manifest", manifest),
    ("document", document),
];

/// Recipe parsing never panics, whatever the bytes: an error or a recipe.
pub fn recipe(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_recipe(Path::new("fuzz/recipes/default.yaml"), text, &AnyRefs);
    }
}

/// `when` conditions parse or fail cleanly, and evaluate without panicking.
pub fn condition(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(c) = Condition::parse(text)
    {
        let context = serde_json::json!({
            "attrs": {"a": 1, "b": [1, "x"], "c": {"d": true}},
            "node": {"os": {"id": "debian"}},
            "cluster": {},
        });
        let _ = c.eval(&context);
    }
}

/// The server's commit validation refuses or accepts, never panics or
/// overflows, whatever the manifest and the files: each record is
/// `MODE PATH` `\x01` `CONTENT`, records separated by `\0`.
pub fn manifest(data: &[u8]) {
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
}

/// Roles and environments as the server validates them on set: an error or
/// a document, never a panic, whatever the text.
pub fn document(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Role::parse(Path::new("fuzz/role.yaml"), text);
        let _ = Environment::parse(Path::new("fuzz/environment.yaml"), text);
    }
}

/// A cookbook that has every template ending in `.hbs` and every file.
struct AnyRefs;

impl CookbookRefs for AnyRefs {
    fn has_template(&self, name: &str) -> bool {
        name.ends_with(".hbs")
    }
    fn has_file(&self, name: &str) -> bool {
        !name.is_empty()
    }
}
