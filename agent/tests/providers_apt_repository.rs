//! The apt_repository provider against this machine's real /etc/apt, read
//! back by apt itself. It needs root (CI runs as root); elsewhere each test
//! says why it did nothing. Every test uses names of its own and cleans up
//! after itself, also when it fails.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use serde_json::json;
use support::system::{Cleanup, converge, converge_cx, resource};

const KEY: &str =
    "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZtest\n-----END PGP PUBLIC KEY BLOCK-----\n";

fn repo_paths(name: &str) -> (PathBuf, PathBuf) {
    (
        PathBuf::from(format!("/etc/apt/keyrings/{name}.asc")),
        PathBuf::from(format!("/etc/apt/sources.list.d/{name}.sources")),
    )
}

fn repo_cleanup(name: &str) -> Cleanup {
    let (key, sources) = repo_paths(name);
    Cleanup::new(&[&[
        "rm",
        "-f",
        &sources.to_string_lossy(),
        &key.to_string_lossy(),
    ]])
}

#[test]
fn apt_repository_writes_a_source_apt_reads_then_removes_it() {
    if !support::require_root("writing /etc/apt") {
        return;
    }
    let name = format!("cm-test-{}", std::process::id());
    let _cleanup = repo_cleanup(&name);
    let (key, sources) = repo_paths(&name);
    // Loopback's discard port: an apt-get update running meanwhile only warns.
    let r = resource(
        "apt_repository",
        json!({"repo_name": name, "uris": ["http://127.0.0.1:9/debian"],
            "suites": ["cmtest"], "components": ["main"], "key": KEY}),
    );
    let (out, cx) = converge_cx(&r, "add", true);
    assert!(
        out.unwrap()
            .changes
            .contains(&"sources: created".to_string())
    );
    assert!(cx.apt_sources_changed && !sources.exists() && !key.exists());

    let (out, cx) = converge_cx(&r, "add", false);
    let out = out.unwrap();
    assert!(
        out.changes.contains(&"key: created".to_string()),
        "{:?}",
        out.changes
    );
    assert!(
        out.diff
            .unwrap()
            .contains(&format!("+Signed-By: {}", key.display()))
    );
    assert!(
        cx.apt_sources_changed,
        "the next install refreshes the lists"
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap(), KEY);
    for p in [&key, &sources] {
        let m = std::fs::metadata(p).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid()), (0o644, 0), "{}", p.display());
    }
    // apt itself reads the stanza (offline: no lists are fetched).
    let targets = Command::new("apt-get")
        .args(["indextargets", "--no-release-info"])
        .output()
        .unwrap();
    let targets = String::from_utf8_lossy(&targets.stdout);
    assert!(
        targets.contains(&format!("Sourcesentry: {}:", sources.display())),
        "apt did not take {}",
        sources.display()
    );

    let (out, cx) = converge_cx(&r, "add", false);
    assert_eq!(out.unwrap().changes, Vec::<String>::new(), "second run");
    assert!(!cx.apt_sources_changed);

    std::fs::write(&sources, "Types: deb\nURIs: http://127.0.0.1:9/other\n").unwrap();
    assert_eq!(converge(&r, "add"), ["sources: content"]);

    let (out, cx) = converge_cx(&r, "remove", false);
    assert_eq!(out.unwrap().changes.len(), 2);
    assert!(cx.apt_sources_changed && !key.exists() && !sources.exists());
    assert_eq!(converge(&r, "remove"), Vec::<String>::new());
}

#[test]
fn apt_repository_key_source_comes_from_the_cookbook_files() {
    if !support::require_root("writing /etc/apt") {
        return;
    }
    let name = format!("cm-test-ks-{}", std::process::id());
    let _cleanup = repo_cleanup(&name);
    let s = support::Sandbox::new();
    let recipe = |action: &str| {
        format!(
            "- apt_repository: {name}\n  uris: [\"http://127.0.0.1:9/debian\"]\n  suites: [cmtest]\n  key_source: repo.asc\n  action: {action}\n"
        )
    };
    s.cookbook(
        "repo",
        &[
            ("files/repo.asc", KEY),
            ("recipes/default.yaml", &recipe("add")),
            ("recipes/remove.yaml", &recipe("remove")),
        ],
    );
    support::ok(&s.apply("repo"));
    let (key, sources) = repo_paths(&name);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), KEY);
    assert!(
        !std::fs::read_to_string(&sources)
            .unwrap()
            .contains("Components")
    );
    assert_eq!(support::ok(&s.apply("repo")).resources_changed, 0);
    support::ok(&s.apply("repo::remove"));
    assert!(!key.exists() && !sources.exists());
}
