//! The dashboard in a real headless browser (Debian's chromium and
//! chromedriver): log in through the link `cmctl dashboard` prints, see a
//! node a real agent just enrolled, see its failed run's error arrive
//! without reloading the page, and a node-supplied `<script>` shown as
//! text, never run. With CM_SCREENSHOTS=DIR it also saves the screenshots
//! docs/dashboard.md shows.

use std::time::Duration;

use cm_e2e::agent::{cmctl, demo_role, fleet, set_role};
use cm_e2e::browser::{self, Browser};
use cm_e2e::require;

const LIVE: Duration = Duration::from_secs(30);
/// node-b's row on the fleet page.
const NODE_B: &str = "tr[data-node='node-b']";

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_follows_the_fleet_in_a_real_browser() {
    if !require(
        browser::installed(),
        "chromium and chromium-driver are missing (scripts/test.sh installs them)",
    ) {
        return;
    }
    let (server, agents, _books) = fleet(&["node-b"]).await;
    let agent = &agents[0];
    assert!(agent.run_once().await.status.success());
    // A node whose facts carry markup, enrolled as any node is.
    let token = server.token("edge", 1).await;
    let (_, csr_pem) = cm_server::pki::new_key_and_csr("edge-1").unwrap();
    cm_proto::v1::agent_client::AgentClient::new(server.channel(None).await)
        .enroll(cm_proto::v1::EnrollRequest {
            token,
            node_name: "edge-1".into(),
            csr_pem,
            facts_json: r#"{"hostname":"edge-1","motd":"<script>window.cmXss=1</script>","banner":"<img src=x onerror=\"window.cmXss=2\">"}"#.into(),
            agent_version: cm_proto::VERSION.into(),
        })
        .await
        .unwrap();

    let link = cmctl(&server, &["dashboard"]).await;
    let link = link.trim();
    let browser = Browser::start().await;
    browser.go(link).await;
    screenshot(&browser, "login").await;
    browser.click("button#login").await;
    // The click may return before the POST's redirect is followed.
    let mut landed = browser.url().await;
    for _ in 0..100 {
        if !landed.contains("/login") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        landed = browser.url().await;
    }
    assert!(
        landed.ends_with('/') && !landed.contains("token="),
        "the link lands on the fleet: {landed}"
    );
    assert!(
        browser.wait_for_text(NODE_B, "node-b", LIVE).await,
        "the enrolled node: {}",
        browser.text().await
    );
    let row = browser.text_of(NODE_B).await;
    assert!(
        row.contains("success") && !row.contains("failed"),
        "its run: {row}"
    );
    assert!(
        browser.eval("return document.cookie").await == "",
        "the session cookie is HttpOnly: scripts cannot read it"
    );

    // The page stays; a failed run shows up in it.
    browser.eval("window.cmMarker = 42; return null;").await;
    let blocker = agent.dir.path().join("blocker");
    std::fs::write(&blocker, "a file\n").unwrap();
    set_role(
        &server,
        &demo_role("role-node-b", &blocker.join("out"), "x"),
    )
    .await;
    assert_eq!(agent.run_once().await.status.code(), Some(1));
    assert!(
        browser.wait_for_text(NODE_B, "failed", LIVE).await,
        "the failed run arrives live: {}",
        browser.text_of(NODE_B).await
    );
    assert_eq!(
        browser.eval("return window.cmMarker").await,
        serde_json::json!(42),
        "without a reload"
    );
    let row = browser.text_of(NODE_B).await;
    assert!(row.contains("is not a directory"), "and why: {row}");
    screenshot(&browser, "fleet").await;

    browser.go(&format!("{}/nodes/node-b", base(link))).await;
    let node = browser.text().await;
    assert!(node.contains("is not a directory"), "why it failed: {node}");
    screenshot(&browser, "node").await;

    browser.go(&format!("{}/nodes/edge-1", base(link))).await;
    let edge = browser.text().await;
    assert!(
        edge.contains("<script>window.cmXss=1</script>"),
        "markup is shown as text: {edge}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        browser.eval("return window.cmXss === undefined").await,
        serde_json::json!(true),
        "and never runs"
    );
    for (path, name) in [
        ("/cluster", "cluster"),
        ("/audit", "audit"),
        ("/cookbooks", "cookbooks"),
    ] {
        browser.go(&format!("{}{path}", base(link))).await;
        screenshot(&browser, name).await;
    }
    browser.quit().await;
}

/// `https://host:port` of a login link.
fn base(link: &str) -> &str {
    link.split("/login").next().unwrap()
}

async fn screenshot(browser: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("CM_SCREENSHOTS") {
        let path = std::path::Path::new(&dir).join(format!("{name}.png"));
        std::fs::write(&path, browser.screenshot().await).unwrap();
    }
}
