//! The admin credential file the server writes and cmctl reads: where the
//! server is, the CA to trust (and its fingerprint), and the admin's
//! certificate and key. JSON, mode 0600.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub name: String,
    pub server: String,
    pub ca_fingerprint: String,
    pub ca_pem: String,
    pub certificate_pem: String,
    pub key_pem: String,
}

impl Credential {
    /// Write with mode 0600 (it holds a private key), atomically.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).expect("strings serialize");
        crate::atomic_file::write(path, text.as_bytes(), 0o600)
    }
}

impl Credential {
    /// Read a credential file, naming the file in errors.
    pub fn read(path: &Path) -> Result<Credential, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a cm credential: {e}", path.display()))
    }
}
