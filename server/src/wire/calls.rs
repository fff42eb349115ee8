//! Rules every call to the gRPC port meets around tonic, as a tower layer
//! on the router:
//!
//! - Before: a call without a client certificate is UNAUTHENTICATED
//!   before its message is read, except `Enroll` (which a node calls before
//!   it has one). Who the certificate names, and whether it is revoked, is
//!   checked afterwards by [`crate::api::auth`].
//! - After: tonic reports a message over the size limit as OUT_OF_RANGE
//!   and one that does not decode as INTERNAL; gRPC defines them as
//!   RESOURCE_EXHAUSTED and INVALID_ARGUMENT (a client error, not the
//!   server's), so those two answers are corrected. Both come from tonic's
//!   decoder before any handler runs, as a trailers-only response whose
//!   status is in the headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue};
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// The one RPC that needs no client certificate.
const ENROLL: &str = "/cm.v1.Agent/Enroll";

/// How tonic's decoder words the two answers corrected here.
const TOO_LARGE: &str = "Error, decoded message length too large";
const UNDECODABLE: &[&str] = &[
    "failed to decode Protobuf message",
    "Unexpected EOF decoding stream",
];

/// The layer for `Server::builder().layer(...)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallRulesLayer;

impl<S> tower::Layer<S> for CallRulesLayer {
    type Service = CallRules<S>;

    fn layer(&self, inner: S) -> CallRules<S> {
        CallRules { inner }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct CallRules<S> {
    inner: S,
}

impl<S> tower::Service<http::Request<Body>> for CallRules<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != ENROLL && !has_client_certificate(&request) {
            let refused = tonic::Status::unauthenticated(
                "a client certificate is required (enroll first, or use an admin credential)",
            );
            return Box::pin(std::future::ready(Ok(refused.into_http())));
        }
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            correct_status(response.headers_mut());
            Ok(response)
        })
    }
}

fn has_client_certificate<B>(request: &http::Request<B>) -> bool {
    request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())
        .is_some_and(|certs| !certs.is_empty())
}

/// Rewrite tonic's OUT_OF_RANGE for an over-limit message and INTERNAL for
/// an undecodable one into the codes gRPC defines for them.
fn correct_status(headers: &mut HeaderMap) {
    let code = headers.get("grpc-status").and_then(|v| v.to_str().ok());
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    let corrected = match code {
        Some("11") if message.starts_with(TOO_LARGE) => tonic::Code::ResourceExhausted,
        Some("13") if UNDECODABLE.iter().any(|m| message.starts_with(m)) => {
            tonic::Code::InvalidArgument
        }
        _ => return,
    };
    headers.insert("grpc-status", HeaderValue::from(corrected as i32));
}

/// `grpc-message` is percent-encoded (gRPC's HTTP/2 mapping).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(code: tonic::Status) -> (String, String) {
        let mut headers = code.into_http::<Body>().headers().clone();
        correct_status(&mut headers);
        let get = |k: &str| headers.get(k).unwrap().to_str().unwrap().to_string();
        (get("grpc-status"), percent_decode(&get("grpc-message")))
    }

    #[test]
    fn only_the_decoders_two_answers_are_corrected() {
        let too_large = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 17000000 bytes, the limit is: 16777216 bytes",
        );
        assert_eq!(status_of(too_large).0, "8");
        let garbage = tonic::Status::internal(
            "failed to decode Protobuf message: invalid wire type value: 7",
        );
        assert_eq!(status_of(garbage).0, "3");
        // A handler's own answers stay as they are.
        assert_eq!(
            status_of(tonic::Status::out_of_range("page 9 of 3")).0,
            "11"
        );
        assert_eq!(status_of(tonic::Status::internal("storage")).0, "13");
        assert_eq!(
            status_of(tonic::Status::internal("ä 100% done")).1,
            "ä 100% done"
        );
    }
}
