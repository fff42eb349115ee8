//! An admin's day with cmctl against a real server: push, roles, environments,
//! tokens, secrets, audit; and the refusals.

use assert_cmd::Command;
use cm_e2e::{TestServer, repo};
use predicates::prelude::*;

fn cmctl(s: &TestServer) -> Command {
    Command::from_std(cm_e2e::agent::cmctl_command(s))
}

/// Run blocking cmctl calls next to the async server.
async fn run(s: &TestServer, args: &[&str]) -> assert_cmd::assert::Assert {
    let mut c = cmctl(s);
    c.args(args);
    tokio::task::spawn_blocking(move || c.assert())
        .await
        .expect("cmctl ran")
}

#[tokio::test(flavor = "multi_thread")]
async fn push_set_and_inspect_like_an_admin() {
    let s = TestServer::start().await;
    let memcached = repo().join("cookbooks/memcached");
    let mc = memcached.to_str().unwrap();
    run(&s, &["push", "cookbook", mc])
        .await
        .success()
        .stdout(predicate::str::contains("version created"));
    // Unchanged re-push uploads nothing and changes nothing.
    let again = run(&s, &["--format", "json", "push", "cookbook", mc])
        .await
        .success();
    let v: serde_json::Value = serde_json::from_slice(&again.get_output().stdout).unwrap();
    assert_eq!(
        (v["uploaded"].as_u64(), v["created"].as_bool()),
        (Some(0), Some(false)),
        "{v}"
    );

    let role = repo().join("roles/memcached.yaml");
    let env = repo().join("environments/production.yaml");
    run(&s, &["role", "set", role.to_str().unwrap()])
        .await
        .success()
        .stdout(predicate::str::contains("revision 1"));
    run(&s, &["env", "set", env.to_str().unwrap()])
        .await
        .success();
    run(&s, &["env", "show", "production"])
        .await
        .success()
        .stdout(predicate::str::contains("every cookbook is pinned"));
    run(&s, &["cookbook", "list"])
        .await
        .success()
        .stdout(predicate::str::contains("memcached  1.1.0"));
    run(
        &s,
        &[
            "token",
            "create",
            "--role",
            "memcached",
            "--env",
            "production",
            "--ttl",
            "1h",
            "--uses",
            "3",
        ],
    )
    .await
    .success()
    .stdout(predicate::str::starts_with("cmt_"));
    let mut set = cmctl(&s);
    set.args(["secret", "set", "cache_key", "--role", "memcached"])
        .write_stdin("s3cret-value\n");
    tokio::task::spawn_blocking(move || set.assert().success())
        .await
        .unwrap();
    let audit = run(&s, &["--format", "json", "audit"]).await.success();
    let text = String::from_utf8_lossy(&audit.get_output().stdout).to_string();
    assert!(text.contains("\"who\": \"admin\""), "{text}");
    assert!(
        !text.contains("s3cret-value"),
        "a secret reached the audit log"
    );
    // The cookbook version is pinned: deleting it is refused.
    run(&s, &["cookbook", "delete", "memcached", "1.1.0"])
        .await
        .code(1)
        .stderr(predicate::str::contains("pinned by environment production"));
}

#[tokio::test(flavor = "multi_thread")]
async fn different_content_under_a_pushed_version_is_refused() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cb = dir.path().join("c");
    std::fs::create_dir_all(cb.join("recipes")).unwrap();
    std::fs::write(cb.join("metadata.yaml"), "name: c\nversion: 1.0.0\n").unwrap();
    std::fs::write(cb.join("recipes/default.yaml"), "- file: /tmp/x\n").unwrap();
    run(&s, &["push", "cookbook", cb.to_str().unwrap()])
        .await
        .success();
    std::fs::write(cb.join("recipes/default.yaml"), "- file: /tmp/y\n").unwrap();
    run(&s, &["push", "cookbook", cb.to_str().unwrap()])
        .await
        .code(1)
        .stderr(predicate::str::contains("1.0.0"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_cookbook_is_refused_before_any_upload() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cb = dir.path().join("c");
    std::fs::create_dir_all(cb.join("recipes")).unwrap();
    std::fs::write(cb.join("metadata.yaml"), "name: c\nversion: 1.0.0\n").unwrap();
    std::fs::write(
        cb.join("recipes/default.yaml"),
        "- template: /etc/x\n  source: missing.hbs\n",
    )
    .unwrap();
    run(&s, &["push", "cookbook", cb.to_str().unwrap()])
        .await
        .code(1)
        .stderr(
            predicate::str::contains("recipes/default.yaml:2")
                .and(predicate::str::contains("missing.hbs")),
        );
    run(&s, &["cookbook", "list", "--format", "json"])
        .await
        .success()
        .stdout(predicate::str::contains("[]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_2_and_help_works() {
    let s = TestServer::start().await;
    run(&s, &["token", "create"]).await.code(2);
    run(&s, &["--help"])
        .await
        .success()
        .stdout(predicate::str::contains("push"));
}
