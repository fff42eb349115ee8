//! The dashboard as a script sees it: a login link from the Admins API,
//! then HTTPS requests that carry the session cookie, trusting only cm's
//! CA (real TLS, the name checked).

use cm_proto::v1::admins_client::AdminsClient;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use tonic::transport::Channel;

use crate::TestServer;

/// A login link for the admin behind `channel`.
pub async fn login_link(channel: Channel) -> String {
    AdminsClient::new(channel)
        .dashboard_link(cm_proto::v1::Empty {})
        .await
        .expect("a login link")
        .into_inner()
        .url
}

/// An HTTPS client of the server's dashboard that follows no redirect.
pub fn client(server: &TestServer) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(server.running.state.pki.ca().cert_der().clone())
        .expect("the CA");
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTPS client")
}

/// The dashboard's base URL (what login links start with).
pub fn base(server: &TestServer) -> String {
    server
        .running
        .state
        .dashboard_url
        .get()
        .expect("the server serves a dashboard")
        .clone()
}

/// A browser-like session: the cookie a login link set.
pub struct Session {
    pub client: reqwest::Client,
    pub base: String,
    pub cookie: String,
}

/// Open `link` as a person does: its page, then the button's POST. The
/// session it starts, with the `Set-Cookie` header as sent.
pub async fn open_link(server: &TestServer, link: &str) -> (Session, String) {
    let client = client(server);
    let page = client.get(link).send().await.expect("the link answers");
    assert_eq!(page.status(), StatusCode::OK, "a login page");
    assert!(
        page.headers().get(SET_COOKIE).is_none(),
        "opening the link starts nothing"
    );
    let token = link.split("token=").nth(1).expect("a token in the link");
    let answer = post_login(&client, &base(server), token).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "a login redirects");
    let set_cookie = answer
        .headers()
        .get(SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .expect("ASCII")
        .to_string();
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    let session = Session {
        client,
        base: base(server),
        cookie,
    };
    (session, set_cookie)
}

/// The login page's form, posted.
pub async fn post_login(client: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    client
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("the login answers")
}

/// Log in as the bootstrap admin.
pub async fn login(server: &TestServer) -> Session {
    let link = login_link(server.admin().await).await;
    open_link(server, &link).await.0
}

impl Session {
    /// GET `path` with the session: its status and body.
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let answer = self
            .client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .expect("the dashboard answers");
        let status = answer.status();
        (status, answer.text().await.expect("a body"))
    }
}
