//! The dashboard (docs/dashboard.md): read-only pages of the fleet over
//! TLS on their own port, for admins who logged in through a one-time link
//! (`cmctl dashboard`). Pages are rendered on the server with maud (checked
//! at compile time, every value escaped); the only script is a static file
//! that swaps in a page's fresh `<main>` when the server says the fleet
//! changed (server-sent events). A Content-Security-Policy allows no other
//! script, no inline one, and no framing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::state::State;

mod live;
mod pages;
pub mod session;

/// Where and how the dashboard is served.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    pub listen: SocketAddr,
    /// The URL admins open (behind a proxy, or a name of the operator's
    /// certificate); default `https://HOST:PORT` from the public URL's host.
    pub url: Option<String>,
    /// The operator's certificate chain and key (PEM); default: a
    /// certificate from cm's CA, as the gRPC port has.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Connections open at once (a live page holds one); more wait in the
/// kernel's backlog. Each connection's handshake, then each request's
/// head, must arrive in time, so silent connections cannot pile up.
const CONNECTIONS: usize = 256;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router(state: Arc<State>, marks: live::Marks) -> Router {
    Router::new()
        .route("/", get(pages::fleet::page))
        .route("/nodes/{name}", get(pages::node::page))
        .route("/roles", get(pages::documents::roles))
        .route("/roles/{name}", get(pages::documents::role))
        .route("/environments", get(pages::documents::environments))
        .route("/environments/{name}", get(pages::documents::environment))
        .route("/cookbooks", get(pages::cookbooks::page))
        .route("/cluster", get(pages::cluster::page))
        .route("/audit", get(pages::audit::page))
        .route("/events", get(live::events))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/static/live.js", get(pages::static_file::live_js))
        .route("/static/style.css", get(pages::static_file::style_css))
        .fallback(pages::not_found)
        .layer(middleware::from_fn(security_headers))
        .layer(axum::Extension(marks))
        .with_state(state)
}

/// On every answer: the CSP, no sniffing, no referrer (a login link in a
/// URL never leaks), no caching of pages that show the fleet. No HSTS: it
/// would hold for every port of the host, `/metrics` on plain HTTP too.
async fn security_headers(request: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Bind, then serve until `shutdown` resolves; returns the bound address.
/// Sets the state's dashboard URL (what login links start with).
pub async fn serve(
    config: &DashboardConfig,
    public_host: &str,
    state: Arc<State>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr> {
    let tls = tls_config(config, &state)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the dashboard to {}", config.listen))?;
    let local = listener.local_addr()?;
    let url = match &config.url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("https://{}:{}", url_host(public_host), local.port()),
    };
    let _ = state.dashboard_url.set(url);
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let marks = live::Marks::spawn(state.clone(), stop.clone());
    let app = router(state, marks);
    tokio::spawn(accept(listener, TlsAcceptor::from(tls), app, stop));
    Ok(local)
}

/// Accept connections until `stop`: each holds one of [`CONNECTIONS`]
/// permits for its life, and is served HTTP/1.1 or HTTP/2 (one
/// connection for a browser's every tab) with its peer's address known
/// to the handlers (the audit of a login records it).
async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS));
    let mut stopping = stop.clone();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stopping.changed() => return,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(error = %e, "dashboard: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopping.changed() => return,
        };
        let (acceptor, mut stop) = (acceptor.clone(), stop.clone());
        let app = app.clone().layer(axum::Extension(ConnectInfo(peer)));
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(64)
                .keep_alive_interval(Some(Duration::from_secs(30)));
            let service = TowerToHyperService::new(app);
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            tokio::select! {
                _ = connection => {}
                _ = stop.changed() => {}
            }
        });
    }
}

/// A host for a URL: IPv6 addresses in brackets.
fn url_host(host: &str) -> String {
    match host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{host}]"),
        Err(_) => host.to_string(),
    }
}

fn tls_config(config: &DashboardConfig, state: &State) -> Result<Arc<rustls::ServerConfig>> {
    let (chain, key) = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading the dashboard's {}", p.display()))
            };
            (read(cert)?, read(key)?)
        }
        (None, None) => {
            let server = state.pki.server();
            let chain = format!("{}{}", server.cert.cert_pem, state.pki.ca().cert_pem());
            (chain, server.key_pem.clone())
        }
        _ => anyhow::bail!("give both --dashboard-cert and --dashboard-key, or neither"),
    };
    crate::pki::web_rustls_config(&chain, &key).context("the dashboard's certificate")
}
