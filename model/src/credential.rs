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
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = serde_json::to_string_pretty(self).expect("strings serialize");
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
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
