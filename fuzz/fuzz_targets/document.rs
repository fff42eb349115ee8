//! Roles and environments as the server validates them on set: an error or
//! a document, never a panic, whatever the text. The body is
//! `cm_model::fuzzing::document`, which CI replays on the corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cm_model::fuzzing::document(data));
