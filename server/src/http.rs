//! The plain-HTTP side on its own port (tonic's TLS speaks HTTP/2 only):
//! `/healthz` (alive) and `/readyz` (the store and the blob store answer)
//! for load balancers, `/metrics` for Prometheus ([`crate::metrics`]).

use std::net::SocketAddr;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;

use crate::state::State;

pub fn router(state: Arc<State>) -> Router {
    let ready = state.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(move || readyz(ready.clone())))
        .route(
            "/metrics",
            get(move || {
                let state = state.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        crate::metrics::render(&state).await,
                    )
                }
            }),
        )
}

/// Ready when the store and the blob store answer, each within 5 s.
async fn readyz(state: Arc<State>) -> (StatusCode, String) {
    let limit = std::time::Duration::from_secs(5);
    // A digest nothing has: the blob store's answer is "no", or an error.
    let nothing = "0".repeat(64);
    let (store, blobs) = tokio::join!(
        tokio::time::timeout(limit, state.store.ping()),
        tokio::time::timeout(limit, state.blobs.has(&nothing)),
    );
    let store = match store {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("store: {e}")),
        Err(_) => Err("store: no answer within 5 s".to_string()),
    };
    let blobs = match blobs {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("blobs: {e}")),
        Err(_) => Err("blobs: no answer within 5 s".to_string()),
    };
    match (store, blobs) {
        (Ok(()), Ok(())) => (StatusCode::OK, "ready\n".into()),
        (store, blobs) => {
            let why: Vec<String> = [store.err(), blobs.err()].into_iter().flatten().collect();
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {}\n", why.join("; ")),
            )
        }
    }
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "http server stopped");
        }
    });
    Ok(local)
}
