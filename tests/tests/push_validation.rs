//! The server refuses at push and at set what a node would refuse, over real
//! TLS: every refusal is INVALID_ARGUMENT with the message cm-model gives
//! (the one cmctl prints and an agent reports), and leaves no version,
//! role or environment behind. cmctl refuses the same before uploading.

use std::path::Path;

use assert_cmd::Command;
use cm_e2e::TestServer;
use cm_model::cookbook::Cookbook;
use cm_model::manifest::sha256_hex;
use cm_proto::v1::cookbooks_client::CookbooksClient;
use cm_proto::v1::environments_client::EnvironmentsClient;
use cm_proto::v1::roles_client::RolesClient;
use cm_proto::v1::{
    BlobChunk, CommitRequest, Document, Empty, ListCookbooksRequest, ManifestEntry,
    MissingBlobsRequest,
};
use predicates::prelude::*;
use tonic::Code;
use tonic::transport::Channel;

/// A file of a push: path, content, mode.
type File = (String, Vec<u8>, u32);

fn file(path: &str, text: &str) -> File {
    (path.to_string(), text.as_bytes().to_vec(), 0o644)
}

/// A valid cookbook `c` at 1.0.0 and `extra` files.
fn cookbook(extra: Vec<File>) -> Vec<File> {
    let mut files = vec![
        file("metadata.yaml", "name: c\nversion: 1.0.0\n"),
        file("recipes/default.yaml", "- file: /tmp/x\n"),
    ];
    files.extend(extra);
    files
}

fn entries(files: &[File]) -> Vec<ManifestEntry> {
    files
        .iter()
        .map(|(path, bytes, mode)| ManifestEntry {
            path: path.clone(),
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
            mode: *mode,
        })
        .collect()
}

/// Upload every blob, then commit; the commit's answer.
async fn push(
    c: &mut CookbooksClient<Channel>,
    version: &str,
    files: &[File],
) -> Result<bool, tonic::Status> {
    let mut sent = std::collections::BTreeSet::new();
    for (_, bytes, _) in files {
        if !sent.insert(sha256_hex(bytes)) {
            continue;
        }
        c.upload_blob(tokio_stream::iter(vec![BlobChunk {
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
            data: bytes.clone(),
        }]))
        .await?;
    }
    c.commit(CommitRequest {
        name: "c".into(),
        version: version.into(),
        manifest: entries(files),
    })
    .await
    .map(|r| r.into_inner().created)
}

/// What cm-model says of the same files given as a manifest, as an agent
/// assembling its plan would.
fn model_says(files: &[File]) -> String {
    let manifest = cm_proto::convert::manifest_from_wire(&entries(files));
    Cookbook::from_manifest(Path::new("c@1.0.0"), &manifest, |e| {
        Ok(files
            .iter()
            .find(|f| sha256_hex(&f.1) == e.sha256)
            .map(|f| f.1.clone())
            .unwrap_or_default())
    })
    .err()
    .map(|e| e.to_string())
    .unwrap_or_else(|| "accepted".into())
}

fn nested_ifs(n: usize) -> String {
    format!("{}x{}", "{{#if a}}\n".repeat(n), "{{/if}}".repeat(n))
}

#[tokio::test(flavor = "multi_thread")]
async fn commits_a_node_would_refuse_are_refused_and_leave_no_version() {
    let s = TestServer::start().await;
    let mut c = CookbooksClient::new(s.admin().await);
    let mode = |path: &str, mode: u32| (path.to_string(), b"x".to_vec(), mode);
    let many: Vec<File> = (0..10_001)
        .map(|i| file(&format!("files/{i}"), "x"))
        .collect();
    let long_for_each = format!(
        "- directory: /srv/x\n  for_each: [{}]\n",
        vec!["a"; 10_001].join(",")
    );
    let cases: Vec<(&str, Vec<File>, &str)> = vec![
        (
            "a value YAML reads two ways",
            vec![file("attributes.yaml", "c:\n  listen: off\n")],
            "attributes.yaml:2:11: off is read as the boolean false",
        ),
        (
            "a decimal that does not read back",
            vec![file("attributes.yaml", "c:\n  php: 8.10\n")],
            "write \"8.10\" (quoted)",
        ),
        (
            "one path twice",
            vec![file("files/a", "x"), file("files/a", "y")],
            "\"files/a\" names the same file as \"files/a\"",
        ),
        (
            "./ and plain",
            vec![file("./files/a", "x"), file("files/a", "y")],
            "\"files/a\" names the same file as \"./files/a\"",
        ),
        (
            "doubled slash",
            vec![file("files//a", "x"), file("files/a", "y")],
            "names the same file as \"files//a\"",
        ),
        (
            "case only",
            vec![file("files/Motd", "x"), file("files/motd", "y")],
            "only in case",
        ),
        (
            "newline in a name",
            vec![file("files/a\nb", "x")],
            "control characters",
        ),
        (
            "carriage return in a name",
            vec![file("files/a\rb", "x")],
            "control characters",
        ),
        (
            "mode past 07777",
            vec![mode("files/x", 0o104755)],
            "mode 0o104755",
        ),
        (
            "too many files",
            many,
            "10003 files, over the limit of 10000",
        ),
        (
            "unknown helper",
            vec![file("templates/t.hbs", "a\n{{frob attrs.x}}\n")],
            "templates/t.hbs:2:1: template c/t.hbs line 2 column 1: unknown helper \"frob\"",
        ),
        (
            "wrong arity",
            vec![file("templates/t.hbs", "{{join attrs.l}}")],
            "join takes 2 arguments",
        ),
        (
            "deep template",
            vec![file("templates/d.hbs", &nested_ifs(1_500))],
            "templates/d.hbs:65:1",
        ),
        (
            "partials that include each other",
            vec![
                file("templates/a.hbs", "{{> c/b.hbs}}"),
                file("templates/b.hbs", "{{> c/a.hbs}}"),
            ],
            "partials include each other",
        ),
        (
            "helper in a recipe string",
            vec![file(
                "recipes/x.yaml",
                "- file: /tmp/y\n  content: \"{{frob attrs.x}}\"\n",
            )],
            "recipes/x.yaml:2:12: file[/tmp/y] content: line 1 column 1: unknown helper \"frob\"",
        ),
        (
            "tag in a recipe",
            vec![file(
                "recipes/x.yaml",
                "- file: !!python/object:os.system /tmp/y\n",
            )],
            "recipes/x.yaml:1:9: YAML tag",
        ),
        (
            "custom tag in a recipe",
            vec![file(
                "recipes/x.yaml",
                "- file: /tmp/y\n  content: !custom x\n",
            )],
            "YAML tag !custom",
        ),
        (
            "binary in attributes",
            vec![file("attributes.yaml", "a: !!binary aGk=\n")],
            "attributes.yaml:1:4: YAML tag",
        ),
        (
            "for_each past its limit",
            vec![file("recipes/x.yaml", &long_for_each)],
            "over the limit of 10000 for one resource",
        ),
    ];
    for (what, extra, expected) in cases {
        let files = cookbook(extra);
        let err = push(&mut c, "1.0.0", &files).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert!(
            err.message().contains(expected),
            "{what}: {}",
            err.message()
        );
        assert_eq!(err.message(), model_says(&files), "{what}");
    }
    // Build metadata: pins could not tell 1.0.0+a from 1.0.0+b.
    let files = vec![
        file("metadata.yaml", "name: c\nversion: 1.0.0+a\n"),
        file("recipes/default.yaml", ""),
    ];
    let err = push(&mut c, "1.0.0+a", &files).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("build metadata"),
        "{}",
        err.message()
    );
    let versions = c
        .list(ListCookbooksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert!(
        versions.is_empty(),
        "a version became visible: {versions:?}"
    );
    // Nothing half-stored stands in the way of the good push.
    assert!(push(&mut c, "1.0.0", &cookbook(Vec::new())).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_and_environments_a_node_would_refuse_are_refused_at_set() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let mut roles = RolesClient::new(admin.clone());
    let mut envs = EnvironmentsClient::new(admin);
    let doc = |yaml: &str| Document {
        yaml: yaml.into(),
        ..Default::default()
    };
    for (yaml, expected) in [
        (
            "name: web\nattributes:\n  cmd: !!python/object/apply:os.system [id]\n",
            "role.yaml:3:8: YAML tag",
        ),
        (
            "name: web\nrun_list: [!custom memcached]\n",
            "YAML tag !custom",
        ),
        (
            "name: web\ncookbooks: {memcached: '>= 1.0.0+b'}\n",
            "build metadata",
        ),
        (
            "name: web\nattributes:\n  enabled: On\n",
            "or \"On\" quoted for the string",
        ),
    ] {
        let err = roles.set(doc(yaml)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{yaml}: {err:?}");
        assert!(err.message().contains(expected), "{}", err.message());
    }
    for (yaml, expected) in [
        (
            "name: production\ncookbooks:\n  memcached: 1.2.0+b\n",
            "environment.yaml:3:14: cookbooks.memcached: \"1.2.0+b\": build metadata",
        ),
        (
            "name: production\nattributes: {key: !!binary aGk=}\n",
            "YAML tag",
        ),
        (
            "name: production\nattributes: {mode: 0644}\n",
            "write \"0644\" (quoted)",
        ),
    ] {
        let err = envs.set(doc(yaml)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{yaml}: {err:?}");
        assert!(err.message().contains(expected), "{}", err.message());
    }
    assert!(
        roles
            .list(Empty {})
            .await
            .unwrap()
            .into_inner()
            .documents
            .is_empty()
    );
    assert!(
        envs.list(Empty {})
            .await
            .unwrap()
            .into_inner()
            .documents
            .is_empty()
    );
}

fn cmctl(s: &TestServer) -> Command {
    Command::from_std(cm_e2e::agent::cmctl_command(s))
}

async fn run(mut c: Command) -> assert_cmd::assert::Assert {
    tokio::task::spawn_blocking(move || c.assert())
        .await
        .expect("cmctl ran")
}

#[tokio::test(flavor = "multi_thread")]
async fn cmctl_refuses_before_uploading_anything() {
    let s = TestServer::start().await;
    let mut c = CookbooksClient::new(s.admin().await);
    let dir = tempfile::tempdir().unwrap();
    for (rel, text, expected) in [
        (
            "templates/t.hbs",
            "{{frob attrs.x}}".to_string(),
            "templates/t.hbs:1:1: template c/t.hbs line 1 column 1: unknown helper \"frob\"",
        ),
        ("templates/t.hbs", nested_ifs(6_000), "templates/t.hbs:65:1"),
        (
            "recipes/default.yaml",
            "- file: !custom /tmp/x\n".to_string(),
            "recipes/default.yaml:1:9: YAML tag !custom",
        ),
        ("files/a\nb", "x".to_string(), "control characters"),
        (
            "attributes.yaml",
            "c:\n  mode: 0644\n".to_string(),
            "attributes.yaml:2:9: write \"0644\" (quoted) for the string, or 644 for the number",
        ),
        (
            "recipes/default.yaml",
            "- file: /tmp/x\n  content: yes\n".to_string(),
            "recipes/default.yaml:2:12: yes is read as the boolean true",
        ),
    ] {
        let cb = dir.path().join("c");
        let _ = std::fs::remove_dir_all(&cb);
        std::fs::create_dir_all(cb.join("templates")).unwrap();
        std::fs::create_dir_all(cb.join("files")).unwrap();
        std::fs::write(cb.join("metadata.yaml"), "name: c\nversion: 1.0.0\n").unwrap();
        std::fs::create_dir_all(cb.join("recipes")).unwrap();
        std::fs::write(cb.join(rel), &text).unwrap();
        let mut push = cmctl(&s);
        push.args(["push", "cookbook"]).arg(&cb);
        run(push)
            .await
            .code(1)
            .stderr(predicate::str::contains(expected));
        // Not even the files that were fine reached the server.
        let digests = vec![
            sha256_hex(b"name: c\nversion: 1.0.0\n"),
            sha256_hex(text.as_bytes()),
        ];
        let missing = c
            .missing_blobs(MissingBlobsRequest {
                sha256: digests.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .sha256;
        assert_eq!(missing, digests, "{rel}: a blob was uploaded");
    }
    let role = dir.path().join("role.yaml");
    std::fs::write(&role, "name: web\nattributes: {a: !!binary aGk=}\n").unwrap();
    let mut set = cmctl(&s);
    set.args(["role", "set"]).arg(&role);
    run(set)
        .await
        .code(1)
        .stderr(predicate::str::contains("role.yaml:2:17: YAML tag"));
    std::fs::write(
        &role,
        "name: web\nattributes:\n  apache:\n    keepalive: On\n",
    )
    .unwrap();
    let mut set = cmctl(&s);
    set.args(["role", "set"]).arg(&role);
    run(set).await.code(1).stderr(predicate::str::contains(
        "role.yaml:4:16: On is read as the boolean true: write true/false, or \"On\" quoted",
    ));
    let env = dir.path().join("env.yaml");
    std::fs::write(&env, "name: production\ncookbooks: {c: 1.0.0+b}\n").unwrap();
    let mut set = cmctl(&s);
    set.args(["env", "set"]).arg(&env);
    run(set)
        .await
        .code(1)
        .stderr(predicate::str::contains("build metadata"));
    let mut roles = RolesClient::new(s.admin().await);
    assert!(
        roles
            .list(Empty {})
            .await
            .unwrap()
            .into_inner()
            .documents
            .is_empty()
    );
}
