//! Recipe parsing must never panic, whatever the bytes: an error or a recipe.
//! The body is `cm_model::fuzzing::recipe`, which CI replays on the corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cm_model::fuzzing::recipe(data));
