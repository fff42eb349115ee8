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
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

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

/// TLS handshakes in progress at once; more connections wait in the
/// kernel's backlog.
const HANDSHAKES: usize = 64;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router(state: Arc<State>) -> Router {
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
        .route("/login", get(session::login))
        .route("/logout", post(session::logout))
        .route("/static/live.js", get(pages::static_file::live_js))
        .route("/static/style.css", get(pages::static_file::style_css))
        .fallback(pages::not_found)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// On every answer: the CSP, no sniffing, no referrer (a login link in a
/// URL never leaks), no caching of pages that show the fleet.
async fn security_headers(request: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
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
    let connections = TlsListener::spawn(listener, TlsAcceptor::from(tls), local);
    let app = router(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(connections, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "dashboard stopped");
        }
    });
    Ok(local)
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

/// Connections whose TLS handshake is done, for `axum::serve`; handshakes
/// run concurrently (at most [`HANDSHAKES`]), each within a timeout, so a
/// client that never finishes holds nobody else up.
struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn spawn(listener: TcpListener, acceptor: TlsAcceptor, local: SocketAddr) -> TlsListener {
        let (tx, ready) = mpsc::channel(HANDSHAKES);
        let permits = Arc::new(Semaphore::new(HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (tcp, peer) = tokio::select! {
                    () = tx.closed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::debug!(error = %e, "dashboard: accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                    drop(permit);
                    if let Ok(Ok(tls)) = handshake {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        TlsListener { ready, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop is gone only when the server stops.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
