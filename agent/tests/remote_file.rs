//! `remote_file` against a real HTTP server on loopback, as docs/cookbooks.md
//! describes it: downloaded only when the file on disk lacks the digest, a
//! download with another digest refused with nothing written,
//! `create_if_missing` keeping an existing file, at most 1 GiB, and why-run
//! downloading nothing.

mod support;

use std::os::unix::fs::PermissionsExt;

use cm_model::manifest::sha256_hex;
use support::http::HttpServer;
use support::{Sandbox, ok};

const CONTENT: &[u8] = b"release 1.2.3\n";

/// A sandbox whose `fetch` recipe downloads `url` into `root/app.bin` with
/// `action` (and mode 0600), expecting `sha256`.
fn sandbox(url: &str, sha256: &str, action: &str) -> Sandbox {
    let s = Sandbox::new();
    s.cookbook(
        "fetch",
        &[(
            "recipes/default.yaml",
            &format!(
                "- remote_file: \"{{{{attrs.root}}}}/app.bin\"\n  url: \"{url}\"\n  \
                 sha256: \"{sha256}\"\n  mode: \"0600\"\n  action: {action}\n"
            ),
        )],
    );
    s
}

fn files_in(s: &Sandbox) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(s.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn downloads_only_when_the_file_on_disk_lacks_the_digest() {
    let http = HttpServer::serving(CONTENT);
    let s = sandbox(&http.url, &sha256_hex(CONTENT), "create");
    let first = ok(&s.apply("fetch")).clone();
    assert_eq!(first.resources[0].changes, ["created", "mode 0600"]);
    assert_eq!(std::fs::read(s.path("app.bin")).unwrap(), CONTENT);
    let mode = std::fs::metadata(s.path("app.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(http.requests(), 1);

    assert_eq!(ok(&s.apply("fetch")).resources_changed, 0);
    assert_eq!(
        http.requests(),
        1,
        "a file with the digest is not downloaded again"
    );

    std::fs::write(s.path("app.bin"), "tampered\n").unwrap();
    let repaired = ok(&s.apply("fetch")).clone();
    assert_eq!(repaired.resources[0].changes, ["content"]);
    assert_eq!(std::fs::read(s.path("app.bin")).unwrap(), CONTENT);
    assert_eq!(http.requests(), 2);
}

#[test]
fn a_download_with_another_digest_is_refused_and_nothing_is_written() {
    let http = HttpServer::serving(b"not what was promised\n");
    let expected = sha256_hex(CONTENT);
    let s = sandbox(&http.url, &expected, "create");
    std::fs::create_dir_all(s.root()).unwrap();
    std::fs::write(s.path("app.bin"), "old\n").unwrap();

    let r = s.apply("fetch");
    assert!(!r.succeeded());
    let error = r.resources[0].error.as_deref().unwrap();
    let got = sha256_hex(b"not what was promised\n");
    assert!(
        error.contains(&format!(
            "sha256 is {got}, expected {expected}; not written"
        )),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(s.path("app.bin")).unwrap(), "old\n");
    assert_eq!(files_in(&s), ["app.bin"], "no temp file is left");
    assert!(
        !s.dir.path().join("backup").exists(),
        "nothing was backed up"
    );
}

#[test]
fn create_if_missing_keeps_an_existing_file_and_downloads_only_a_missing_one() {
    let http = HttpServer::serving(CONTENT);
    let s = sandbox(&http.url, &sha256_hex(CONTENT), "create_if_missing");
    std::fs::create_dir_all(s.root()).unwrap();
    std::fs::write(s.path("app.bin"), "local build\n").unwrap();
    std::fs::set_permissions(s.path("app.bin"), PermissionsExt::from_mode(0o644)).unwrap();

    // The content stays; the mode is still enforced.
    let kept = ok(&s.apply("fetch")).clone();
    assert_eq!(kept.resources[0].changes, ["mode 0644 -> 0600"]);
    assert_eq!(
        std::fs::read_to_string(s.path("app.bin")).unwrap(),
        "local build\n"
    );
    assert_eq!(http.requests(), 0);

    std::fs::remove_file(s.path("app.bin")).unwrap();
    ok(&s.apply("fetch"));
    assert_eq!(std::fs::read(s.path("app.bin")).unwrap(), CONTENT);
    assert_eq!(http.requests(), 1);
}

#[test]
fn why_run_downloads_nothing_and_says_it_would() {
    let http = HttpServer::serving(CONTENT);
    let s = sandbox(&http.url, &sha256_hex(CONTENT), "create");
    let why = ok(&s.why_run("fetch")).clone();
    assert_eq!(
        why.resources[0].changes,
        [
            format!("download {}", http.url),
            "created".into(),
            "mode 0600".into()
        ]
    );
    assert_eq!(http.requests(), 0);
    assert!(!s.path("app.bin").exists());
}

/// docs/cookbooks.md: at most 1 GiB. A server that declares more is refused
/// before its body is read (it sends a few bytes, not a gigabyte).
#[test]
fn a_download_declared_larger_than_1_gib_is_refused_before_its_body_is_read() {
    let http = HttpServer::declaring((1 << 30) + 1, CONTENT);
    let s = sandbox(&http.url, &sha256_hex(CONTENT), "create");
    let r = s.apply("fetch");
    assert!(!r.succeeded());
    let error = r.resources[0].error.as_deref().unwrap();
    assert!(
        error.contains("1073741825 bytes, over the 1024 MiB limit"),
        "{error}"
    );
    assert_eq!(files_in(&s), Vec::<String>::new(), "nothing is written");
}
