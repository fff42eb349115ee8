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

#[tokio::test(flavor = "multi_thread")]
async fn tables_show_times_as_utc_dates_and_how_long_ago() {
    let s = TestServer::start().await;
    let token = s.token("memcached", 1).await;
    cm_e2e::enroll(&s, &token, "web-1").await.unwrap();
    let out = cmctl(&s, &["token", "list"]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    let row = table.lines().nth(1).unwrap_or_default();
    // TestServer::token's token lives 10 minutes: a date, then how far.
    assert!(
        row.contains(" UTC (in 9 minutes)") || row.contains(" UTC (in 10 minutes)"),
        "{table}"
    );
    let epoch = |row: &str| {
        row.split(|c: char| !c.is_ascii_digit())
            .any(|digits| digits.len() >= 10)
    };
    assert!(!epoch(row), "no epoch seconds: {table}");
    let out = cmctl(&s, &["node", "list"]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with("web-1"))
        .unwrap_or_default();
    assert!(
        row.contains("seconds ago") || row.contains("just now"),
        "LAST SEEN: {table}"
    );
    assert!(!epoch(row), "no epoch seconds: {table}");
}
