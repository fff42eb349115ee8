//! Roles and environments as the server validates them on set: an error or
//! a document, never a panic, whatever the text.
#![no_main]

use std::path::Path;

use cm_model::role::{Environment, Role};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Role::parse(Path::new("fuzz/role.yaml"), text);
        let _ = Environment::parse(Path::new("fuzz/environment.yaml"), text);
    }
});
