//! Identities in certificates: the names nodes and admins may have, the
//! CSR an agent sends, and reading the caller back from a verified
//! certificate. Nothing here needs the CA or server state, so the agent
//! can share this code.

use std::fmt;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::{PkiError, Result};

/// Who a verified client certificate names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    Node(String),
    Admin(String),
}

impl fmt::Display for Identity {
    /// `node:NAME` or `admin:NAME`, the form the audit log records.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Node(name) => write!(f, "node:{name}"),
            Identity::Admin(name) => write!(f, "admin:{name}"),
        }
    }
}

/// A caller as its certificate describes it: the serial is what a
/// revocation names, `not_after` tells a node when to renew.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub identity: Identity,
    /// Lowercase hex, without leading zero bytes.
    pub serial: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// Checks a node or admin name: 1-253 characters of `a-z 0-9 . - _`, not
/// starting with `-` or `.`. EC2 instance ids (`i-0abc...`) and hostnames
/// pass; the rule keeps names safe in URIs, file names and log lines.
pub fn validate_name(kind: &'static str, name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(PkiError::InvalidName {
            kind,
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > 253 {
        return invalid("it is longer than 253 characters");
    }
    if name.starts_with('-') || name.starts_with('.') {
        return invalid("it starts with '-' or '.'");
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    if !name.chars().all(allowed) {
        return invalid("only lowercase letters, digits, '.', '-' and '_' are allowed");
    }
    Ok(())
}

/// A fresh P-256 key and a CSR for it, for the agent's enrollment and
/// renewal. It uses no server state, so the agent can share this code.
/// Returns `(key_pem, csr_pem)`.
pub fn new_key_and_csr(node_name: &str) -> Result<(String, String)> {
    validate_name("node", node_name)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name_dn(node_name);
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

/// Reads the identity from a client certificate that rustls has already
/// verified against the CA. Exactly one `cm:` URI SAN must be present.
pub fn identity_of(cert_der: &[u8]) -> Result<Caller> {
    let cert = parse_cert(cert_der)?;
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::Certificate(format!("unreadable subjectAltName: {e}")))?;
    let mut identities = sans
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with("cm:") => Some(*uri),
            _ => None,
        });
    let uri = identities
        .next()
        .ok_or_else(|| PkiError::Certificate("no cm: identity in the certificate".into()))?;
    if identities.next().is_some() {
        return Err(PkiError::Certificate(
            "more than one cm: identity in the certificate".into(),
        ));
    }
    let identity = if let Some(name) = uri.strip_prefix("cm:node:") {
        validate_name("node", name)?;
        Identity::Node(name.to_string())
    } else if let Some(name) = uri.strip_prefix("cm:admin:") {
        validate_name("admin", name)?;
        Identity::Admin(name.to_string())
    } else {
        return Err(PkiError::Certificate(format!("unknown identity {uri:?}")));
    };
    Ok(Caller {
        identity,
        serial: serial_hex(cert.raw_serial()),
        not_after: cert.validity().not_after.timestamp(),
    })
}

pub(super) fn parse_cert<'a>(der: &'a [u8]) -> Result<X509Certificate<'a>> {
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| PkiError::Certificate(format!("unreadable certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::Certificate(
            "trailing bytes after the certificate".into(),
        ));
    }
    Ok(cert)
}

pub(super) fn common_name_dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

pub(super) fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    hex::encode(&raw[start..])
}
