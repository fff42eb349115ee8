//! The data-dir bootstrap: the CA and the server certificate a server
//! process starts with, created on first start and reused afterwards.

use std::net::IpAddr;
use std::path::Path;

use rcgen::KeyPair;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tonic::transport::ServerTlsConfig;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::identity::{parse_cert, serial_hex};
use super::{
    Ca, Credential, IssuedCert, PkiError, Result, SERVER_RENEW_BEFORE, SERVER_VALIDITY, now_unix,
    read, secs, server_tls_config, write,
};

/// The CA and the server certificate of one server process.
#[derive(Debug)]
pub struct Pki {
    ca: Ca,
    server: Credential,
}

impl Pki {
    /// The embedded default: the CA lives in `dir` (`ca.pem`, `ca.key`),
    /// generated on first start and loaded afterwards; then as [`Pki::from_ca`].
    pub fn load_or_create(dir: &Path, tls_names: &[String]) -> Result<Pki> {
        create_private_dir(dir)?;
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        let ca = match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                crate::data_dir::warn_if_readable_by_others(&key_path);
                Ca::from_pem(&read(&cert_path)?, &read(&key_path)?)?
            }
            (false, false) => {
                let ca = Ca::generate("cm CA")?;
                // A crash between the two writes leaves half a CA, which
                // the arm below refuses instead of replacing it silently.
                write(&key_path, ca.key_pem().as_bytes(), 0o600)?;
                write(&cert_path, ca.cert_pem().as_bytes(), 0o644)?;
                tracing::info!(fingerprint = %ca.fingerprint(), dir = %dir.display(), "generated a new CA");
                ca
            }
            (true, false) | (false, true) => {
                return Err(PkiError::Config(format!(
                    "{} holds only one of ca.pem and ca.key: restore the other, or remove \
                     both to generate a new CA (every node and admin must then enroll again)",
                    dir.display()
                )));
            }
        };
        Pki::from_ca(ca, dir, tls_names)
    }

    /// A server certificate for `tls_names` signed by `ca`, kept in `dir`
    /// (`server.pem`, `server.key`). It is re-issued when the names
    /// changed, it expires within 30 days, it is not signed by `ca` (the
    /// CA was replaced) or its key does not match. Replicas sharing one CA
    /// use this directly; the CA key is not written to `dir`.
    pub fn from_ca(ca: Ca, dir: &Path, tls_names: &[String]) -> Result<Pki> {
        create_private_dir(dir)?;
        let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server.key"));
        let reusable = match (read(&cert_path), read(&key_path)) {
            (Ok(cert_pem), Ok(key_pem)) => reuse_server_cert(&ca, cert_pem, key_pem, tls_names)
                .inspect_err(|problem| tracing::info!(%problem, "issuing a new server certificate"))
                .ok(),
            _ => None,
        };
        let server = match reusable {
            Some(server) => server,
            None => {
                let server = ca.issue_server(tls_names, SERVER_VALIDITY)?;
                write(&key_path, server.key_pem.as_bytes(), 0o600)?;
                write(&cert_path, server.cert.cert_pem.as_bytes(), 0o644)?;
                server
            }
        };
        Ok(Pki { ca, server })
    }

    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    pub fn server(&self) -> &Credential {
        &self.server
    }

    /// [`server_tls_config`] for this server.
    pub fn server_tls_config(&self) -> ServerTlsConfig {
        server_tls_config(&self.ca, &self.server.cert.cert_pem, &self.server.key_pem)
    }

    /// [`super::server_rustls_config`] for this server.
    pub fn server_rustls_config(&self) -> Result<std::sync::Arc<rustls::ServerConfig>> {
        super::server_rustls_config(&self.ca, &self.server.cert.cert_pem, &self.server.key_pem)
    }
}

/// The stored server certificate as a credential, or why it cannot be
/// reused.
fn reuse_server_cert(
    ca: &Ca,
    cert_pem: String,
    key_pem: String,
    names: &[String],
) -> std::result::Result<Credential, String> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| format!("server.pem is not PEM: {e}"))?;
    let cert = parse_cert(&der).map_err(|e| e.to_string())?;
    let ca_cert = parse_cert(ca.cert_der()).map_err(|e| e.to_string())?;
    if cert.verify_signature(Some(ca_cert.public_key())).is_err() {
        return Err("it is not signed by the current CA".into());
    }
    match KeyPair::from_pem(&key_pem) {
        Ok(key) if key.public_key_raw() == cert.public_key().subject_public_key.data.as_ref() => {}
        _ => return Err("server.key does not match server.pem".into()),
    }
    let not_after = cert.validity().not_after.timestamp();
    if now_unix() >= not_after - secs(SERVER_RENEW_BEFORE) {
        return Err("it expires within 30 days".into());
    }
    let mut wanted: Vec<String> = names.iter().map(|n| normalize_name(n)).collect();
    wanted.sort();
    wanted.dedup();
    let mut present = cert_names(&cert);
    present.sort();
    present.dedup();
    if wanted != present {
        return Err(format!("its names {present:?} differ from {wanted:?}"));
    }
    let serial = serial_hex(cert.raw_serial());
    Ok(Credential {
        cert: IssuedCert {
            cert_pem,
            serial,
            not_after,
        },
        key_pem,
    })
}

/// The DNS and IP SANs of a certificate, in the form [`normalize_name`] gives.
fn cert_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(sans)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    sans.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
            GeneralName::IPAddress(bytes) => ip_from_bytes(bytes).map(|ip| ip.to_string()),
            _ => None,
        })
        .collect()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn normalize_name(name: &str) -> String {
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => name.to_ascii_lowercase(),
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| PkiError::Io {
            path: dir.to_path_buf(),
            source,
        })
}
