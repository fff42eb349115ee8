//! The node's identity: a key made on the node (it never leaves), the
//! certificate the server signed for it, and the CA. Enrollment trades a
//! token and a CSR for the certificate; renewal trades a fresh CSR over
//! mutual TLS once two thirds of the certificate's life have passed.

use std::path::Path;

use cm_proto::v1::agent_client::AgentClient;
use cm_proto::v1::{EnrollRequest, EnrollResponse, RenewRequest};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use super::{RemoteError, now, tls};

const FILE: &str = "identity.json";

/// Everything a node needs to call the server as itself.
#[derive(Clone, Serialize, Deserialize)]
pub struct Identity {
    pub name: String,
    pub server: String,
    pub key_pem: String,
    pub cert_pem: String,
    pub ca_pem: String,
    pub issued_at: i64,
    pub expires_at: i64,
}

impl std::fmt::Debug for Identity {
    // The key stays out of every log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("server", &self.server)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The stored identity, `None` before the first enrollment.
    pub fn load(state_dir: &Path) -> Result<Option<Identity>, String> {
        let path = state_dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                format!(
                    "{}: damaged identity ({e}); remove it to enroll again",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Written in one atomic step, 0600: a crash leaves the old identity or the new one.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        cm_model::atomic_file::write(&state_dir.join(FILE), &json, 0o600)
    }

    /// Renewal is due after two thirds of the certificate's lifetime.
    pub fn renewal_due(&self, now: i64) -> bool {
        now >= self.issued_at + (self.expires_at - self.issued_at) * 2 / 3
    }

    pub fn expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }

    /// A channel presenting this identity.
    pub fn channel(&self) -> Result<Channel, String> {
        tls::channel(
            &self.server,
            &self.ca_pem,
            Some((&self.cert_pem, &self.key_pem)),
        )
    }

    fn from_response(
        name: &str,
        server: &str,
        key_pem: String,
        r: EnrollResponse,
        pinned_ca: &str,
    ) -> Result<Identity, RemoteError> {
        // The CA the server names must be the one already trusted.
        let given = tls::pem_fingerprint(&r.ca_pem).map_err(RemoteError::Other)?;
        let pinned = tls::pem_fingerprint(pinned_ca).map_err(RemoteError::Other)?;
        if given != pinned {
            return Err(RemoteError::Refused(format!(
                "the server answered with CA {given}, not the trusted {pinned}"
            )));
        }
        Ok(Identity {
            name: name.to_string(),
            server: server.to_string(),
            key_pem,
            cert_pem: r.certificate_pem,
            ca_pem: pinned_ca.to_string(),
            issued_at: now(),
            expires_at: r.expires_at,
        })
    }
}

/// A new P-256 key and a CSR for `name`. Only the public key matters to
/// the server, which builds the certificate itself.
pub fn new_key_and_csr(name: &str) -> Result<(String, String), String> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(|e| e.to_string())?;
    Ok((key.serialize_pem(), csr))
}

/// What enrollment needs from the configuration.
pub struct Enrollment<'a> {
    pub server: &'a str,
    pub ca_fingerprint: &'a str,
    pub token: &'a str,
    pub name: &'a str,
    pub facts_json: String,
}

/// Enroll: trust the pinned CA, send the CSR with the token, keep the certificate.
pub async fn enroll(e: Enrollment<'_>) -> Result<Identity, RemoteError> {
    let ca_pem = tls::fetch_pinned_ca(e.server, e.ca_fingerprint).await?;
    let (key_pem, csr_pem) = new_key_and_csr(e.name).map_err(RemoteError::Refused)?;
    let channel = tls::channel(e.server, &ca_pem, None).map_err(RemoteError::Refused)?;
    let mut request = tonic::Request::new(EnrollRequest {
        token: e.token.to_string(),
        node_name: e.name.to_string(),
        csr_pem,
        facts_json: e.facts_json,
        agent_version: cm_proto::VERSION.to_string(),
    });
    request.set_timeout(std::time::Duration::from_secs(30));
    let response = AgentClient::new(channel)
        .enroll(request)
        .await
        .map_err(|s| match RemoteError::from(s) {
            RemoteError::Refused(m) | RemoteError::Revoked(m) => {
                RemoteError::Refused(format!("enrollment refused: {m}"))
            }
            other => other,
        })?
        .into_inner();
    Identity::from_response(e.name, e.server, key_pem, response, &ca_pem)
}

/// Renew over mutual TLS with a fresh key; the old certificate is revoked by the server.
pub async fn renew(identity: &Identity, channel: Channel) -> Result<Identity, RemoteError> {
    let (key_pem, csr_pem) = new_key_and_csr(&identity.name).map_err(RemoteError::Other)?;
    let mut request = tonic::Request::new(RenewRequest { csr_pem });
    request.set_timeout(std::time::Duration::from_secs(30));
    let response = AgentClient::new(channel).renew(request).await?.into_inner();
    Identity::from_response(
        &identity.name,
        &identity.server,
        key_pem,
        response,
        &identity.ca_pem,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(issued_at: i64, expires_at: i64) -> Identity {
        Identity {
            name: "n1".into(),
            server: "https://localhost:1".into(),
            key_pem: "KEY".into(),
            cert_pem: String::new(),
            ca_pem: String::new(),
            issued_at,
            expires_at,
        }
    }

    #[test]
    fn renewal_after_two_thirds() {
        let id = identity(0, 90);
        assert!(!id.renewal_due(59));
        assert!(id.renewal_due(60));
        assert!(!id.expired(89));
        assert!(id.expired(90));
    }

    #[test]
    fn saved_private_and_loaded_back_without_logging_the_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert!(Identity::load(dir.path()).unwrap().is_none());
        identity(1, 2).save(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = Identity::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.key_pem, "KEY");
        assert!(!format!("{back:?}").contains("KEY"));
    }

    #[test]
    fn csr_is_pem() {
        let (key, csr) = new_key_and_csr("web-1").unwrap();
        assert!(key.contains("PRIVATE KEY"));
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    }
}
