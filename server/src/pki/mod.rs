//! The certificate authority that identifies every caller, and the TLS
//! configurations built on it.
//!
//! Every certificate is ECDSA P-256. The server's CA issues three kinds of
//! leaf: the server's own (DNS and IP names, serverAuth), a node's (from the
//! node's CSR, clientAuth) and an admin's (key generated here, clientAuth).
//! A caller's identity is one URI SAN, `cm:node:NAME` or `cm:admin:NAME`,
//! read back by [`identity_of`] after rustls has verified the chain.
//!
//! A CSR is never signed as it stands (decisions.md, "A CA of our own, with
//! rcgen"): only its public key is taken, after its self-signature is checked;
//! name, usage and validity are built here, so a CSR that asks for
//! `cm:admin:root` or CA:true still gets a plain node certificate.
//!
//! This file holds the CA and issuance; `identity` the names and the
//! agent-side CSR, `tls` the rustls configs, `bootstrap` the data-dir files
//! ([`Pki`]), written with `cm_model::atomic_file` (mode set before the
//! first byte, renamed into place).
//!
//! This module does not decide who may enroll or what a caller may do, and
//! does not keep revocations: those live in the database.

mod bootstrap;
mod identity;
mod tls;

pub use bootstrap::Pki;
pub use identity::{Caller, Identity, identity_of, new_key_and_csr, validate_name};
pub use tls::{
    HANDSHAKE_TIMEOUT, client_tls_config, install_crypto_provider, server_rustls_config,
    server_tls_config, web_rustls_config,
};

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer};
use sha2::{Digest, Sha256};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use identity::{common_name_dn, parse_cert};

/// How long a generated CA lives. Long, because replacing it means
/// re-enrolling every node; the server cert and node certs rotate instead.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long the server's own certificate lives; it is re-issued at start
/// once it is within [`SERVER_RENEW_BEFORE`] of expiring.
pub const SERVER_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// A server certificate this close to expiry is re-issued at start.
pub const SERVER_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Every certificate (the CA's too) starts this far in the past, so that a
/// node whose clock is behind the server's (a new instance before NTP
/// settles, a VM restored from a snapshot) still accepts a CA and a server
/// certificate made a moment ago (docs/server.md).
pub const CERT_BACKDATE: Duration = Duration::from_secs(2 * 3600);

/// What can go wrong issuing, parsing or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        kind: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("certificate signing request refused: {0}")]
    Csr(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("private key: {0}")]
    Key(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error("building certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

pub type Result<T, E = PkiError> = std::result::Result<T, E>;

/// A certificate the CA issued, without its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCert {
    pub cert_pem: String,
    /// Lowercase hex, as [`identity_of`] reports it.
    pub serial: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// A certificate together with the private key generated for it (the
/// server's own, or an admin's, handed out once).
#[derive(Clone)]
pub struct Credential {
    pub cert: IssuedCert,
    pub key_pem: String,
}

impl fmt::Debug for Credential {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("cert", &self.cert)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// The certificate authority: its certificate, and the key that signs.
pub struct Ca {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// Unix seconds; no leaf is issued past it, since it could not chain.
    not_after: i64,
}

impl fmt::Debug for Ca {
    /// Names the CA by its fingerprint; never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA that may sign leaf certificates only (path
    /// length 0): nothing it issues can act as a CA in turn.
    pub fn generate(common_name: &str) -> Result<Ca> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_dn(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        let not_after = set_validity(&mut params, CA_VALIDITY, i64::MAX)?;
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem,
            issuer: Issuer::new(params, key),
            not_after,
        })
    }

    /// Loads a CA from its certificate and key, checking that they belong
    /// together and that the certificate is a CA, so a mixed-up pair of
    /// files fails at start rather than at the first handshake.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| PkiError::Certificate(format!("CA certificate is not PEM: {e}")))?;
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| PkiError::Key(format!("CA key is not a PEM private key: {e}")))?;
        if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(PkiError::Key("CA key is not ECDSA P-256".into()));
        }
        let cert = parse_cert(&cert_der)?;
        if !cert.is_ca() {
            return Err(PkiError::Certificate(
                "CA certificate is not a CA (no basicConstraints CA:true)".into(),
            ));
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(PkiError::Key(
                "CA key does not belong to the CA certificate".into(),
            ));
        }
        let not_after = cert.validity().not_after.timestamp();
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        let key_pem = issuer.key().serialize_pem();
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            cert_der,
            key_pem,
            issuer,
            not_after,
        })
    }

    /// Loads the CA replicas share: each of `cert` and `key` is either PEM
    /// text or the path of a PEM file (the forms `CM_CA_CERT` and
    /// `CM_CA_KEY` take).
    pub fn from_pem_or_path(cert: &str, key: &str) -> Result<Ca> {
        Ca::from_pem(&pem_or_file(cert)?, &pem_or_file(key)?)
    }

    /// The CA given by `CM_CA_CERT` and `CM_CA_KEY` (PEM text or paths), if
    /// set; one without the other is an error, not a silent new CA.
    pub fn from_env() -> Result<Option<Ca>> {
        let cert = std::env::var("CM_CA_CERT").ok().filter(|v| !v.is_empty());
        let key = std::env::var("CM_CA_KEY").ok().filter(|v| !v.is_empty());
        match (cert, key) {
            (Some(cert), Some(key)) => Ca::from_pem_or_path(&cert, &key).map(Some),
            (None, None) => Ok(None),
            (Some(_), None) => Err(PkiError::Config(
                "CM_CA_CERT is set but CM_CA_KEY is not".into(),
            )),
            (None, Some(_)) => Err(PkiError::Config(
                "CM_CA_KEY is set but CM_CA_CERT is not".into(),
            )),
        }
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA's private key; written only to `ca.key` (0600).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// SHA-256 of the CA certificate's DER, lowercase hex: the pin agents
    /// and cmctl compare before trusting a CA they were handed.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.cert_der.as_ref()))
    }

    /// The server's certificate: each name that parses as an IP address
    /// becomes an IP SAN, every other a DNS SAN.
    pub fn issue_server(&self, names: &[String], validity: Duration) -> Result<Credential> {
        let first = names.first().ok_or_else(|| {
            PkiError::Config("the server certificate needs at least one name".into())
        })?;
        let sans = names
            .iter()
            .map(|name| server_san(name))
            .collect::<Result<Vec<_>>>()?;
        self.issue_with_new_key(first, sans, ExtendedKeyUsagePurpose::ServerAuth, validity)
    }

    /// A node's certificate from its CSR. The CSR's self-signature must
    /// verify (it proves the node holds the key); then only its public key
    /// is used. Everything else comes from `node_name`, which the caller
    /// has already authorised (token or existing identity).
    pub fn sign_node_csr(
        &self,
        csr_pem: &str,
        node_name: &str,
        validity: Duration,
    ) -> Result<IssuedCert> {
        validate_name("node", node_name)?;
        let public_key = verified_csr_key(csr_pem)?;
        let san = uri_san(&format!("cm:node:{node_name}"))?;
        self.issue(
            node_name,
            vec![san],
            ExtendedKeyUsagePurpose::ClientAuth,
            &public_key,
            validity,
        )
    }

    /// An admin's credential; the key is generated here and returned once.
    pub fn issue_admin(&self, name: &str, validity: Duration) -> Result<Credential> {
        validate_name("admin", name)?;
        let san = uri_san(&format!("cm:admin:{name}"))?;
        self.issue_with_new_key(
            name,
            vec![san],
            ExtendedKeyUsagePurpose::ClientAuth,
            validity,
        )
    }

    /// A certificate for a key generated here, returned with it.
    fn issue_with_new_key(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
        validity: Duration,
    ) -> Result<Credential> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = self.issue(common_name, sans, usage, &key, validity)?;
        Ok(Credential {
            cert,
            key_pem: key.serialize_pem(),
        })
    }

    /// The one place leaf certificates are built: never a CA, one usage,
    /// a random serial, validity starting a little in the past and ending
    /// no later than the CA's.
    fn issue(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
        public_key: &impl rcgen::PublicKeyData,
        validity: Duration,
    ) -> Result<IssuedCert> {
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_dn(common_name);
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let serial = random_serial();
        let serial_hex = hex::encode(serial.to_bytes());
        params.serial_number = Some(serial);
        let not_after = set_validity(&mut params, validity, self.not_after)?;
        let cert = params.signed_by(public_key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            serial: serial_hex,
            not_after,
        })
    }
}

fn server_san(name: &str) -> Result<SanType> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '*');
    if !valid {
        return Err(PkiError::InvalidName {
            kind: "server",
            name: name.to_string(),
            reason: "a server name is a DNS name or an IP address",
        });
    }
    Ok(SanType::DnsName(name.to_ascii_lowercase().try_into()?))
}

fn uri_san(uri: &str) -> Result<SanType> {
    Ok(SanType::URI(uri.try_into()?))
}

/// Parses a CSR, verifies its self-signature and returns its public key,
/// which must be ECDSA P-256. Nothing else of the CSR is looked at.
fn verified_csr_key(csr_pem: &str) -> Result<SubjectPublicKeyInfo> {
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .map_err(|e| PkiError::Csr(format!("not a PEM certificate request: {e}")))?;
    let (rest, csr) = X509CertificationRequest::from_der(der.as_ref())
        .map_err(|e| PkiError::Csr(format!("unreadable certificate request: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::Csr(
            "trailing bytes after the certificate request".into(),
        ));
    }
    csr.verify_signature()
        .map_err(|_| PkiError::Csr("its signature does not verify with its own key".into()))?;
    let spki = &csr.certification_request_info.subject_pki;
    let is_p256 = spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|curve| curve == OID_EC_P256);
    if !is_p256 {
        return Err(PkiError::Csr("the key must be ECDSA P-256".into()));
    }
    SubjectPublicKeyInfo::from_der(spki.raw)
        .map_err(|e| PkiError::Csr(format!("unusable public key: {e}")))
}

/// 16 random bytes, positive and without a leading zero byte, so the hex
/// we record is exactly the hex a parser reads back from the DER integer.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

/// Sets not_before (now minus [`CERT_BACKDATE`]) and not_after (now
/// plus `validity`, capped at `latest`); returns not_after in unix seconds.
fn set_validity(params: &mut CertificateParams, validity: Duration, latest: i64) -> Result<i64> {
    let now = now_unix();
    let not_after = now.saturating_add(secs(validity)).min(latest);
    if not_after <= now {
        return Err(PkiError::Config(
            "the CA has expired: it can issue no certificate".into(),
        ));
    }
    let at = |unix: i64| {
        ASN1Time::from_timestamp(unix)
            .map(|t| t.to_datetime())
            .map_err(|_| PkiError::Config(format!("{unix} is not a representable time")))
    };
    params.not_before = at(now - secs(CERT_BACKDATE))?;
    params.not_after = at(not_after)?;
    Ok(not_after)
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(secs)
        .unwrap_or(0)
}

fn pem_or_file(value: &str) -> Result<String> {
    if value.trim_start().starts_with("-----BEGIN") {
        Ok(value.to_string())
    } else {
        read(Path::new(value))
    }
}

/// [`cm_model::atomic_file::write`], naming the file in the error.
fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    cm_model::atomic_file::write(path, bytes, mode).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}
