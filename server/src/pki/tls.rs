//! TLS configurations for the gRPC port: the server's, which makes client
//! certificates optional, and the one agents and cmctl connect with.

use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Identity as TlsIdentity, ServerTlsConfig};

use super::Ca;

/// A TLS handshake that takes longer than this is dropped, so idle
/// connections cannot pin the server's accept path.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Installs aws-lc-rs as rustls' process-wide provider (decisions.md, "rustls
/// with aws-lc-rs"). Call it first in every `main` and test that makes TLS
/// configs; calling it again is harmless.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is the goal.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The server side of TLS: presents the server certificate and verifies
/// client certificates against the CA, but lets a caller without one
/// through, because Enroll is called before the node has a certificate.
/// Every other RPC must check for an identity itself.
///
/// The chain carries the CA after the server certificate, so an agent that
/// holds only the CA's fingerprint (from its user-data) can find the CA in
/// the handshake, check it against the pin and trust it from then on.
pub fn server_tls_config(ca: &Ca, server_cert_pem: &str, server_key_pem: &str) -> ServerTlsConfig {
    let chain = format!("{}\n{}", server_cert_pem.trim_end(), ca.cert_pem());
    ServerTlsConfig::new()
        .identity(TlsIdentity::from_pem(chain, server_key_pem))
        .client_ca_root(Certificate::from_pem(ca.cert_pem()))
        .client_auth_optional(true)
        .timeout(HANDSHAKE_TIMEOUT)
}

/// The client side for agents and cmctl: trusts only the cm CA (never the
/// system roots), checks the server's name, and presents `identity`
/// (certificate and key PEM) when there is one.
pub fn client_tls_config(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
    server_name: &str,
) -> ClientTlsConfig {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name(server_name)
        .timeout(HANDSHAKE_TIMEOUT);
    match identity {
        Some((cert_pem, key_pem)) => config.identity(TlsIdentity::from_pem(cert_pem, key_pem)),
        None => config,
    }
}
