//! cmctl as a new user meets it: mistakes get a message that says what to
//! do, before anything reaches the server.

use std::process::{Command, Output};

use cm_e2e::{TestServer, bin};

/// Run the real cmctl as the bootstrap admin, off the async runtime.
async fn cmctl(server: &TestServer, args: &[&str]) -> Output {
    let mut c = Command::new(bin("cmctl"));
    c.arg("--credential")
        .arg(&server.credential)
        .args(args)
        .env("NO_COLOR", "1");
    tokio::task::spawn_blocking(move || c.output().expect("cmctl runs"))
        .await
        .expect("cmctl finishes")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_http_url_is_told_that_cm_speaks_tls() {
    let s = TestServer::start().await;
    let http = s.url().replace("https://", "http://");
    let out = cmctl(&s, &["--server", &http, "role", "list"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cm speaks TLS only"), "{stderr}");
    assert!(stderr.contains(&s.url()), "the https URL to use: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn node_set_refuses_malformed_json_instead_of_storing_text() {
    let s = TestServer::start().await;
    let out = cmctl(&s, &["node", "set", "web-1", "app.limits", "{\"max\": 1"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is not JSON") && stderr.contains("--string"),
        "{stderr}"
    );
}
