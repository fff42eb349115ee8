//! `deploy` for real, as docs/cookbooks.md describes it: releases from a
//! cookbook tarball, a URL served on loopback and a git repository made
//! here; shared directories linked in and owned by the application's user;
//! `current` switched, kept releases counted, rollback; why-run; and the
//! tarballs and downloads that are refused with `current` untouched. Every
//! test works in a directory of its own; those that set owners need root
//! (CI runs as root), elsewhere they say why they did nothing. Not listed
//! in tests/cluster/providers.sh: a deploy touches only its own directory,
//! nothing an init system or apt decides, and the node images have no git.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use cm_model::manifest::sha256_hex;
use cm_model::report::RunReport;
use flate2::Compression;
use flate2::write::GzEncoder;
use support::http::HttpServer;
use support::{Sandbox, ok};

/// One entry of a test tarball; names are written as given, `..` and all.
enum Entry<'a> {
    File(&'a str, &'a str),
    Mode(&'a str, &'a str, u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    Fifo(&'a str),
}

fn tarball(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (name, kind, data, mode, link) = match *entry {
            Entry::File(name, text) => (name, tar::EntryType::Regular, text, 0o644, None),
            Entry::Mode(name, text, mode) => (name, tar::EntryType::Regular, text, mode, None),
            Entry::Dir(name) => (name, tar::EntryType::Directory, "", 0o755, None),
            Entry::Symlink(name, to) => (name, tar::EntryType::Symlink, "", 0o777, Some(to)),
            Entry::HardLink(name, to) => (name, tar::EntryType::Link, "", 0o644, Some(to)),
            Entry::Fifo(name) => (name, tar::EntryType::Fifo, "", 0o644, None),
        };
        // Straight into the header: the tar crate's setters refuse `..`.
        let field = &mut header.as_old_mut().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        if let Some(to) = link {
            header.set_link_name(to).unwrap();
        }
        header.set_cksum();
        builder.append(&header, data.as_bytes()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// An application release: a page, a script, and a logs directory of its
/// own that the shared one replaces.
fn app(version: &str) -> Vec<u8> {
    let page = format!("<h1>{version}</h1>\n");
    tarball(&[
        Entry::Dir("./"),
        Entry::File("./index.html", &page),
        Entry::Dir("./bin/"),
        Entry::Mode("./bin/run", "#!/bin/sh\n", 0o4755),
        Entry::Dir("./logs/"),
        Entry::File("./logs/.keep", ""),
        Entry::Symlink("./home.html", "index.html"),
    ])
}

/// The release a tarball makes.
fn id_of(bytes: &[u8]) -> String {
    sha256_hex(bytes)[..16].to_string()
}

/// A sandbox with cookbook `app`: `app` deploys `files/VERSION.tar.gz`
/// (VERSION from `attrs.version`) to `root/app`, `app::rollback` rolls it back.
struct Deployment {
    s: Sandbox,
}

impl Deployment {
    fn new(properties: &str) -> Deployment {
        let recipe = |action: &str| {
            format!(
                "- deploy: \"{{{{attrs.root}}}}/app\"\n  file: \"{{{{attrs.version}}}}.tar.gz\"\n  \
                 action: {action}\n{properties}"
            )
        };
        let s = Sandbox::new();
        s.cookbook(
            "app",
            &[
                ("recipes/default.yaml", &recipe("deploy")),
                ("recipes/rollback.yaml", &recipe("rollback")),
            ],
        );
        Deployment { s }
    }

    /// Ship `bytes` as `files/VERSION.tar.gz` and make VERSION the one deployed.
    fn ship(&self, version: &str, bytes: &[u8]) -> String {
        let files = self.s.cookbooks().join("app/files");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join(format!("{version}.tar.gz")), bytes).unwrap();
        self.s.attributes(&format!("version: {version}\n"));
        id_of(bytes)
    }

    fn dir(&self) -> PathBuf {
        self.s.path("app")
    }

    fn current(&self) -> Option<PathBuf> {
        std::fs::read_link(self.dir().join("current")).ok()
    }

    /// The names under releases/, sorted.
    fn releases(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir().join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn changes(r: &RunReport) -> Vec<String> {
    ok(r).resources[0].changes.clone()
}

fn error(r: &RunReport) -> String {
    assert!(!r.succeeded(), "the run succeeded: {r:?}");
    r.resources[0].error.clone().unwrap_or_default()
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

#[test]
fn a_cookbook_tarball_becomes_current_with_shared_directories_of_the_app_user() {
    if !support::require_root("giving shared directories to www-data") {
        return;
    }
    let d =
        Deployment::new("  shared: [logs, public/uploads]\n  owner: www-data\n  group: www-data\n");
    let v1 = d.ship("v1", &app("v1"));

    assert_eq!(
        changes(&d.s.apply("app")),
        [
            format!("created {}", d.dir().display()),
            "created shared/logs".into(),
            "created shared/public/uploads".into(),
            format!("release {v1} created from cookbook file v1.tar.gz"),
            format!("current switched to release {v1}"),
        ]
    );
    assert_eq!(d.current(), Some(PathBuf::from(format!("releases/{v1}"))));
    let current = d.dir().join("current");
    assert_eq!(
        std::fs::read_to_string(current.join("home.html")).unwrap(),
        "<h1>v1</h1>\n"
    );
    // Shared directories replace what the release shipped, and are the app's.
    // Relative links: up out of the release, then into shared/.
    let parts = |link: &str| -> Vec<String> {
        let target = std::fs::read_link(current.join(link)).unwrap();
        target
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(parts("logs"), ["..", "..", "shared", "logs"]);
    assert_eq!(
        parts("public/uploads"),
        ["..", "..", "..", "shared", "public", "uploads"]
    );
    std::fs::write(current.join("logs/app.log"), "written through the link\n").unwrap();
    assert!(d.dir().join("shared/logs/app.log").exists());
    assert!(!d.dir().join("shared/logs/.keep").exists());
    for shared in ["shared/logs", "shared/public/uploads"] {
        let meta = std::fs::metadata(d.dir().join(shared)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (33, 33), "{shared}");
    }
    // Everything else is root's, and nothing is setuid.
    for path in ["", "releases", "shared", "shared/public", "current"] {
        let meta = std::fs::symlink_metadata(d.dir().join(path)).unwrap();
        assert_eq!(meta.uid(), 0, "{path}");
    }
    let release = d.dir().join("releases").join(&v1);
    let meta = std::fs::metadata(&release).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o755));
    let run = std::fs::metadata(release.join("bin/run")).unwrap();
    assert_eq!((run.uid(), run.mode() & 0o7777), (0, 0o755));

    // The same source again: nothing to do.
    assert_eq!(ok(&d.s.apply("app")).resources_changed, 0);

    // Drift: the shared directory's owner is repaired, nothing else.
    std::os::unix::fs::chown(d.dir().join("shared/logs"), Some(0), Some(0)).unwrap();
    assert_eq!(
        changes(&d.s.apply("app")),
        ["shared/logs owner 0 -> 33", "shared/logs group 0 -> 33"]
    );
}

#[test]
fn a_new_source_switches_keeps_n_and_rollback_goes_back_once() {
    let d = Deployment::new("  keep: 2\n");
    let v1 = d.ship("v1", &app("v1"));

    // Nothing deployed, nothing to roll back to.
    let e = error(&d.s.apply("app::rollback"));
    assert!(e.contains("nothing to roll back to"), "{e}");
    ok(&d.s.apply("app"));
    let e = error(&d.s.apply("app::rollback"));
    assert!(e.contains(&format!("no release is kept but {v1}")), "{e}");

    let v2 = d.ship("v2", &app("v2"));
    assert_eq!(
        changes(&d.s.apply("app")),
        [
            format!("release {v2} created from cookbook file v2.tar.gz"),
            format!("current switched to release {v2} (from {v1})"),
        ]
    );
    let v3 = d.ship("v3", &app("v3"));
    assert_eq!(
        changes(&d.s.apply("app")),
        [
            format!("release {v3} created from cookbook file v3.tar.gz"),
            format!("current switched to release {v3} (from {v2})"),
            format!("release {v1} deleted (keep 2)"),
        ]
    );
    assert_eq!(d.releases(), sorted(vec![v2.clone(), v3.clone()]));

    // Rollback: to the newest kept release but the source's, then nothing.
    assert_eq!(
        changes(&d.s.apply("app::rollback")),
        [format!(
            "current switched to release {v2} (from {v3}): rollback"
        )]
    );
    assert_eq!(d.current(), Some(PathBuf::from(format!("releases/{v2}"))));
    assert_eq!(ok(&d.s.apply("app::rollback")).resources_changed, 0);
    assert_eq!(d.releases(), sorted(vec![v2.clone(), v3.clone()]));

    // Deploying the source again switches to its kept release, made once.
    assert_eq!(
        changes(&d.s.apply("app")),
        [format!("current switched to release {v3} (from {v2})")]
    );
    // An old source kept again counts as the newest: v3 stays, v2 goes.
    let again = d.ship("v2", &app("v2"));
    assert_eq!(again, v2);
    assert_eq!(
        changes(&d.s.apply("app")),
        [format!("current switched to release {v2} (from {v3})")]
    );
    let v4 = d.ship("v4", &app("v4"));
    assert_eq!(
        changes(&d.s.apply("app")),
        [
            format!("release {v4} created from cookbook file v4.tar.gz"),
            format!("current switched to release {v4} (from {v2})"),
            format!("release {v3} deleted (keep 2)"),
        ]
    );
    assert_eq!(d.releases(), sorted(vec![v2, v4]));
}

#[test]
fn why_run_says_which_release_it_would_switch_to_and_changes_nothing() {
    let d = Deployment::new("  shared: [logs]\n");
    let v1 = d.ship("v1", &app("v1"));
    let why = d.s.why_run("app");
    assert_eq!(
        changes(&why),
        [
            format!("created {}", d.dir().display()),
            "created shared/logs".into(),
            format!("release {v1} created from cookbook file v1.tar.gz"),
            format!("current switched to release {v1}"),
        ]
    );
    assert!(!d.dir().exists(), "why-run made the deploy directory");

    ok(&d.s.apply("app"));
    let v2 = d.ship("v2", &app("v2"));
    assert_eq!(
        changes(&d.s.why_run("app")),
        [
            format!("release {v2} created from cookbook file v2.tar.gz"),
            format!("current switched to release {v2} (from {v1})"),
        ]
    );
    assert_eq!(d.current(), Some(PathBuf::from(format!("releases/{v1}"))));
    assert_eq!(d.releases(), std::slice::from_ref(&v1));

    ok(&d.s.apply("app"));
    assert_eq!(
        changes(&d.s.why_run("app::rollback")),
        [format!(
            "current switched to release {v1} (from {v2}): rollback"
        )]
    );
    assert_eq!(d.current(), Some(PathBuf::from(format!("releases/{v2}"))));
}

#[test]
fn a_tarball_that_leads_out_of_its_release_is_refused_and_current_is_untouched() {
    let d = Deployment::new("");
    let v1 = d.ship("v1", &app("v1"));
    ok(&d.s.apply("app"));
    let outside = d.s.root().join("evil");
    let cases: &[(&str, Vec<Entry>, &str)] = &[
        (
            "dotdot",
            vec![Entry::File("../evil", "x")],
            "entry \"../evil\" holds a '..' component",
        ),
        (
            "absolute",
            vec![Entry::File("/tmp/cm-deploy-evil", "x")],
            "entry \"/tmp/cm-deploy-evil\" is an absolute path",
        ),
        (
            "etc",
            vec![Entry::File("a", "x"), Entry::Symlink("conf", "/etc")],
            "entry \"conf\" is a link to \"/etc\", which leads out of the release",
        ),
        (
            "climbing",
            vec![Entry::Dir("d/"), Entry::Symlink("d/up", "../../..")],
            "entry \"d/up\" is a link to \"../../..\", which leads out of the release",
        ),
        (
            "chain",
            vec![
                Entry::Dir("d/"),
                Entry::Symlink("d/up", ".."),
                Entry::Symlink("e", "d/up/.."),
            ],
            "entry \"e\" is a link to \"d/up/..\", which leads out of the release",
        ),
        (
            "through",
            vec![Entry::Symlink("d", "."), Entry::File("d/evil", "x")],
            "entry \"d/evil\" would be written through the link \"d\"",
        ),
        (
            "hardlink",
            vec![Entry::HardLink("passwd", "/etc/passwd")],
            "entry \"passwd\" is a hard link to \"/etc/passwd\"",
        ),
        (
            "fifo",
            vec![Entry::Fifo("pipe")],
            "entry \"pipe\" is a named pipe",
        ),
        (
            "twice",
            vec![Entry::File("a", "x"), Entry::File("a", "y")],
            "entry \"a\" appears twice",
        ),
        ("empty", vec![], "the archive holds no entries"),
    ];
    for (version, entries, refusal) in cases {
        let bad = d.ship(version, &tarball(entries));
        let e = error(&d.s.apply("app"));
        assert!(
            e.contains(&format!(
                "release {bad} from cookbook file {version}.tar.gz: {refusal}"
            )) && e.ends_with("; current is unchanged"),
            "{version}: {e}"
        );
        assert_eq!(
            d.current(),
            Some(PathBuf::from(format!("releases/{v1}"))),
            "{version}"
        );
        assert_eq!(
            d.releases(),
            std::slice::from_ref(&v1),
            "{version}: nothing left behind"
        );
        assert!(!outside.exists(), "{version}");
        assert!(!Path::new("/tmp/cm-deploy-evil").exists(), "{version}");
    }
    let garbage = d.ship("garbage", b"not an archive at all, just words\n");
    let e = error(&d.s.apply("app"));
    assert!(
        e.contains(&format!(
            "release {garbage} from cookbook file garbage.tar.gz: reading the archive"
        )),
        "{e}"
    );
    assert_eq!(d.releases(), [v1]);
}

#[test]
fn a_download_with_another_sha256_is_refused_and_current_is_untouched() {
    let v1 = app("v1");
    let http = HttpServer::serving(&v1);
    let s = Sandbox::new();
    let recipe = |sha256: &str| {
        format!(
            "- deploy: \"{{{{attrs.root}}}}/app\"\n  url: \"{}\"\n  sha256: \"{sha256}\"\n",
            http.url
        )
    };
    let promised = sha256_hex(b"another build\n");
    s.cookbook("app", &[("recipes/default.yaml", &recipe(&promised))]);
    let r = s.apply("app");
    let e = error(&r);
    assert!(
        e.contains(&format!(
            "sha256 is {}, expected {promised}",
            sha256_hex(&v1)
        )),
        "{e}"
    );
    let dir = s.path("app");
    assert!(
        std::fs::read_dir(dir.join("releases"))
            .unwrap()
            .next()
            .is_none(),
        "nothing unpacked"
    );
    assert!(!dir.join("current").exists());

    s.cookbook(
        "app",
        &[("recipes/default.yaml", &recipe(&sha256_hex(&v1)))],
    );
    let id = id_of(&v1);
    assert_eq!(
        changes(&s.apply("app")),
        [
            format!("release {id} created from {}", http.url),
            format!("current switched to release {id}"),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("current/index.html")).unwrap(),
        "<h1>v1</h1>\n"
    );
    assert_eq!(ok(&s.apply("app")).resources_changed, 0);
    assert_eq!(http.requests(), 2, "a kept release is not downloaded again");
}

/// Run git in `dir`, as a person would.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=cm", "-c", "user.email=cm@example.com"])
        .args(args)
        .current_dir(dir)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_git_revision_is_deployed_by_its_full_id_and_a_branch_name_is_refused() {
    let have_git = Command::new("/usr/bin/git")
        .arg("--version")
        .output()
        .is_ok();
    if !support::require(
        have_git,
        "deploying from git needs git (apt-get install git)",
    ) {
        return;
    }
    let s = Sandbox::new();
    let repo = s.dir.path().join("repo.git");
    let work = s.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(s.dir.path(), &["init", "--quiet", "--bare", "repo.git"]);
    git(&work, &["init", "--quiet"]);
    std::fs::write(work.join("index.html"), "first\n").unwrap();
    std::os::unix::fs::symlink("index.html", work.join("home.html")).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "first"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    std::fs::write(work.join("index.html"), "second\n").unwrap();
    git(&work, &["commit", "--quiet", "-am", "second"]);
    let url = format!("file://{}", repo.display());
    git(&work, &["push", "--quiet", &url, "HEAD:refs/heads/main"]);

    let recipe = |revision: &str| {
        format!(
            "- deploy: \"{{{{attrs.root}}}}/app\"\n  git: \"{url}\"\n  revision: \"{revision}\"\n"
        )
    };
    // Not the branch's tip: the revision, whatever the branch says now.
    s.cookbook("app", &[("recipes/default.yaml", &recipe(&first))]);
    assert_eq!(
        changes(&s.apply("app")),
        [
            format!("created {}", s.path("app").display()),
            format!("release {first} created from {url}"),
            format!("current switched to release {first}"),
        ]
    );
    let current = s.path("app/current");
    assert_eq!(
        std::fs::read_to_string(current.join("home.html")).unwrap(),
        "first\n"
    );
    assert!(
        !current.join(".git").exists(),
        "a release holds no repository"
    );
    let releases = s.path("app/releases");
    assert_eq!(
        std::fs::read_dir(&releases).unwrap().count(),
        1,
        "no scratch repository left"
    );
    let mode = std::fs::metadata(current.join("index.html"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    assert_eq!(ok(&s.apply("app")).resources_changed, 0);

    // A branch moves: refused before anything runs, naming the field.
    s.cookbook("app", &[("recipes/default.yaml", &recipe("main"))]);
    let r = s.apply("app");
    let e = r.error.clone().unwrap_or_else(|| panic!("no error: {r:?}"));
    assert!(
        e.contains("revision: \"main\" is not a commit id: a branch or tag name can move"),
        "{e}"
    );
    assert!(r.resources.is_empty(), "{r:?}");

    // A full id the repository does not have: git's refusal, current untouched.
    let missing = "0123456789abcdef0123456789abcdef01234567";
    s.cookbook("app", &[("recipes/default.yaml", &recipe(missing))]);
    let e = error(&s.apply("app"));
    assert!(
        e.contains(&format!("git fetch {url} {missing} failed")),
        "{e}"
    );
    assert_eq!(
        std::fs::read_link(&current).unwrap(),
        Path::new("releases").join(&first)
    );
    assert_eq!(std::fs::read_dir(&releases).unwrap().count(), 1);
}

#[test]
fn a_switch_notifies_and_no_change_does_not() {
    let s = Sandbox::new();
    s.cookbook(
        "app",
        &[(
            "recipes/default.yaml",
            "- deploy: \"{{attrs.root}}/app\"\n  file: \"{{attrs.version}}.tar.gz\"\n  \
             notifies: run execute[reload]\n\
             - execute: reload\n  command: \"touch {{attrs.root}}/reloaded\"\n  action: nothing\n",
        )],
    );
    let d = Deployment { s };
    d.ship("v1", &app("v1"));
    let reloaded = d.s.path("reloaded");
    let r = ok(&d.s.apply("app")).clone();
    assert_eq!(support::changed(&r).len(), 2, "{r:?}");
    assert!(reloaded.exists(), "the switch notified the reload");
    std::fs::remove_file(&reloaded).unwrap();
    ok(&d.s.apply("app"));
    assert!(!reloaded.exists(), "no switch, no reload");
    d.ship("v2", &app("v2"));
    ok(&d.s.apply("app"));
    assert!(reloaded.exists(), "the next switch notified again");
}
