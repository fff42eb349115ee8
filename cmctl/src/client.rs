//! Connecting to the server with an admin credential: the CA from the
//! credential (checked against its fingerprint) and the admin's certificate.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cm_model::credential::Credential;
use cm_model::server_url::ServerUrl;
use sha2::{Digest, Sha256};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Where cmctl looks for a credential, in order.
pub fn credential_path(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p);
    }
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".config/cm/credential.json"));
    }
    candidates.push(PathBuf::from("/var/lib/cm/server/admin.credential"));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .context("no admin credential: pass --credential FILE or set CM_CREDENTIAL (cm-server prints where it wrote one)")
}

/// The SHA-256 fingerprint of the first certificate in `pem`.
pub fn fingerprint(pem: &str) -> Result<String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .context("the credential's CA is not a PEM certificate")?;
    Ok(hex::encode(Sha256::digest(der.as_ref())))
}

pub struct Connection {
    pub channel: Channel,
    pub credential: Credential,
}

/// Connect with the credential at `path`; `server` overrides its URL.
pub async fn connect(path: &Path, server: Option<&str>) -> Result<Connection> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cred = Credential::read(path).map_err(anyhow::Error::msg)?;
    if fingerprint(&cred.ca_pem)? != cred.ca_fingerprint {
        bail!(
            "{}: the CA does not match its fingerprint; the credential is damaged",
            path.display()
        );
    }
    let url = server.unwrap_or(&cred.server).to_string();
    let host = ServerUrl::parse(&url)?.host().to_string();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cred.ca_pem))
        .identity(Identity::from_pem(&cred.certificate_pem, &cred.key_pem))
        .domain_name(host);
    let channel = Channel::from_shared(url.clone())
        .with_context(|| format!("{url:?} is not a server URL"))?
        .tls_config(tls)?
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(120))
        .connect()
        .await
        .with_context(|| format!("cannot reach the server at {url}"))?;
    Ok(Connection {
        channel,
        credential: cred,
    })
}
