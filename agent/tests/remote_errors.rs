//! How the agent names a failed call, over real TLS: a machine whose clock
//! is behind the server's certificate is told so, not "server unreachable".

use std::sync::Arc;

use cm_agent::remote::tls::{channel, install_crypto_provider};
use cm_agent::remote::{Outage, RemoteError};
use cm_proto::v1::FactsRequest;
use cm_proto::v1::agent_client::AgentClient;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, date_time_ymd};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA, and a TLS server on loopback presenting a `localhost` certificate
/// from it that starts on 2100-01-01. Returns the URL and the CA's PEM.
async fn server_certificate_from_the_future() -> (String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = date_time_ymd(2100, 1, 1);
    params.not_after = date_time_ymd(2101, 1, 1);
    let cert = params.signed_by(&key, &issuer).unwrap();

    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    (format!("https://localhost:{port}"), ca_cert.pem())
}

#[tokio::test]
async fn a_clock_behind_the_servers_certificate_is_named_not_unreachable() {
    install_crypto_provider();
    let (url, ca_pem) = server_certificate_from_the_future().await;
    let channel = channel(&url, &ca_pem, None).unwrap();
    let status = AgentClient::new(channel)
        .report_facts(FactsRequest::default())
        .await
        .expect_err("the handshake fails: the certificate is not valid yet");
    let err = RemoteError::from(status);
    let text = err.to_string();
    assert!(
        matches!(err, RemoteError::Unreachable(Outage::ClockBehind { .. })),
        "{err:?}"
    );
    assert!(
        text.starts_with("your clock is at least ")
            && text.contains(" s behind: the server's certificate starts at 2100-01-01 00:00:00"),
        "{text}"
    );
    assert!(!text.contains("unreachable"), "{text}");
}
