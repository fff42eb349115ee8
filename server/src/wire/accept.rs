//! The accept loop of the gRPC port, in place of tonic's own TLS (which
//! takes every connection into a handshake at once, without bound).
//!
//! Each accepted connection takes one of [`WireLimits::max_handshakes`]
//! permits for its handshake; once it is done the connection goes to tonic
//! as a `tokio_rustls` stream (tonic reads the peer certificates from it,
//! so `Request::peer_certs` works as with its own TLS) and the permit is
//! free again. A connection that finds no permit is answered gRPC
//! RESOURCE_EXHAUSTED (`cm-cause: busy`) by a small HTTP/2 answerer and
//! closed: that takes a handshake too, so only
//! [`WireLimits::max_busy_answers`] are answered at once and any beyond
//! those are closed before any TLS work, which agents retry the same way
//! (backoff with jitter).

use std::convert::Infallible;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use super::WireLimits;

/// A connection ready for tonic.
pub type Connection = TlsStream<TcpStream>;

/// What a full server tells a connection it cannot take now.
pub const BUSY: &str = "the server has too many connections in the TLS handshake; \
                        retry after a random delay";

/// How many handshakes are in progress, for tests and the metrics.
#[derive(Debug, Clone)]
pub struct Handshakes {
    permits: Arc<Semaphore>,
    cap: usize,
}

impl Handshakes {
    /// Connections in the TLS handshake now (busy answers not counted).
    pub fn in_progress(&self) -> usize {
        self.cap.saturating_sub(self.permits.available_permits())
    }
}

/// Accept on `listener` until the returned stream is dropped (then the
/// listening socket is closed too).
pub fn spawn(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limits: &WireLimits,
) -> (ReceiverStream<io::Result<Connection>>, Handshakes) {
    let handshakes = Handshakes {
        permits: Arc::new(Semaphore::new(limits.max_handshakes)),
        cap: limits.max_handshakes,
    };
    let busy_answers = Arc::new(Semaphore::new(limits.max_busy_answers));
    // Room for every handshake in progress to hand its connection over.
    let (ready_tx, ready_rx) = mpsc::channel(limits.max_handshakes.max(1));
    let acceptor = TlsAcceptor::from(tls);
    let timeout = limits.handshake_timeout;
    let permits = handshakes.permits.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                () = ready_tx.closed() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_failed(&e).await;
                        continue;
                    }
                },
            };
            // Nagle would hold back the later writes of a response written
            // in several (a full plan, an enrollment) until the client's
            // delayed ACK, about 40 ms per call (cm-bench plans).
            let _ = tcp.set_nodelay(true);
            if let Ok(permit) = permits.clone().try_acquire_owned() {
                let (acceptor, ready_tx) = (acceptor.clone(), ready_tx.clone());
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(timeout, acceptor.accept(tcp)).await;
                    drop(permit);
                    match handshake {
                        Ok(Ok(tls)) => {
                            let _ = ready_tx.send(Ok(tls)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            } else if let Ok(permit) = busy_answers.clone().try_acquire_owned() {
                metrics::counter!("cm_connections_refused_total", "answer" => "resource_exhausted")
                    .increment(1);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(timeout, answer_busy(acceptor, tcp)).await;
                    drop(permit);
                });
            } else {
                metrics::counter!("cm_connections_refused_total", "answer" => "closed")
                    .increment(1);
                drop(tcp);
            }
        }
    });
    (ReceiverStream::new(ready_rx), handshakes)
}

/// An accept error: a connection that went away is nothing; running out
/// of descriptors is waited out briefly instead of spinning on it.
async fn accept_failed(e: &io::Error) {
    use io::ErrorKind::*;
    if !matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) {
        tracing::warn!(error = %e, "cannot accept a connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Finish the handshake, answer the first call RESOURCE_EXHAUSTED, then
/// close the connection (GOAWAY), so the client's next call opens a new
/// one that may find room.
///
/// The close lingers: closing a socket with unread bytes from the client
/// (its SETTINGS ack, a WINDOW_UPDATE) sends a reset, which can destroy
/// the answer before the client reads it (it then sees the GOAWAY alone).
/// So a second handle on the socket outlives the HTTP/2 connection: it
/// sends FIN, then reads until the client closes too, or a second passes.
async fn answer_busy(acceptor: TlsAcceptor, tcp: TcpStream) {
    let Some((tcp, linger)) = with_linger_handle(tcp) else {
        return;
    };
    serve_busy(acceptor, tcp).await;
    let _ = linger.shutdown(std::net::Shutdown::Write);
    if let Ok(mut linger) = TcpStream::from_std(linger) {
        let mut sink = [0u8; 1024];
        let drained = async {
            use tokio::io::AsyncReadExt;
            while matches!(linger.read(&mut sink).await, Ok(n) if n > 0) {}
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
    }
}

/// The stream, and a second handle on its socket that keeps it open after
/// the stream is dropped.
fn with_linger_handle(tcp: TcpStream) -> Option<(TcpStream, std::net::TcpStream)> {
    let std = tcp.into_std().ok()?;
    let linger = std.try_clone().ok()?;
    Some((TcpStream::from_std(std).ok()?, linger))
}

async fn serve_busy(acceptor: TlsAcceptor, tcp: TcpStream) {
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let answered = Arc::new(Notify::new());
    let service = {
        let answered = answered.clone();
        hyper::service::service_fn(move |_request| {
            answered.notify_one();
            std::future::ready(Ok::<_, Infallible>(busy_response()))
        })
    };
    let mut connection = pin!(
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .max_concurrent_streams(4)
            .serve_connection(TokioIo::new(tls), service)
    );
    tokio::select! {
        _ = connection.as_mut() => return,
        () = answered.notified() => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

fn busy_response() -> http::Response<tonic::body::Body> {
    let mut status = tonic::Status::resource_exhausted(BUSY);
    status.metadata_mut().insert(
        cm_proto::STATUS_CAUSE,
        tonic::metadata::MetadataValue::from_static("busy"),
    );
    status.into_http()
}
