//! The agent runs as root and writes only where the resource says: symbolic
//! links that someone other than root could have planted are refused or
//! replaced, never followed; private files are reported by size and digest;
//! rendered paths that climb or collapse are refused before anything runs.
//!
//! These tests run as root and hand directories to `nobody` for real.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cm_model::report::RunReport;
use support::{Sandbox, ok};

const NOBODY: u32 = 65534;

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// The first resource error of a failed run.
fn resource_error(r: &RunReport) -> String {
    assert!(!r.succeeded(), "the run should have failed: {r:?}");
    r.resources
        .iter()
        .find_map(|x| x.error.clone())
        .or_else(|| r.error.clone())
        .unwrap_or_default()
}

/// Every file under `dir` (recursively) whose content holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries {
        let p = e.unwrap().path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            found.extend(files_holding(&p, needle));
        } else if meta.is_file()
            && String::from_utf8_lossy(&std::fs::read(&p).unwrap()).contains(needle)
        {
            found.push(p.display().to_string());
        }
    }
    found
}

/// A sandbox whose `home/alice` belongs to nobody, holding `conf` -> `etc/private`.
fn planted_parent(recipe: &str) -> (Sandbox, std::path::PathBuf) {
    let s = Sandbox::new();
    s.cookbook("app", &[("recipes/default.yaml", recipe)]);
    let home = s.path("home/alice");
    std::fs::create_dir_all(&home).unwrap();
    chown(&home, NOBODY, NOBODY);
    let target = s.path("etc/private");
    std::fs::create_dir_all(&target).unwrap();
    symlink(&target, &home.join("conf"));
    chown(&home.join("conf"), NOBODY, NOBODY);
    (s, target)
}

const APP_CONF: &str = "- file: \"{{attrs.root}}/home/alice/conf/app.conf\"\n  content: \"x\\n\"\n";

/// The run fails on the planted link, naming it, and nothing lands behind it.
fn assert_refused(s: &Sandbox, target: &Path) {
    let err = resource_error(&s.apply("app"));
    let link = s.path("home/alice/conf").display().to_string();
    assert!(
        err.contains(&link) && err.contains("symbolic link"),
        "{err}"
    );
    let behind = std::fs::read_dir(target).unwrap().count();
    assert_eq!(behind, 0, "written through the link");
}

#[test]
fn planted_parent_symlink_is_refused() {
    let (s, target) = planted_parent(APP_CONF);
    assert_refused(&s, &target);
}

#[test]
fn root_owned_link_in_a_directory_others_can_write_is_refused() {
    let (s, target) = planted_parent(APP_CONF);
    // The link is root's, but nobody owns the directory and could have put it there.
    chown(&s.path("home/alice/conf"), 0, 0);
    assert_refused(&s, &target);
    // A root-owned directory that a non-root group may write counts as writable too.
    let home = s.path("home/alice");
    chown(&home, 0, NOBODY);
    chmod(&home, 0o775);
    assert_refused(&s, &target);
}

#[test]
fn link_owned_by_another_user_is_refused_even_in_a_root_directory() {
    let (s, target) = planted_parent(APP_CONF);
    chown(&s.path("home/alice"), 0, 0);
    chmod(&s.path("home/alice"), 0o755);
    assert_refused(&s, &target);
}

#[test]
fn directories_and_links_are_not_created_through_a_planted_parent() {
    let (s, target) = planted_parent(
        r#"
- directory: "{{attrs.root}}/home/alice/conf/sub/dir"
  recursive: true
  ignore_failure: true
- link: "{{attrs.root}}/home/alice/conf/current"
  to: /etc/hostname
  ignore_failure: true
"#,
    );
    let r = s.apply("app");
    assert_eq!(r.resources_failed, 2, "{r:?}");
    for x in &r.resources {
        assert!(
            x.error
                .as_deref()
                .unwrap_or_default()
                .contains("symbolic link"),
            "{x:?}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "created through the link"
    );
}

#[test]
fn root_owned_system_link_is_followed() {
    // Like Debian's /var/run -> /run: root's link in a directory only root may write.
    let s = Sandbox::new();
    s.cookbook(
        "app",
        &[(
            "recipes/default.yaml",
            r#"
- directory: "{{attrs.root}}/var/run/app"
- file: "{{attrs.root}}/var/run/app/app.pid"
  content: "42\n"
"#,
        )],
    );
    std::fs::create_dir_all(s.path("run")).unwrap();
    std::fs::create_dir_all(s.path("var")).unwrap();
    chmod(&s.path("var"), 0o755);
    symlink(Path::new("../run"), &s.path("var/run"));
    ok(&s.apply("app"));
    assert_eq!(
        std::fs::read_to_string(s.path("run/app/app.pid")).unwrap(),
        "42\n"
    );
    assert_eq!(ok(&s.apply("app")).resources_changed, 0);
}

/// `etc/app/app.conf` is a link to a private file holding TOPSECRET.
fn planted_file(recipe: &str) -> Sandbox {
    let s = Sandbox::new();
    s.cookbook("app", &[("recipes/default.yaml", recipe)]);
    std::fs::create_dir_all(s.path("etc/app")).unwrap();
    std::fs::write(s.path("shadow"), "root:TOPSECRET:19000\n").unwrap();
    chmod(&s.path("shadow"), 0o644);
    symlink(&s.path("shadow"), &s.path("etc/app/app.conf"));
    s
}

#[test]
fn planted_file_symlink_is_replaced_and_its_target_never_read() {
    let s =
        planted_file("- file: \"{{attrs.root}}/etc/app/app.conf\"\n  content: \"port = 80\\n\"\n");
    let preview = s.why_run("app");
    ok(&preview);
    assert!(
        !serde_json::to_string(&preview)
            .unwrap()
            .contains("TOPSECRET"),
        "{preview:?}"
    );

    let r = s.apply("app");
    ok(&r);
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("TOPSECRET"), "{json}");
    let shadow = s.path("shadow").display().to_string();
    assert!(
        r.resources[0]
            .changes
            .iter()
            .any(|c| c.contains("replaced symbolic link") && c.contains(&shadow)),
        "{:?}",
        r.resources[0].changes
    );
    let conf = s.path("etc/app/app.conf");
    assert!(std::fs::symlink_metadata(&conf).unwrap().is_file());
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "port = 80\n");
    assert_eq!(
        std::fs::read_to_string(s.path("shadow")).unwrap(),
        "root:TOPSECRET:19000\n"
    );
    let leaked = files_holding(&s.dir.path().join("backup"), "TOPSECRET");
    assert!(leaked.is_empty(), "target copied into a backup: {leaked:?}");
    assert_eq!(ok(&s.apply("app")).resources_changed, 0);
}

#[test]
fn deleting_a_planted_symlink_removes_the_link_only() {
    let s = planted_file("- file: \"{{attrs.root}}/etc/app/app.conf\"\n  action: delete\n");
    let r = s.apply("app");
    ok(&r);
    assert!(!serde_json::to_string(&r).unwrap().contains("TOPSECRET"));
    assert!(std::fs::symlink_metadata(s.path("etc/app/app.conf")).is_err());
    assert!(s.path("shadow").exists());
    let leaked = files_holding(&s.dir.path().join("backup"), "TOPSECRET");
    assert!(leaked.is_empty(), "target copied into a backup: {leaked:?}");
}

const KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";

fn key_cookbook(extra: &str) -> Sandbox {
    let s = Sandbox::new();
    let recipe = format!(
        "- file: \"{{{{attrs.root}}}}/server.key\"\n  source: server.key\n  mode: \"0600\"\n{extra}"
    );
    s.cookbook(
        "keys",
        &[
            ("recipes/default.yaml", recipe.as_str()),
            ("files/server.key", KEY),
        ],
    );
    s
}

#[test]
fn file_others_cannot_read_is_reported_by_size_and_digest() {
    let s = key_cookbook("");
    let r = s.apply("keys");
    ok(&r);
    let diff = r.resources[0].diff.clone().unwrap_or_default();
    assert!(!diff.contains("MIIEvQ"), "{diff}");
    assert!(
        diff.contains("sha256") && diff.contains(&format!("{} bytes", KEY.len())),
        "{diff}"
    );

    std::fs::write(s.path("server.key"), "tampered-by-hand\n").unwrap();
    let r = s.apply("keys");
    ok(&r);
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        !json.contains("MIIEvQ") && !json.contains("tampered-by-hand"),
        "{json}"
    );
    let diff = r.resources[0].diff.clone().unwrap_or_default();
    let sizes = format!("17 -> {} bytes", KEY.len());
    assert!(diff.contains(&sizes) && diff.contains("sha256"), "{diff}");
}

#[test]
fn existing_private_file_keeps_its_content_out_of_the_diff() {
    let s = Sandbox::new();
    s.cookbook(
        "app",
        &[(
            "recipes/default.yaml",
            "- file: \"{{attrs.root}}/db.conf\"\n  content: \"user=app\\n\"\n",
        )],
    );
    std::fs::write(s.path("db.conf"), "password=hunter2-old\n").unwrap();
    chmod(&s.path("db.conf"), 0o640);
    let r = s.apply("app");
    ok(&r);
    let diff = r.resources[0].diff.clone().unwrap_or_default();
    assert!(
        !diff.contains("hunter2") && !diff.contains("user=app"),
        "{diff}"
    );
    assert!(diff.contains("sha256"), "{diff}");
    assert_eq!(
        std::fs::metadata(s.path("db.conf")).unwrap().mode() & 0o7777,
        0o640
    );
}

#[test]
fn diff_true_shows_a_private_files_content_and_diff_false_hides_a_public_one() {
    let s = key_cookbook("  diff: true\n");
    let r = s.apply("keys");
    ok(&r);
    assert!(
        r.resources[0]
            .diff
            .as_deref()
            .unwrap_or_default()
            .contains("+MIIEvQ"),
        "{r:?}"
    );

    let s = Sandbox::new();
    s.cookbook(
        "app",
        &[(
            "recipes/default.yaml",
            "- file: \"{{attrs.root}}/motd\"\n  content: \"hello\\n\"\n  diff: false\n",
        )],
    );
    let r = s.apply("app");
    ok(&r);
    let diff = r.resources[0].diff.clone().unwrap_or_default();
    assert!(!diff.contains("hello") && diff.contains("sha256"), "{diff}");
}

#[test]
fn backups_are_private_copies() {
    let s = Sandbox::new();
    s.cookbook(
        "app",
        &[(
            "recipes/default.yaml",
            "- file: \"{{attrs.root}}/app.conf\"\n  content: \"new\\n\"\n",
        )],
    );
    std::fs::write(s.path("app.conf"), "old\n").unwrap();
    chmod(&s.path("app.conf"), 0o644);
    ok(&s.apply("app"));
    let backups = s
        .dir
        .path()
        .join("backup")
        .join(s.root().strip_prefix("/").unwrap());
    let copies: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(std::fs::read_to_string(&copies[0]).unwrap(), "old\n");
    assert_eq!(std::fs::metadata(&copies[0]).unwrap().mode() & 0o777, 0o600);
}

#[test]
fn rendered_path_climbing_out_is_refused_before_anything_changes() {
    let s = Sandbox::new();
    s.cookbook(
        "app",
        &[(
            "recipes/default.yaml",
            r#"
- directory: "{{attrs.root}}/srv/app"
  recursive: true
- file: "{{attrs.root}}/srv/app/{{attrs.p}}"
  content: "x\n"
"#,
        )],
    );
    s.attributes("p: ../x\n");
    let r = s.apply("app");
    assert!(!r.succeeded());
    let err = r.error.clone().unwrap_or_default();
    assert!(err.contains("path") && err.contains(".."), "{err}");
    assert!(!s.path("srv").exists(), "something ran before the refusal");
}

#[test]
fn rendered_paths_that_are_not_plain_are_refused() {
    let cases = [
        ("- directory: \"{{attrs.p}}\"\n", "/a/../.."),
        ("- directory: \"{{attrs.p}}\"\n", "/a/.."),
        ("- file: \"{{attrs.p}}\"\n  content: x\n", "/etc//passwd"),
        (
            "- template: \"{{attrs.p}}\"\n  source: t.hbs\n",
            "/etc/./app.conf",
        ),
        (
            "- remote_file: \"{{attrs.p}}\"\n  url: http://127.0.0.1:9/x\n  sha256: \"0000000000000000000000000000000000000000000000000000000000000000\"\n",
            "/srv/../etc/x",
        ),
        (
            "- link: \"{{attrs.p}}\"\n  to: /etc/hostname\n",
            "/etc/app/../../x",
        ),
        (
            "- link: /tmp/cm-never\n  to: \"{{attrs.p}}\"\n  link_type: hard\n",
            "/etc/../etc/hostname",
        ),
        (
            "- execute: \"true\"\n  cwd: \"{{attrs.p}}\"\n",
            "/srv/../etc",
        ),
        (
            "- execute: \"true\"\n  creates: \"{{attrs.p}}\"\n",
            "/srv/app/../../etc",
        ),
    ];
    for (recipe, p) in cases {
        let s = Sandbox::new();
        s.cookbook(
            "app",
            &[("recipes/default.yaml", recipe), ("templates/t.hbs", "t\n")],
        );
        s.attributes(&format!("p: \"{p}\"\n"));
        let r = s.why_run("app");
        assert!(!r.succeeded(), "{recipe} with {p} was accepted: {r:?}");
        let err = r.error.clone().unwrap_or_default();
        assert!(err.contains(p), "{recipe}: {err}");
    }
}
