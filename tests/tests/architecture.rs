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

/// Dependencies a member uses without naming them in its own code: the
/// code generated into cm-proto's build output calls prost and tonic-prost.
const USED_BY_GENERATED_CODE: &[(&str, &str)] =
    &[("cm-proto", "prost"), ("cm-proto", "tonic-prost")];

/// A member's manifest as these checks read it.
struct Member {
    name: String,
    dir: std::path::PathBuf,
    /// What its Cargo.toml declares: (name, inherited from
    /// `[workspace.dependencies]`).
    deps: Vec<(String, bool)>,
}

fn members() -> Vec<Member> {
    let meta = metadata();
    meta["packages"]
        .as_array()
        .expect("packages array")
        .iter()
        .map(|p| {
            let path =
                std::path::PathBuf::from(p["manifest_path"].as_str().expect("manifest path"));
            let text = std::fs::read_to_string(&path).expect("the manifest reads");
            Member {
                name: p["name"].as_str().expect("package name").to_string(),
                dir: path.parent().expect("a manifest's directory").to_path_buf(),
                deps: declared(&text),
            }
        })
        .collect()
}

/// The dependency lines of a Cargo.toml written the way ours are: one
/// `name = ...` or `name.workspace = true` per line under a
/// `[...dependencies]` header.
fn declared(toml: &str) -> Vec<(String, bool)> {
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line.ends_with("dependencies]");
            continue;
        }
        if !in_deps || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split(['=', ' ']).next().unwrap_or_default();
        let name = key.trim_end_matches(".workspace").to_string();
        let inherited = key.ends_with(".workspace") || line.contains("workspace = true");
        deps.push((name, inherited));
    }
    deps
}

#[test]
fn a_crate_two_members_use_is_declared_once_for_the_workspace() {
    let members = members();
    let mut users: BTreeMap<&str, Vec<(&str, bool)>> = BTreeMap::new();
    for member in &members {
        let mut seen = BTreeSet::new();
        for (dep, inherited) in &member.deps {
            if seen.insert(dep.as_str()) {
                users
                    .entry(dep)
                    .or_default()
                    .push((&member.name, *inherited));
            }
        }
    }
    let own_versions: Vec<String> = users
        .iter()
        .filter(|(_, u)| u.len() > 1)
        .flat_map(|(dep, u)| {
            u.iter()
                .filter(|(_, inherited)| !inherited)
                .map(move |(member, _)| format!("{member}: {dep}"))
        })
        .collect();
    assert!(
        own_versions.is_empty(),
        "used by several members but declared with a version of its own (put it in the root \
         Cargo.toml's [workspace.dependencies] and write `{{ workspace = true }}`): {own_versions:?}"
    );
}

#[test]
fn every_declared_dependency_is_used() {
    let mut unused = Vec::new();
    for Member {
        name: member,
        dir,
        deps,
    } in members()
    {
        let code = rust_sources(&dir)
            .iter()
            .map(|f| std::fs::read_to_string(f).expect("a source file reads"))
            .collect::<Vec<_>>()
            .join("\n");
        for (dep, _) in deps {
            let ident = dep.replace('-', "_");
            if !mentions(&code, &ident)
                && !USED_BY_GENERATED_CODE.contains(&(member.as_str(), dep.as_str()))
            {
                unused.push(format!("{member}: {dep}"));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "declared but named nowhere in the member's code: {unused:?}"
    );
}

/// Whether `code` names the crate `ident` as a path (`ident::`), a macro
/// (`ident!`) or in a `use` or `extern crate`.
fn mentions(code: &str, ident: &str) -> bool {
    code.match_indices(ident).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = &code[at + ident.len()..];
        let starts_a_word = !before.is_some_and(|c| c.is_alphanumeric() || c == '_');
        starts_a_word
            && (after.starts_with("::")
                || after.starts_with('!')
                || code[..at].ends_with("use ") && after.starts_with([';', ' ']))
    })
}

/// Every `.rs` file under `dir`: not in target/ (fuzz's build dir too) nor
/// in a hidden directory.
fn rust_sources(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    files_ending(dir, &["rs"])
}

/// Every file under `dir` with one of these extensions, as [`rust_sources`].
fn files_ending(dir: &std::path::Path, extensions: &[&str]) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("a source directory reads") {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    stack.push(path);
                }
            } else if path
                .extension()
                .is_some_and(|e| extensions.iter().any(|x| e == *x))
            {
                files.push(path);
            }
        }
    }
    files
}

/// gRPC statuses are what clients see and agents act on, so they are made
/// in one place: the server's API (`server/src/api/`, from typed errors in
/// `api/status.rs`). The wire layer (`server/src/wire/`) is the other:
/// it answers before any service runs (a call without a client
/// certificate outside Enroll, a server too busy for another handshake).
#[test]
fn grpc_statuses_are_made_only_in_the_api_and_the_wire() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src");
    let outside: Vec<String> = rust_sources(&src)
        .into_iter()
        .filter(|f| !f.starts_with(src.join("api")) && !f.starts_with(src.join("wire")))
        .filter(|f| {
            std::fs::read_to_string(f)
                .expect("a source file reads")
                .contains("Status::")
        })
        .map(|f| {
            f.strip_prefix(&src)
                .expect("under server/src")
                .display()
                .to_string()
        })
        .collect();
    assert!(
        outside.is_empty(),
        "gRPC statuses made outside server/src/api/ and wire/: {outside:?}; return a typed error and map it in api/status.rs"
    );
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
    let files = rust_sources(root);
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

/// A clone stands alone: no code, doc, script or config cites the design
/// notes the project started from, which live outside the repository.
#[test]
fn nothing_cites_files_outside_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    // Spelled in halves so this file does not match itself.
    let outside = [
        concat!("DESIGN", ".md"),
        concat!("STACK", ".md"),
        concat!("STYLE", ".md"),
        concat!("ANCHORS", ".md"),
        concat!("../", "shared"),
    ];
    let files = files_ending(
        root,
        &["rs", "md", "sh", "toml", "yaml", "yml", "proto", "sql"],
    );
    assert!(files.len() > 100, "found only {} files", files.len());
    let mut citing = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for name in outside.iter().filter(|n| text.contains(*n)) {
            citing.push(format!(
                "{}: {name}",
                file.strip_prefix(root).unwrap().display()
            ));
        }
    }
    assert!(
        citing.is_empty(),
        "cite docs/architecture.md or docs/decisions.md instead: {citing:?}"
    );
}

/// One module-file style: a module with submodules is `foo/mod.rs`, never
/// `foo.rs` beside a `foo/` directory.
#[test]
fn modules_with_submodules_are_folders_with_mod_rs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let mut both = Vec::new();
    for file in rust_sources(root) {
        let beside = file.with_extension("");
        let name = beside.file_name().unwrap_or_default();
        if name != "main" && name != "lib" && beside.is_dir() {
            both.push(file.strip_prefix(root).unwrap().display().to_string());
        }
    }
    assert!(both.is_empty(), "move these to FOLDER/mod.rs: {both:?}");
}

/// unwrap is denied at the root of every crate that ships (Cargo cannot
/// scope the lint to some targets: docs/decisions.md, "Lints"), so every
/// library and binary root of those crates carries the attribute.
#[test]
fn every_shipping_crate_root_denies_unwrap() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let mut roots = Vec::new();
    for krate in ["model", "proto", "agent", "server", "cmctl"] {
        let src = root.join(krate).join("src");
        for file in rust_sources(&src) {
            let dir = file.parent().unwrap();
            let name = file.file_name().unwrap();
            // src/lib.rs, src/main.rs, src/bin/NAME.rs, src/bin/NAME/main.rs
            let crate_root = (dir == src && (name == "lib.rs" || name == "main.rs"))
                || dir == src.join("bin")
                || (dir.parent() == Some(&src.join("bin")) && name == "main.rs");
            if crate_root {
                roots.push(file);
            }
        }
    }
    assert!(roots.len() >= 7, "found only {roots:?}");
    let missing: Vec<String> = roots
        .iter()
        .filter(|f| {
            !std::fs::read_to_string(f)
                .unwrap()
                .contains("#![cfg_attr(not(test), deny(clippy::unwrap_used))]")
        })
        .map(|f| f.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "crate roots without the unwrap lint: {missing:?}"
    );
}
