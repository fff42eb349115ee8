//! The crate direction docs/architecture.md describes, checked from
//! `cargo metadata`: cm-model at the bottom, cm-proto over it (the wire
//! types and their conversions from the model's), the agent, the server
//! and cmctl over both and never over each other, and only the test and
//! bench crates above everything.

use std::collections::{BTreeMap, BTreeSet};

/// For each crate of ours, the crates of ours it may depend on (any kind:
/// normal, dev or build).
const ALLOWED: &[(&str, &[&str])] = &[
    ("cm-model", &[]),
    ("cm-proto", &["cm-model"]),
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
