//! The gRPC port's wire over real TLS: the HTTP/2 limits it announces, the
//! cap on connections in the TLS handshake and the RESOURCE_EXHAUSTED an
//! extra one gets, the status codes gRPC defines for over-limit and
//! undecodable messages, and UNAUTHENTICATED before anything is decoded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cm_e2e::TestServer;
use cm_proto::v1::roles_client::RolesClient;
use cm_proto::v1::{Document, ListAuditRequest, ListRunsRequest, RunList};
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tonic::Code;
use tonic::transport::Channel;

/// A TLS connection to the server speaking h2, without a client certificate.
async fn raw_h2(s: &TestServer) -> h2::client::SendRequest<bytes::Bytes> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(s.ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(s.running.grpc_addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let (send, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    send
}

/// One call on a raw connection, so the server's SETTINGS have arrived.
async fn one_call(send: &mut h2::client::SendRequest<bytes::Bytes>) -> http::HeaderMap {
    let request = http::Request::post("https://localhost/cm.v1.Roles/List")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    response.await.unwrap().headers().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_announces_a_limit_on_concurrent_streams() {
    let s = TestServer::start().await;
    let mut send = raw_h2(&s).await;
    one_call(&mut send).await;
    assert_eq!(
        send.current_max_send_streams(),
        128,
        "SETTINGS_MAX_CONCURRENT_STREAMS as docs/server.md gives it"
    );
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_list_over_16_kib_is_refused() {
    let s = TestServer::start().await;
    let mut send = raw_h2(&s).await;
    one_call(&mut send).await;
    let request = http::Request::post("https://localhost/cm.v1.Roles/List")
        .header("content-type", "application/grpc")
        .header("x-padding", "p".repeat(20 << 10))
        .body(())
        .unwrap();
    let refused = match send.send_request(request, true) {
        Err(_) => true,
        Ok((response, _)) => match response.await {
            Err(_) => true,
            Ok(r) => r.status() == http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        },
    };
    assert!(refused, "a 20 KiB header list went through");
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_without_a_certificate_is_unauthenticated_before_its_message_is_read() {
    let s = TestServer::start().await;
    let mut anonymous = RolesClient::new(s.channel(None).await);
    // Over the message limit: decoding it first would say so.
    let oversized = Document {
        yaml: "x".repeat(5 << 20),
        ..Default::default()
    };
    let status = anonymous.set(oversized).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    // Undecodable: decoding it first would fail.
    let status = call_with_wrong_message(s.channel(None).await)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_over_limit_message_is_resource_exhausted() {
    let s = TestServer::start().await;
    let mut roles = RolesClient::new(s.admin().await);
    let oversized = Document {
        yaml: "x".repeat(5 << 20),
        ..Default::default()
    };
    let status = roles.set(oversized).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    s.running.stop().await;
}

/// Runs.List takes `limit` (field 2) as a varint; ListAuditRequest's field
/// 2 is a string, which no decoder of ListRunsRequest accepts.
async fn call_with_wrong_message(channel: Channel) -> Result<RunList, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<ListAuditRequest, RunList>::default();
    let path = http::uri::PathAndQuery::from_static("/cm.v1.Runs/List");
    let wrong = ListAuditRequest {
        limit: 0,
        who: "not a number".into(),
    };
    // The right message would be this one.
    let _ = ListRunsRequest::default();
    grpc.unary(tonic::Request::new(wrong), path, codec)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undecodable_message_is_invalid_argument() {
    let s = TestServer::start().await;
    let status = call_with_wrong_message(s.admin().await).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    s.running.stop().await;
}

/// Wait until the server holds `n` handshakes in progress.
async fn wait_for_handshakes(s: &TestServer, n: usize) {
    let start = Instant::now();
    while s.running.handshakes.in_progress() != n {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} handshakes in progress, never {n}",
            s.running.handshakes.in_progress()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_handshake_cap_are_answered_resource_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_configured(dir, 0, |c| {
        c.wire.max_handshakes = 2;
        c.wire.max_busy_answers = 1;
    })
    .await;
    let admin = s.admin().await;
    // The client is done with its TLS before the server is (it still reads
    // the client's Finished): wait for that permit, or a stalled
    // connection and this one look like the two held handshakes.
    wait_for_handshakes(&s, 0).await;
    // Two connections that never send a ClientHello hold both handshakes.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        stalled.push(TcpStream::connect(s.running.grpc_addr).await.unwrap());
    }
    wait_for_handshakes(&s, 2).await;

    let status = RolesClient::new(s.admin().await)
        .list(cm_proto::v1::Empty {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status.metadata().get(cm_proto::STATUS_CAUSE).unwrap(),
        "busy",
        "agents retry it with jitter"
    );
    // A connection already made keeps working.
    RolesClient::new(admin)
        .list(cm_proto::v1::Empty {})
        .await
        .expect("established connections are not affected");

    // The stalled handshakes end: there is room again.
    drop(stalled);
    wait_for_handshakes(&s, 0).await;
    let fresh = s.admin().await;
    RolesClient::new(fresh)
        .list(cm_proto::v1::Empty {})
        .await
        .expect("a new connection is served once handshakes finish");
    s.running.stop().await;
}
