//! Recipe parsing must never panic, whatever the bytes: an error or a recipe.
#![no_main]

use std::path::Path;

use cm_model::recipe::parse_recipe;
use cm_model::resources::CookbookRefs;
use libfuzzer_sys::fuzz_target;

struct Refs;

impl CookbookRefs for Refs {
    fn has_template(&self, name: &str) -> bool {
        name.ends_with(".hbs")
    }
    fn has_file(&self, name: &str) -> bool {
        !name.is_empty()
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_recipe(Path::new("fuzz/recipes/default.yaml"), text, &Refs);
    }
});
