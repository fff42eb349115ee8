//! The crate direction docs/architecture.md describes, checked from
//! `cargo metadata`: cm-model and cm-proto at the bottom, the agent, the
//! server and cmctl over them and never over each other, and only the
//! test and bench crates above everything.

use std::collections::{BTreeMap, BTreeSet};

/// For each crate of ours, the crates of ours it may depend on (any kind:
/// normal, dev or build).
const ALLOWED: &[(&str, &[&str])] = &[
    ("cm-model", &[]),
    ("cm-proto", &[]),
    ("cm-agent", &["cm-model", "cm-proto"]),
    ("cm-server", &["cm-model", "cm-proto"]),
    ("cmctl", &["cm-model", "cm-proto"]),
    ("cm-e2e", &["cm-model", "cm-proto", "cm-server"]),
    ("cm-bench", &["cm-model", "cm-proto", "cm-server"]),
];

/// Wire and runtime crates the model must not know: it is shared by all
/// three programs and describes cookbooks, not transports.
const NOT_IN_MODEL: &[&str] = &["tonic", "prost", "tokio", "sqlx", "reqwest"];

fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// Each workspace package and the names of everything it depends on.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages array");
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("package name").to_string();
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies array")
                .iter()
                .map(|d| d["name"].as_str().expect("dependency name").to_string())
                .collect();
            (name, deps)
        })
        .collect()
}

#[test]
fn crates_depend_only_downwards() {
    let deps = dependencies();
    let ours: BTreeSet<&str> = ALLOWED.iter().map(|(n, _)| *n).collect();
    let members: BTreeSet<&str> = deps.keys().map(String::as_str).collect();
    assert_eq!(
        members, ours,
        "a workspace crate was added or renamed: give it a row in ALLOWED and in docs/architecture.md"
    );
    let mut wrong = Vec::new();
    for (name, allowed) in ALLOWED {
        for dep in &deps[*name] {
            if ours.contains(dep.as_str()) && !allowed.contains(&dep.as_str()) {
                wrong.push(format!("{name} -> {dep}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the direction: {wrong:?}"
    );
}

#[test]
fn the_model_knows_no_wire_or_runtime() {
    let deps = dependencies();
    let bad: Vec<&String> = deps["cm-model"]
        .iter()
        .filter(|d| NOT_IN_MODEL.contains(&d.as_str()))
        .collect();
    assert!(bad.is_empty(), "cm-model depends on {bad:?}");
}

/// Every `.rs` file of the workspace (not target/, not fuzz's build dir).
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_allowed_unsafe_is_listed_in_the_decisions() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let decisions = std::fs::read_to_string(root.join("docs/decisions.md")).unwrap();
    let table = decisions
        .split("## Where `unsafe` is allowed")
        .nth(1)
        .expect("docs/decisions.md has a section 'Where `unsafe` is allowed'");
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut unlisted = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // Spelled in two halves so this file does not match itself.
        if text.contains(concat!("allow(", "unsafe_code)")) {
            let relative = file
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if !table.contains(&format!("`{relative}`")) {
                unlisted.push(relative);
            }
        }
    }
    assert!(files.len() > 100, "found only {} .rs files", files.len());
    assert!(
        unlisted.is_empty(),
        "unsafe allowed in files docs/decisions.md does not list: {unlisted:?}"
    );
}
