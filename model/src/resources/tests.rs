//! The registry of types and the helpers every spec shares.

use super::*;
use crate::template::TemplateError;
use proptest::prelude::*;

#[test]
fn every_type_has_defaults_nothing_and_its_name_property() {
    for t in TYPES {
        assert!(!t.default_actions().is_empty(), "{}", t.name);
        // The action a recipe gives to declare a resource it only notifies.
        assert!(t.accepts_action("nothing"), "{}", t.name);
        assert!((t.properties)().contains(&t.name_property), "{}", t.name);
    }
}

#[test]
fn modes_parse_as_octal() {
    assert_eq!(parse_mode("0644"), Ok(0o644));
    assert_eq!(parse_mode("755"), Ok(0o755));
    assert_eq!(parse_mode("02775"), Ok(0o2775));
    assert!(parse_mode("0844").is_err());
    assert!(parse_mode("").is_err());
    assert!(parse_mode("77777").is_err());
    assert!(parse_mode("rw-r--r--").is_err());
}

struct NoRefs;
impl CookbookRefs for NoRefs {
    fn has_template(&self, _: &str) -> bool {
        true
    }
    fn has_file(&self, _: &str) -> bool {
        true
    }
}

fn check(kind: &str, props: serde_json::Value) -> Result<(), FieldError> {
    let Value::Object(map) = props else {
        panic!("properties are a map")
    };
    lookup(kind).unwrap().check(map, &NoRefs)
}

#[test]
fn path_properties_must_be_plain_absolute_paths() {
    let e = check("directory", serde_json::json!({"path": "/a/../.."})).unwrap_err();
    assert_eq!(e.field, "path");
    assert!(e.message.contains("'..'"), "{e:?}");
    let e = check("directory", serde_json::json!({"path": "/"})).unwrap_err();
    assert!(e.message.contains("refusing to manage"), "{e:?}");
    for kind in ["file", "remote_file", "link"] {
        let mut props = serde_json::json!({"path": "/srv/app/../x"});
        if kind == "remote_file" {
            props["url"] = "http://example.com/x".into();
            props["sha256"] = "0".repeat(64).into();
        }
        assert_eq!(check(kind, props).unwrap_err().field, "path", "{kind}");
    }
    let hard = serde_json::json!({"path": "/l", "to": "etc/x", "link_type": "hard"});
    assert_eq!(check("link", hard).unwrap_err().field, "to");
    let climbing = serde_json::json!({"path": "/l", "to": "/etc/../x"});
    assert_eq!(check("link", climbing).unwrap_err().field, "to");
    assert_eq!(
        check("link", serde_json::json!({"path": "/l", "to": "../x"})),
        Ok(())
    );
    let cwd = serde_json::json!({"command": "true", "cwd": "/srv/./app"});
    assert_eq!(check("execute", cwd).unwrap_err().field, "cwd");
    assert_eq!(
        check(
            "execute",
            serde_json::json!({"command": "true", "cwd": "/"})
        ),
        Ok(())
    );
    // Templated values wait for rendering.
    assert_eq!(
        check("file", serde_json::json!({"path": "{{attrs.p}}"})),
        Ok(())
    );
}

/// A cookbook with one file, `motd`, whose templates render as their name
/// and their `vars`.
struct OneFile;
impl CookbookRefs for OneFile {
    fn has_template(&self, _: &str) -> bool {
        true
    }
    fn has_file(&self, name: &str) -> bool {
        name == "motd"
    }
}
impl CookbookContent for OneFile {
    fn file(&self, name: &str) -> Option<&[u8]> {
        (name == "motd").then_some(b"hello\n".as_slice())
    }
    fn render_template(
        &self,
        name: &str,
        vars: &Map<String, Value>,
    ) -> Result<String, TemplateError> {
        Ok(format!("{name} {}", Value::Object(vars.clone())))
    }
}

fn content(kind: &str, props: serde_json::Value) -> Result<Option<Vec<u8>>, FieldError> {
    let Value::Object(map) = props else {
        panic!("properties are a map")
    };
    lookup(kind).unwrap().compile(map, &OneFile)
}

#[test]
fn each_spec_loads_the_content_its_properties_name() {
    let bytes = |s: &str| Ok(Some(s.as_bytes().to_vec()));
    assert_eq!(
        content("file", serde_json::json!({"path": "/m", "source": "motd"})),
        bytes("hello\n")
    );
    assert_eq!(
        content("file", serde_json::json!({"path": "/m", "content": "x"})),
        bytes("x")
    );
    assert_eq!(content("file", serde_json::json!({"path": "/m"})), Ok(None));
    assert_eq!(
        content(
            "template",
            serde_json::json!({"path": "/c", "source": "c.hbs", "variables": {"a": 1}})
        ),
        bytes("c.hbs {\"a\":1}")
    );
    let key = serde_json::json!({"repo_name": "r", "uris": ["http://a/x"], "suites": ["s"], "key_source": "motd"});
    assert_eq!(content("apt_repository", key), bytes("hello\n"));
    assert_eq!(
        content("directory", serde_json::json!({"path": "/d"})),
        Ok(None)
    );
    // Validation comes first: a missing file is refused by the spec's checks.
    let e = content("file", serde_json::json!({"path": "/m", "source": "nope"})).unwrap_err();
    assert_eq!(e.field, "source");
}

proptest! {
    #[test]
    fn any_mode_round_trips(bits in 0u32..=0o7777) {
        prop_assert_eq!(parse_mode(&format!("{bits:04o}")), Ok(bits));
        prop_assert_eq!(parse_mode(&format!("{bits:o}")), Ok(bits));
    }

    #[test]
    fn non_octal_strings_are_refused(s in "[0-9]*[89][0-9]*") {
        prop_assert!(parse_mode(&s).is_err());
    }
}

/// A deploy of `/srv/app` with `extra` properties.
fn deploy(extra: serde_json::Value) -> Result<(), FieldError> {
    let mut props = serde_json::json!({"path": "/srv/app"});
    props
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    check("deploy", props)
}

const REVISION: &str = "224e73f8182a8cb60f1e1d915022ef4f15da4317";

#[test]
fn a_deploy_names_exactly_one_source() {
    let sha = "ab".repeat(32);
    for ok in [
        serde_json::json!({"file": "app.tar.gz"}),
        serde_json::json!({"url": "https://example.com/app.tgz", "sha256": sha}),
        serde_json::json!({"git": "https://example.com/app.git", "revision": REVISION}),
        serde_json::json!({"git": "file:///srv/git/app.git", "revision": REVISION}),
        serde_json::json!({"git": "ssh://git@example.com/app.git", "revision": "{{attrs.rev}}"}),
    ] {
        assert_eq!(deploy(ok.clone()), Ok(()), "{ok}");
    }
    for (props, field, says) in [
        (serde_json::json!({}), "file", "give one source"),
        (
            serde_json::json!({"file": "a.tgz", "url": "https://e.com/a.tgz", "sha256": sha}),
            "url",
            "not several",
        ),
        (
            serde_json::json!({"file": "a.tgz", "git": "https://e.com/a.git", "revision": REVISION}),
            "git",
            "not several",
        ),
        (
            serde_json::json!({"url": "https://e.com/a.tgz"}),
            "sha256",
            "needs sha256",
        ),
        (
            serde_json::json!({"url": "ftp://e.com/a.tgz", "sha256": sha}),
            "url",
            "not an http(s) URL",
        ),
        (
            serde_json::json!({"url": "https://e.com/a.tgz", "sha256": "abc"}),
            "sha256",
            "64 hex",
        ),
        (
            serde_json::json!({"file": "a.tgz", "sha256": sha}),
            "sha256",
            "goes with url",
        ),
        (
            serde_json::json!({"git": "https://e.com/a.git"}),
            "revision",
            "needs revision",
        ),
        (
            serde_json::json!({"file": "a.tgz", "revision": REVISION}),
            "revision",
            "goes with git",
        ),
        (
            serde_json::json!({"git": "ext::sh -c touch% /tmp/pwned", "revision": REVISION}),
            "git",
            "not a git URL",
        ),
        (
            serde_json::json!({"git": "git@example.com:app.git", "revision": REVISION}),
            "git",
            "ssh://host/path",
        ),
    ] {
        let e = deploy(props.clone()).unwrap_err();
        assert_eq!(e.field, field, "{props}: {e:?}");
        assert!(e.message.contains(says), "{props}: {e:?}");
    }
}

#[test]
fn a_git_revision_is_a_full_commit_id_never_a_branch_or_tag() {
    let git = |revision: &str| {
        deploy(serde_json::json!({"git": "https://e.com/a.git", "revision": revision}))
    };
    assert_eq!(git(REVISION), Ok(()));
    let upper = REVISION.to_uppercase();
    let long = "a".repeat(64);
    for (revision, says) in [
        ("main", "a branch or tag name can move"),
        ("v1.2.3", "a branch or tag name can move"),
        ("HEAD", "a branch or tag name can move"),
        ("refs/heads/main", "a branch or tag name can move"),
        ("", "a branch or tag name can move"),
        ("224e73f", "abbreviated commit id (7 digits)"),
        (upper.as_str(), "lowercase"),
        (long.as_str(), "a commit id has 40"),
    ] {
        let e = git(revision).unwrap_err();
        assert_eq!(e.field, "revision", "{revision}: {e:?}");
        assert!(e.message.contains(says), "{revision}: {e:?}");
    }
}

#[test]
fn deploy_shared_names_are_plain_and_distinct_and_keep_is_at_least_one() {
    let file = serde_json::json!({"file": "app.tar.gz"});
    let with = |key: &str, value: serde_json::Value| {
        let mut props = file.clone();
        props[key] = value;
        deploy(props)
    };
    assert_eq!(
        with("shared", serde_json::json!(["logs", "public/uploads"])),
        Ok(())
    );
    for names in [
        serde_json::json!(["../logs"]),
        serde_json::json!(["/var/log"]),
        serde_json::json!(["logs/"]),
        serde_json::json!(["a/./b"]),
        serde_json::json!([""]),
        serde_json::json!(["logs", "logs"]),
        serde_json::json!(["public", "public/uploads"]),
    ] {
        let e = with("shared", names.clone()).unwrap_err();
        assert_eq!(e.field, "shared", "{names}: {e:?}");
    }
    assert_eq!(with("keep", serde_json::json!(1)), Ok(()));
    let e = with("keep", serde_json::json!(0)).unwrap_err();
    assert_eq!(e.field, "keep");
    let e = check(
        "deploy",
        serde_json::json!({"path": "srv/app", "file": "app.tar.gz"}),
    )
    .unwrap_err();
    assert_eq!(e.field, "path");
}

#[test]
fn a_deploy_loads_its_cookbook_tarball_at_compile_time() {
    let props = serde_json::json!({"path": "/srv/app", "file": "motd"});
    assert_eq!(content("deploy", props), Ok(Some(b"hello\n".to_vec())));
    let git =
        serde_json::json!({"path": "/srv/app", "git": "https://e.com/a.git", "revision": REVISION});
    assert_eq!(content("deploy", git), Ok(None));
    let missing = serde_json::json!({"path": "/srv/app", "file": "nope.tgz"});
    assert_eq!(content("deploy", missing).unwrap_err().field, "file");
}
