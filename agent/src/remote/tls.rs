//! Trusting the server. Before enrollment a node knows only the CA's
//! fingerprint (from its user-data): a first handshake reads the chain the
//! server presents, keeps the certificate whose SHA-256 is the pinned one,
//! and from then on every connection verifies the server against that CA
//! in full (name and signature), the way cmctl does with its credential.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::RemoteError;
use cm_model::server_url::ServerUrl;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Installs aws-lc-rs as rustls' process default (decisions.md, "rustls with
/// aws-lc-rs").
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// SHA-256 of a certificate, lowercase hex: what `ca_fingerprint` holds.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The fingerprint of the first certificate in `pem`.
pub fn pem_fingerprint(pem: &str) -> Result<String, String> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|der| fingerprint(der.as_ref()))
        .map_err(|e| format!("not a PEM certificate: {e}"))
}

/// Connects once to `url`, finds the certificate matching `pin` in the
/// chain the server presents and returns it as PEM.
pub async fn fetch_pinned_ca(url: &str, pin: &str) -> Result<String, RemoteError> {
    install_crypto_provider();
    let server = ServerUrl::parse(url).map_err(|e| RemoteError::Refused(e.to_string()))?;
    let (host, port) = (server.host().to_string(), server.port());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let capture = Arc::new(CaptureChain {
        chain: Mutex::default(),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RemoteError::Other(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone())
        .map_err(|e| RemoteError::Refused(format!("{host:?}: {e}")))?;
    let unreachable = |e: String| RemoteError::unreachable(format!("{url}: {e}"));
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| unreachable(format!("TLS handshake: {e}")))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .map_err(|_| unreachable("timed out".into()))??;
    let chain = capture.chain.lock().map(|c| c.clone()).unwrap_or_default();
    let ca = chain
        .iter()
        .find(|der| fingerprint(der.as_ref()) == pin)
        .ok_or_else(|| {
            RemoteError::Refused(format!(
                "the server at {url} does not present the CA with fingerprint {pin}: \
                 check ca_fingerprint against the one cm-server printed"
            ))
        })?;
    Ok(pem_encode(ca.as_ref()))
}

fn pem_encode(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

/// A channel to `url` that trusts only `ca_pem` and presents `identity`
/// (certificate and key PEM) when there is one. It connects lazily and
/// reconnects by itself; keepalives notice a server that went away
/// under a long watch stream.
pub fn channel(url: &str, ca_pem: &str, identity: Option<(&str, &str)>) -> Result<Channel, String> {
    install_crypto_provider();
    let host = ServerUrl::parse(url)
        .map_err(|e| e.to_string())?
        .host()
        .to_string();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name(host);
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("{url:?}: {e}"))?
        .tls_config(tls)
        .map_err(|e| format!("TLS settings for {url}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        // At most one ping a minute, as the server does: a fleet's idle
        // Watch streams must not cost the server a flood of pings.
        .http2_keep_alive_interval(Duration::from_secs(60))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}

/// Records the presented chain; proves only that the server holds the key
/// of its certificate. Used for the pin lookup, never for a real call.
#[derive(Debug)]
struct CaptureChain {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for CaptureChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            chain.push(end_entity.clone().into_owned());
            chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_through_the_parser() {
        let der: Vec<u8> = (0u8..=200).collect();
        let pem = pem_encode(&der);
        let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), der.as_slice());
    }
}
