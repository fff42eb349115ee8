//! The validation a push, a commit and a compile share: manifest rules,
//! YAML tags, template checks, refused the same way from a directory and
//! from memory.

use super::*;
use crate::cookbooks::CookbookSet;

fn file(text: &str) -> CookbookFile {
    CookbookFile {
        bytes: text.as_bytes().to_vec(),
        mode: 0o644,
    }
}

fn minimal() -> BTreeMap<String, CookbookFile> {
    BTreeMap::from([
        (
            "metadata.yaml".to_string(),
            file("name: c\nversion: 1.0.0\n"),
        ),
        ("recipes/default.yaml".to_string(), file("- file: /tmp/x\n")),
    ])
}

fn load(files: BTreeMap<String, CookbookFile>) -> Result<Cookbook, LoadError> {
    Cookbook::from_files(Path::new("c@1.0.0"), files)
}

fn entry(path: &str, bytes: &[u8], mode: u32) -> ManifestEntry {
    ManifestEntry {
        path: path.to_string(),
        sha256: sha256_hex(bytes),
        size: bytes.len() as u64,
        mode,
    }
}

/// A manifest as a push sends it, and the blobs behind it.
fn from_manifest(entries: Vec<ManifestEntry>) -> Result<Cookbook, LoadError> {
    let blobs: BTreeMap<String, Vec<u8>> = minimal()
        .into_values()
        .chain([file("x"), file("y")])
        .map(|f| (sha256_hex(&f.bytes), f.bytes))
        .collect();
    let manifest = Manifest { entries };
    Cookbook::from_manifest(Path::new("c@1.0.0"), &manifest, |e| {
        blobs
            .get(&e.sha256)
            .cloned()
            .ok_or_else(|| LoadError::in_file("blob", "missing"))
    })
}

fn base_entries() -> Vec<ManifestEntry> {
    minimal()
        .iter()
        .map(|(p, f)| entry(p, &f.bytes, f.mode))
        .collect()
}

#[test]
fn a_manifest_naming_one_file_twice_is_refused_naming_both() {
    let mut entries = base_entries();
    entries.push(entry("files/a", b"x", 0o644));
    entries.push(entry("files/a", b"y", 0o644));
    let err = from_manifest(entries).unwrap_err();
    assert_eq!(
        err.to_string(),
        "c@1.0.0: \"files/a\" names the same file as \"files/a\""
    );
    for (first, second) in [("./files/a", "files/a"), ("files/a", "files//a")] {
        let mut entries = base_entries();
        entries.push(entry(first, b"x", 0o644));
        entries.push(entry(second, b"y", 0o644));
        let err = from_manifest(entries).unwrap_err();
        assert!(
            err.message.contains(first) && err.message.contains(second),
            "{err}"
        );
    }
}

#[test]
fn case_only_differences_control_characters_and_modes_are_refused() {
    let mut files = minimal();
    files.insert("files/Motd".into(), file("x"));
    files.insert("files/motd".into(), file("y"));
    assert!(load(files).unwrap_err().message.contains("only in case"));
    let mut files = minimal();
    files.insert("files/a\nb".into(), file("x"));
    let err = load(files).unwrap_err();
    assert!(err.message.contains("control characters"), "{err}");
    assert!(!err.to_string().contains('\n'), "{err:?}");
    let mut entries = base_entries();
    entries.push(entry("files/x", b"x", 0o100644));
    let err = from_manifest(entries).unwrap_err();
    assert!(err.message.contains("mode 0o100644"), "{err}");
}

#[test]
fn content_that_is_not_what_the_manifest_says_is_refused() {
    let mut entries = base_entries();
    let mut lie = entry("files/x", b"x", 0o644);
    lie.size = 2;
    entries.push(lie);
    let err = from_manifest(entries).unwrap_err();
    assert!(err.message.contains("not the 2 bytes"), "{err}");
}

#[test]
fn yaml_tags_are_refused_in_every_cookbook_file() {
    for (rel, text, line) in [
        ("metadata.yaml", "name: c\nversion: !!str 1.0.0\n", 2),
        ("attributes.yaml", "a:\n  b: !!binary aGk=\n", 2),
        ("recipes/default.yaml", "- file: !custom /tmp/x\n", 1),
    ] {
        let mut files = minimal();
        files.insert(rel.to_string(), file(text));
        let err = load(files).unwrap_err();
        assert!(err.file.ends_with(rel), "{err}");
        assert_eq!(err.pos.line, line, "{err}");
        assert!(err.message.contains("YAML tag"), "{err}");
    }
}

#[test]
fn a_deep_template_file_is_refused_with_its_file_and_line() {
    let deep = format!(
        "{}x{}",
        "{{#if a}}\n".repeat(1_500),
        "{{/if}}".repeat(1_500)
    );
    let err = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let mut files = minimal();
            files.insert("templates/deep.hbs".into(), file(&deep));
            load(files).unwrap_err()
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(err.file.ends_with("c@1.0.0/templates/deep.hbs"), "{err}");
    assert_eq!(err.pos.line, 65, "{err}");
    assert!(err.message.contains("at most 64"), "{err}");
}

#[test]
fn a_directory_over_the_file_limit_is_refused_while_reading() {
    let dir = tempfile::tempdir().unwrap();
    super::tests::write(
        dir.path(),
        &[("metadata.yaml", "name: c\nversion: 1.0.0\n")],
    );
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    for i in 0..MAX_FILES {
        std::fs::write(files.join(i.to_string()), "").unwrap();
    }
    let err = Cookbook::load_dir(dir.path()).unwrap_err();
    assert!(err.message.contains("more than 10000 files"), "{err}");
}

#[test]
fn the_bundled_cookbooks_pass_the_validation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("cookbooks");
    let set = CookbookSet::load_dir(&root).unwrap();
    assert!(!set.cookbooks.is_empty());
    set.templates().unwrap();
}
