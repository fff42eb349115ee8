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
//! - Counted: every call in `cm_rpc_requests_total{method, code}` and its
//!   time to the answer's headers in `cm_rpc_duration_seconds{method}`.
//!   A failed call's status is in those headers; a successful unary call's
//!   comes in the trailers, so a call whose headers carry none is `OK`.
//!   A path cm does not serve is counted as method `unknown`, so a client
//!   cannot make up label values.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

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
        let started = Instant::now();
        let path = request.uri().path().to_string();
        if path != ENROLL && !has_client_certificate(&request) {
            let refused = tonic::Status::unauthenticated(
                "a client certificate is required (enroll first, or use an admin credential)",
            );
            let response = refused.into_http();
            count(&path, response.headers(), started);
            return Box::pin(std::future::ready(Ok(response)));
        }
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            correct_status(response.headers_mut());
            count(&path, response.headers(), started);
            Ok(response)
        })
    }
}

fn count(path: &str, headers: &HeaderMap, started: Instant) {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32);
    let method = method_label(path);
    let code = match code {
        tonic::Code::Ok => "OK".to_string(),
        other => format!("{other:?}"),
    };
    let seconds = started.elapsed().as_secs_f64();
    metrics::histogram!(crate::metrics::RPC_DURATION, "method" => method).record(seconds);
    metrics::counter!(crate::metrics::RPC_REQUESTS, "method" => method, "code" => code)
        .increment(1);
}

/// Every method of cm.v1 (proto/cm.proto; a test keeps the two equal).
const METHODS: &[&str] = &[
    "Cookbooks/MissingBlobs",
    "Cookbooks/UploadBlob",
    "Cookbooks/Commit",
    "Cookbooks/List",
    "Cookbooks/Show",
    "Cookbooks/Delete",
    "Roles/Set",
    "Roles/Show",
    "Roles/List",
    "Roles/History",
    "Roles/Delete",
    "Environments/Set",
    "Environments/Show",
    "Environments/List",
    "Environments/History",
    "Environments/Delete",
    "Nodes/List",
    "Nodes/Show",
    "Nodes/Assign",
    "Nodes/Unassign",
    "Nodes/SetAttribute",
    "Nodes/UnsetAttribute",
    "Nodes/Retire",
    "Nodes/Move",
    "Nodes/Explain",
    "Nodes/Cluster",
    "Tokens/Create",
    "Tokens/List",
    "Tokens/Revoke",
    "Secrets/Set",
    "Secrets/List",
    "Secrets/Delete",
    "Admins/Add",
    "Admins/List",
    "Admins/Remove",
    "Admins/Set",
    "Admins/DashboardLink",
    "Runs/List",
    "Audit/List",
    "Agent/Enroll",
    "Agent/Renew",
    "Agent/GetPlan",
    "Agent/FetchBlob",
    "Agent/ReportFacts",
    "Agent/ReportRun",
    "Agent/Watch",
    "Agent/Heartbeat",
];

/// `/cm.v1.Agent/Enroll` -> `Agent/Enroll`; a path cm does not serve is
/// `unknown`.
fn method_label(path: &str) -> &'static str {
    let name = path.strip_prefix("/cm.v1.").unwrap_or_default();
    METHODS
        .iter()
        .find(|m| **m == name)
        .copied()
        .unwrap_or("unknown")
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
    fn every_method_of_the_proto_is_labelled_by_name() {
        let proto = include_str!("../../../proto/cm.proto");
        let mut service = "";
        let mut served = Vec::new();
        for line in proto.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.split_whitespace().next().unwrap();
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                served.push(format!("{service}/{}", rest.split('(').next().unwrap()));
            }
        }
        assert_eq!(
            served, METHODS,
            "METHODS lists proto/cm.proto's rpcs in order"
        );
        assert_eq!(method_label("/cm.v1.Agent/Enroll"), "Agent/Enroll");
        assert_eq!(method_label("/cm.v1.Agent/Made-Up"), "unknown");
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "unknown");
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
