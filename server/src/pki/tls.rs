//! TLS configurations for the gRPC port: the server's, which makes client
//! certificates optional, and the one agents and cmctl connect with.

use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity as TlsIdentity, ServerTlsConfig};

use super::{Ca, PkiError};

/// A TLS handshake that takes longer than this is dropped, so idle
/// connections cannot pin the server's accept path.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// [`server_tls_config`] as a rustls config, for the server's own accept
/// loop (`crate::wire::accept`), which bounds the handshakes in progress:
/// the same chain, the same optional client certificates from the CA,
/// HTTP/2 only.
pub fn server_rustls_config(
    ca: &Ca,
    server_cert_pem: &str,
    server_key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let cert_error = |e: &dyn std::fmt::Display| PkiError::Certificate(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca.cert_der().clone())
        .map_err(|e| cert_error(&e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| cert_error(&e))?;
    let mut chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(server_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| cert_error(&e))?;
    chain.push(ca.cert_der().clone());
    let key = PrivateKeyDer::from_pem_slice(server_key_pem.as_bytes())
        .map_err(|e| PkiError::Key(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_error(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| cert_error(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The dashboard's side: a browser presents no certificate, and speaks
/// HTTP/2 or HTTP/1.1. `chain_pem` is the server's certificate and its
/// issuers.
pub fn web_rustls_config(
    chain_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let cert_error = |e: &dyn std::fmt::Display| PkiError::Certificate(e.to_string());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(&e))?;
    if chain.is_empty() {
        return Err(PkiError::Certificate("no certificate in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| PkiError::Key(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_error(&e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| cert_error(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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
