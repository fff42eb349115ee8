//! Every fuzz target's corpus (`fuzz/corpus/TARGET/`) replayed through the
//! target's body (`cm_model::fuzzing`) on stable Rust, so CI runs what the
//! fuzzer found without cargo-fuzz. A corpus or a target file without its
//! row in `cm_model::fuzzing::TARGETS` fails here rather than go unplayed.

use std::path::{Path, PathBuf};

use cm_model::fuzzing::{Body, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The entries of `dir`, sorted, by file name.
fn entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut list: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), e.path())
        })
        .collect();
    list.sort();
    list
}

fn body_of(target: &str) -> Option<Body> {
    TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, f)| *f)
}

#[test]
fn every_fuzz_target_file_has_its_body_in_the_model() {
    for (file, _) in entries(&fuzz_dir().join("fuzz_targets")) {
        let target = file.trim_end_matches(".rs");
        assert!(
            body_of(target).is_some(),
            "fuzz/fuzz_targets/{file}: no row \"{target}\" in cm_model::fuzzing::TARGETS"
        );
    }
}

#[test]
fn every_corpus_replays_through_its_target_without_a_panic() {
    let mut replayed = 0;
    for (target, dir) in entries(&fuzz_dir().join("corpus")) {
        let body = body_of(&target).unwrap_or_else(|| {
            panic!("fuzz/corpus/{target}: no row \"{target}\" in cm_model::fuzzing::TARGETS")
        });
        for (name, input) in entries(&dir) {
            let bytes = std::fs::read(&input).unwrap();
            let outcome = std::panic::catch_unwind(|| body(&bytes));
            assert!(outcome.is_ok(), "fuzz/corpus/{target}/{name} panics");
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no corpus input under fuzz/corpus/");
}
