//! `when` conditions must parse or fail cleanly, and evaluate without panicking.
//! The body is `cm_model::fuzzing::condition`, which CI replays on the corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cm_model::fuzzing::condition(data));
