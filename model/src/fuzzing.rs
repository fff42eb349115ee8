//! The bodies of the fuzz targets in `fuzz/fuzz_targets/`, kept here so that
//! a plain test replays every corpus in `fuzz/corpus/` on stable Rust, in
//! CI, without cargo-fuzz (`model/tests/fuzz_corpora.rs`). Not an API: each
//! function takes any bytes and must return without panicking.
//!
//! A new fuzz target is one function here and one row in [`TARGETS`]; its
//! file under `fuzz/fuzz_targets/` only calls the function.

use std::path::Path;

use crate::condition::Condition;
use crate::recipe::parse_recipe;
use crate::resources::CookbookRefs;

/// A fuzz target's body: any bytes in, no panic.
pub type Body = fn(&[u8]);

/// Every fuzz target: its name (its file under `fuzz/fuzz_targets/` and its
/// corpus directory under `fuzz/corpus/`) and its body.
pub const TARGETS: &[(&str, Body)] = &[("recipe", recipe), ("condition", condition)];

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
