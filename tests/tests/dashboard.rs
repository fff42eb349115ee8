//! The dashboard over HTTPS, as docs/dashboard.md promises: no page
//! without a session, a login link that works once, a strict cookie,
//! sessions that end with their admin's level, every node-supplied string
//! escaped, filters and pages answered by the database.

use cm_e2e::TestServer;
use cm_e2e::web::{self, login, login_link, open_link};
use cm_proto::v1::admins_client::AdminsClient;
use cm_proto::v1::{AdminLevel, Empty};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE};

#[tokio::test(flavor = "multi_thread")]
async fn no_page_is_shown_without_a_session() {
    let server = TestServer::start().await;
    let client = web::client(&server);
    let base = web::base(&server);
    for path in [
        "/",
        "/nodes/x",
        "/roles",
        "/environments",
        "/cookbooks",
        "/cluster",
        "/audit",
        "/events",
    ] {
        let answer = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{path}");
        let csp = answer.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        let body = answer.text().await.unwrap();
        assert!(
            body.contains("cmctl dashboard"),
            "says how to log in: {body}"
        );
    }
    // A made-up cookie is no session.
    let answer = client
        .get(format!("{base}/"))
        .header(COOKIE, "__Host-cm_session=made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_link_works_once_and_starts_a_strict_session() {
    let server = TestServer::start().await;
    let link = login_link(server.admin().await).await;
    assert!(link.starts_with("https://localhost:"), "{link}");
    let (session, set_cookie) = open_link(&server, &link).await;
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=28800",
    ] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }
    let (status, page) = session.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("admin (owner)"), "{page}");

    // The same link again: refused, and no cookie.
    let again = web::client(&server).get(&link).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    let token = link.split("token=").nth(1).unwrap();
    let again = web::post_login(&web::client(&server), &session.base, token).await;
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    assert!(again.headers().get("set-cookie").is_none());

    let (_, audit) = session.get("/audit").await;
    assert!(
        audit.contains("dashboard.login"),
        "the login is audited: {audit}"
    );

    // Logging out ends it.
    let out = session
        .client
        .post(format!("{}/logout", session.base))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(session.get("/").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn fetching_a_link_spends_nothing_and_other_sites_cannot_post() {
    let server = TestServer::start().await;
    let link = login_link(server.admin().await).await;
    let client = web::client(&server);
    // A chat's link preview, a mail scanner: fetched twice, still good.
    for _ in 0..2 {
        let page = client.get(&link).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let body = page.text().await.unwrap();
        assert!(body.contains("Log in as admin"), "{body}");
    }
    let token = link.split("token=").nth(1).unwrap();
    let base = web::base(&server);
    for site in ["cross-site", "same-site"] {
        let answer = client
            .post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", site)
            .body(format!("token={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{site}");
    }
    // Malformed tokens never reach the database, and say the same.
    for bad in ["x", "%27%20OR%201%3D1", &"a".repeat(500)] {
        let answer = client
            .get(format!("{base}/login?token={bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{bad}");
    }
    let (session, _) = open_link(&server, &link).await;
    assert_eq!(
        session.get("/").await.0,
        StatusCode::OK,
        "the link still worked once"
    );
    let (_, audit) = session.get("/audit").await;
    assert!(
        audit.contains("127.0.0.1"),
        "the login records where from: {audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn downgrading_or_removing_an_admin_ends_their_sessions() {
    let server = TestServer::start().await;
    let mut owner = AdminsClient::new(server.admin().await);
    let bob = owner
        .add(AdminLevel {
            name: "bob".into(),
            level: "operator".into(),
            environments: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let bob_channel = server
        .channel(Some((&bob.certificate_pem, &bob.key_pem)))
        .await;
    let (first, _) = open_link(&server, &login_link(bob_channel.clone()).await).await;
    let (second, _) = open_link(&server, &login_link(bob_channel.clone()).await).await;
    let (status, page) = first.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("bob (operator)"), "{page}");

    owner
        .set(AdminLevel {
            name: "bob".into(),
            level: "viewer".into(),
            environments: vec![],
        })
        .await
        .unwrap();
    assert_eq!(
        first.get("/").await.0,
        StatusCode::UNAUTHORIZED,
        "downgraded: ended"
    );
    assert_eq!(
        second.get("/").await.0,
        StatusCode::UNAUTHORIZED,
        "every session of bob's"
    );

    // Other environments end it too.
    let (limited, _) = open_link(&server, &login_link(bob_channel.clone()).await).await;
    assert_eq!(limited.get("/").await.0, StatusCode::OK);
    owner
        .set(AdminLevel {
            name: "bob".into(),
            level: "viewer".into(),
            environments: vec!["staging".into()],
        })
        .await
        .unwrap();
    assert_eq!(
        limited.get("/").await.0,
        StatusCode::UNAUTHORIZED,
        "re-scoped: ended"
    );

    // As a viewer, bob may look again; removal ends that too.
    let (third, _) = open_link(&server, &login_link(bob_channel).await).await;
    let (status, page) = third.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("bob (viewer of staging)"), "{page}");
    owner
        .remove(cm_proto::v1::Name { name: "bob".into() })
        .await
        .unwrap();
    assert_eq!(
        third.get("/").await.0,
        StatusCode::UNAUTHORIZED,
        "removed: ended"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_left_unused_dies_with_its_admins_credential() {
    let server = TestServer::start().await;
    let mut owner = AdminsClient::new(server.admin().await);
    let carol = owner
        .add(AdminLevel {
            name: "carol".into(),
            level: "viewer".into(),
            environments: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let channel = server
        .channel(Some((&carol.certificate_pem, &carol.key_pem)))
        .await;
    let link = login_link(channel).await;
    owner
        .remove(cm_proto::v1::Name {
            name: "carol".into(),
        })
        .await
        .unwrap();
    let answer = web::client(&server).get(&link).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn node_supplied_strings_are_shown_as_text() {
    use cm_proto::v1::agent_client::AgentClient;
    let server = TestServer::start().await;
    let token = server.token("web", 1).await;
    let (key_pem, csr_pem) = cm_server::pki::new_key_and_csr("web-1").unwrap();
    AgentClient::new(server.channel(None).await)
        .enroll(cm_proto::v1::EnrollRequest {
            token,
            node_name: "web-1".into(),
            csr_pem,
            facts_json: r#"{"hostname":"web-1","motd":"<script>alert('fact')</script>","nested":{"x":"<img src=x onerror=alert(1)>"}}"#.into(),
            agent_version: cm_proto::VERSION.into(),
        })
        .await
        .unwrap();
    let _ = key_pem;
    let session = login(&server).await;
    let (status, page) = session.get("/nodes/web-1").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("&lt;script&gt;alert('fact')&lt;/script&gt;"),
        "{page}"
    );
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(
        page.contains("nested.x"),
        "facts are listed by path: {page}"
    );

    let (status, fleet) = session.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(fleet.contains(r#"href="/nodes/web-1""#), "{fleet}");
    // A name the store does not know is a 404 page, escaped too.
    let (status, missing) = session.get("/nodes/%3Cb%3Ex").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!missing.contains("<b>x"), "{missing}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fleet_is_filtered_and_paged_by_the_database() {
    let server = TestServer::start().await;
    let web_token = server.token("web_a", 80).await;
    let db_token = server.token("db", 40).await;
    for i in 0..70 {
        cm_e2e::enroll(&server, &web_token, &format!("web-{i:03}"))
            .await
            .unwrap();
    }
    for i in 0..30 {
        cm_e2e::enroll(&server, &db_token, &format!("db-{i:03}"))
            .await
            .unwrap();
    }
    let session = login(&server).await;
    let rows = |page: &str| page.matches("<tr data-node=").count();

    let (_, first) = session.get("/").await;
    assert!(first.contains("100 nodes match · page 1 of 2"), "{first}");
    assert_eq!(rows(&first), 50);
    assert!(
        first.contains("db-000") && !first.contains("web-049"),
        "by name"
    );
    let (_, second) = session.get("/?page=1").await;
    assert_eq!(rows(&second), 50);
    assert!(second.contains("web-069"), "{second}");

    let (_, webs) = session.get("/?role=web_a&q=WEB-06").await;
    assert!(webs.contains("10 nodes match"), "{webs}");
    // A role is matched whole: `web_` is no role, `web_A` neither.
    for other in ["web_", "web_A", "web%25"] {
        let (_, none) = session.get(&format!("/?role={other}")).await;
        assert!(none.contains("0 nodes match"), "{other}: {none}");
    }
    let (_, pct) = session.get("/?q=%25").await;
    assert!(pct.contains("0 nodes match"), "{pct}");
    let (_, active) = session.get("/?state=active&run=none&env=production").await;
    assert!(active.contains("100 nodes match"), "{active}");
    let (_, errors) = session.get("/?plan=error").await;
    assert!(errors.contains("0 nodes match"), "{errors}");
    let (status, bad) = session.get("/?state=sleeping").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert!(
        bad.contains("active, unreachable, expired or retired"),
        "{bad}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_other_pages_show_what_admins_changed() {
    let server = TestServer::start().await;
    let _ = server.token("memcached", 1).await;
    let session = login(&server).await;
    let (status, roles) = session.get("/roles").await;
    assert_eq!(status, StatusCode::OK);
    assert!(roles.contains(r#"href="/roles/memcached""#), "{roles}");
    let (status, role) = session.get("/roles/memcached").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        role.contains("name: memcached") && role.contains("Revision 1"),
        "{role}"
    );
    let (status, env) = session.get("/environments/production").await;
    assert_eq!(status, StatusCode::OK, "{env}");
    assert_eq!(session.get("/roles/nope").await.0, StatusCode::NOT_FOUND);
    for path in [
        "/cookbooks",
        "/cluster",
        "/audit",
        "/static/live.js",
        "/static/style.css",
    ] {
        assert_eq!(session.get(path).await.0, StatusCode::OK, "{path}");
    }
    let (_, audit) = session.get("/audit").await;
    assert!(audit.contains("role.set memcached"), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_a_dashboard_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(dir, 0, |c| c.dashboard = None).await;
    let status = AdminsClient::new(server.admin().await)
        .dashboard_link(Empty {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("--dashboard-listen"),
        "{status:?}"
    );
}
