//! The server's commit validation must refuse or accept, never panic or
//! overflow, whatever the manifest and the files. The body (and the input
//! format) is `cm_model::fuzzing::manifest`, which CI replays on the corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cm_model::fuzzing::manifest(data));
