//! `owner` and `group` on the file-like resources (file, template,
//! remote_file, directory), and cron's fixed root ownership, with real
//! accounts: Debian's `daemon` user and `nogroup` group. As root (CI runs as
//! root; elsewhere each test says why it did nothing).

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cm_model::manifest::sha256_hex;
use support::http::HttpServer;
use support::{Sandbox, changed, ok};

const OWNER: &str = "daemon";
const GROUP: &str = "nogroup";
const REMOTE: &[u8] = b"downloaded\n";

fn ids() -> (u32, u32) {
    let uid = nix::unistd::User::from_name(OWNER)
        .unwrap()
        .expect("Debian has a daemon user")
        .uid
        .as_raw();
    let gid = nix::unistd::Group::from_name(GROUP)
        .unwrap()
        .expect("Debian has a nogroup group")
        .gid
        .as_raw();
    (uid, gid)
}

/// (uid, gid, permission bits) of `path`, not following a link.
fn owner_of(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.uid(), m.gid(), m.permissions().mode() & 0o7777)
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

/// A directory, file, template and remote_file owned by daemon:nogroup.
fn sandbox(url: &str) -> Sandbox {
    let s = Sandbox::new();
    let recipe = format!(
        r#"- directory: "{{{{attrs.root}}}}/srv"
  owner: {OWNER}
  group: {GROUP}
  mode: "0750"
- file: "{{{{attrs.root}}}}/srv/file.conf"
  content: "file\n"
  owner: {OWNER}
  group: {GROUP}
- template: "{{{{attrs.root}}}}/srv/template.conf"
  source: t.conf.hbs
  owner: {OWNER}
  group: {GROUP}
  mode: "0640"
- remote_file: "{{{{attrs.root}}}}/srv/remote.bin"
  url: "{url}"
  sha256: "{sha}"
  owner: {OWNER}
  group: {GROUP}
"#,
        sha = sha256_hex(REMOTE)
    );
    s.cookbook(
        "owned",
        &[
            ("recipes/default.yaml", &recipe),
            ("templates/t.conf.hbs", "template\n"),
        ],
    );
    s
}

const PATHS: [&str; 4] = [
    "srv",
    "srv/file.conf",
    "srv/template.conf",
    "srv/remote.bin",
];

#[test]
fn owner_and_group_are_set_kept_and_repaired_on_file_like_resources() {
    if !support::require_root("changing owners") {
        return;
    }
    let (uid, gid) = ids();
    let http = HttpServer::serving(REMOTE);
    let s = sandbox(&http.url);

    let why = ok(&s.why_run("owned")).clone();
    assert_eq!(why.resources_changed, 4);
    assert!(!s.path("srv").exists(), "why-run created the directory");

    let first = ok(&s.apply("owned")).clone();
    assert_eq!(first.resources_changed, 4, "{:?}", changed(&first));
    let modes = [0o750, 0o644, 0o640, 0o644];
    for (rel, mode) in PATHS.iter().zip(modes) {
        assert_eq!(owner_of(&s.path(rel)), (uid, gid, mode), "{rel}");
    }
    assert_eq!(ok(&s.apply("owned")).resources_changed, 0);

    // Handed back to root by hand: each is given back, content untouched.
    for rel in PATHS {
        chown(&s.path(rel), 0, 0);
    }
    let drift = format!("owner 0 -> {uid}");
    let why = ok(&s.why_run("owned")).clone();
    assert_eq!(why.resources_changed, 4);
    assert_eq!(owner_of(&s.path("srv/file.conf")).0, 0, "why-run chowned");
    let repaired = ok(&s.apply("owned")).clone();
    for (r, rel) in repaired.resources.iter().zip(PATHS) {
        assert_eq!(
            r.changes,
            [drift.clone(), format!("group 0 -> {gid}")],
            "{rel}"
        );
        assert_eq!(owner_of(&s.path(rel)).0, uid, "{rel}");
        assert_eq!(owner_of(&s.path(rel)).1, gid, "{rel}");
    }
    assert_eq!(http.requests(), 1, "only the owner changed: no download");
    assert_eq!(
        std::fs::read_to_string(s.path("srv/template.conf")).unwrap(),
        "template\n"
    );
}

#[test]
fn a_cron_file_is_root_s_and_0644_whatever_is_done_to_it() {
    if !support::require_root("writing /etc/cron.d") {
        return;
    }
    let (uid, gid) = ids();
    let name = format!("cm-test-owner-{}", std::process::id());
    let path = Path::new("/etc/cron.d").join(&name);
    let s = Sandbox::new();
    s.cookbook(
        "jobs",
        &[(
            "recipes/default.yaml",
            &format!("- cron: {name}\n  user: {OWNER}\n  command: /bin/true\n"),
        )],
    );
    let first = s.apply("jobs");
    let created = std::fs::symlink_metadata(&path).map(|_| owner_of(&path));
    chown(&path, uid, gid);
    std::fs::set_permissions(&path, PermissionsExt::from_mode(0o666)).unwrap();
    let repaired = s.apply("jobs");
    let after = owner_of(&path);
    let _ = std::fs::remove_file(&path);

    ok(&first);
    assert_eq!(
        created.unwrap(),
        (0, 0, 0o644),
        "the job runs as daemon, the file is root's"
    );
    assert_eq!(
        ok(&repaired).resources[0].changes,
        [
            format!("owner {uid} -> 0"),
            format!("group {gid} -> 0"),
            "mode 0666 -> 0644".to_string()
        ]
    );
    assert_eq!(after, (0, 0, 0o644));
}
