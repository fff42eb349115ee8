//! Secrets at rest: values are sealed with XChaCha20-Poly1305 under a key
//! kept outside the database (docs/architecture.md, "Invariants"), so a copy of the
//! database alone reveals no secret.
//!
//! A sealed value is `version (1 byte) || nonce (24 bytes) || ciphertext+tag`.
//! The nonce is random per value (24 bytes make collisions negligible
//! without a counter, which replicas could not share). The secret's name is
//! associated data: a sealed value copied under another name does not open,
//! so whoever can write the secrets table cannot move a value to a name
//! that more roles may read.
//!
//! This module does not decide who may read a secret, and never logs one.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use rand::TryRngCore;
use sha2::{Digest, Sha256};

use cm_model::atomic_file;

/// The leading byte of every sealed value; a new format gets a new number
/// and old values stay readable.
const VERSION_XCHACHA20POLY1305: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// What can go wrong loading the key or opening a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretBoxError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secrets key {origin}: {reason}")]
    InvalidKey { origin: String, reason: String },
    #[error("sealed value of secret {name:?} is too short to be one")]
    TooShort { name: String },
    #[error("sealed value of secret {name:?} has unknown format version {version}")]
    UnknownVersion { name: String, version: u8 },
    #[error(
        "secret {name:?} does not open: it was sealed under another key or another name, \
         or it was altered"
    )]
    DoesNotOpen { name: String },
    #[error("secret {name:?} is too large to seal")]
    TooLarge { name: String },
}

/// The key that seals every secret. Replicas must share it.
#[derive(Clone)]
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    id: String,
}

impl fmt::Debug for SecretKey {
    /// Shows only the key id, never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A key from 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey, SecretBoxError> {
        if bytes.len() != KEY_LEN {
            return Err(SecretBoxError::InvalidKey {
                origin: "bytes".into(),
                reason: format!("is {} bytes, not {KEY_LEN}", bytes.len()),
            });
        }
        let cipher =
            XChaCha20Poly1305::new_from_slice(bytes).map_err(|_| SecretBoxError::InvalidKey {
                origin: "bytes".into(),
                reason: format!("is not {KEY_LEN} bytes"),
            })?;
        // A hash of a hash: it names the key in logs (so operators can see
        // two replicas hold different keys) and reveals nothing of it.
        let id = hex::encode(&Sha256::digest(Sha256::digest(bytes))[..4]);
        Ok(SecretKey { cipher, id })
    }

    /// A new random key (from the operating system's generator).
    pub fn generate() -> Result<(SecretKey, [u8; KEY_LEN]), SecretBoxError> {
        let mut bytes = [0u8; KEY_LEN];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| SecretBoxError::InvalidKey {
                origin: "generator".into(),
                reason: e.to_string(),
            })?;
        Ok((SecretKey::from_bytes(&bytes)?, bytes))
    }

    /// A key written as text: 64 hex digits or base64 (standard or
    /// URL-safe, padded or not) of 32 bytes. `origin` names where it came
    /// from in errors, e.g. `CM_SECRETS_KEY`.
    pub fn from_encoded(text: &str, origin: &str) -> Result<SecretKey, SecretBoxError> {
        let text = text.trim();
        let decoded = if text.len() == 2 * KEY_LEN {
            hex::decode(text).ok()
        } else {
            use base64::engine::general_purpose as b64;
            [
                &b64::STANDARD,
                &b64::STANDARD_NO_PAD,
                &b64::URL_SAFE,
                &b64::URL_SAFE_NO_PAD,
            ]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
        };
        match decoded {
            Some(bytes) if bytes.len() == KEY_LEN => SecretKey::from_bytes(&bytes),
            _ => Err(SecretBoxError::InvalidKey {
                origin: origin.to_string(),
                reason: format!("expected {KEY_LEN} bytes as 64 hex digits or base64"),
            }),
        }
    }

    /// The key from `CM_SECRETS_KEY` (hex or base64), if it is set: how
    /// replicas share one key without a shared file.
    pub fn from_env() -> Result<Option<SecretKey>, SecretBoxError> {
        match std::env::var("CM_SECRETS_KEY") {
            Ok(text) if !text.trim().is_empty() => {
                SecretKey::from_encoded(&text, "CM_SECRETS_KEY").map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The embedded default: the key file at `path` (32 raw bytes, or the
    /// text forms of [`SecretKey::from_encoded`]), created with mode 0600
    /// on first start. Creation is atomic and never replaces a key another
    /// process wrote first, because a lost key loses every secret.
    pub fn load_or_create(path: &Path) -> Result<SecretKey, SecretBoxError> {
        let io_err = |source| SecretBoxError::Io {
            path: path.to_path_buf(),
            source,
        };
        if !path.exists() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io_err)?;
            }
            let (key, bytes) = SecretKey::generate()?;
            if atomic_file::create_new(path, &bytes, 0o600).map_err(io_err)? {
                tracing::info!(path = %path.display(), key_id = %key.id, "generated a new secrets key");
                return Ok(key);
            }
        }
        crate::data_dir::warn_if_readable_by_others(path);
        let bytes = std::fs::read(path).map_err(io_err)?;
        if bytes.len() == KEY_LEN {
            return SecretKey::from_bytes(&bytes);
        }
        let text = String::from_utf8(bytes).map_err(|_| SecretBoxError::InvalidKey {
            origin: path.display().to_string(),
            reason: format!("is neither {KEY_LEN} raw bytes nor hex or base64 text"),
        })?;
        SecretKey::from_encoded(&text, &path.display().to_string())
    }

    /// A short, non-secret name for this key (hex), to compare replicas.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext` as the value of the secret `name`.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Result<Vec<u8>, SecretBoxError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(VERSION_XCHACHA20POLY1305, name);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SecretBoxError::TooLarge { name: name.into() })?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(VERSION_XCHACHA20POLY1305);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Opens a value sealed for the secret `name`; fails when the key, the
    /// name or any byte differs.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretBoxError> {
        let (&version, rest) = sealed
            .split_first()
            .ok_or_else(|| SecretBoxError::TooShort { name: name.into() })?;
        if version != VERSION_XCHACHA20POLY1305 {
            return Err(SecretBoxError::UnknownVersion {
                name: name.into(),
                version,
            });
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretBoxError::TooShort { name: name.into() });
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let aad = associated_data(version, name);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SecretBoxError::DoesNotOpen { name: name.into() })
    }
}

/// The version byte is bound too, so a value cannot be replayed under a
/// future format number.
fn associated_data(version: u8, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + name.len());
    aad.push(version);
    aad.extend_from_slice(name.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::generate()
            .expect("the OS generator works in tests")
            .0
    }

    #[test]
    fn round_trip() {
        let key = key();
        let sealed = key.seal("db_password", b"hunter2").unwrap();
        assert_eq!(sealed[0], VERSION_XCHACHA20POLY1305);
        assert!(
            !sealed.windows(7).any(|w| w == b"hunter2"),
            "plaintext visible"
        );
        assert_eq!(key.open("db_password", &sealed).unwrap(), b"hunter2");
        assert_eq!(
            key.open("empty", &key.seal("empty", b"").unwrap()).unwrap(),
            b""
        );
    }

    #[test]
    fn same_value_seals_differently_each_time() {
        let key = key();
        assert_ne!(key.seal("a", b"x").unwrap(), key.seal("a", b"x").unwrap());
    }

    #[test]
    fn value_moved_to_another_name_does_not_open() {
        let key = key();
        let sealed = key.seal("web_only", b"v").unwrap();
        let err = key.open("everyone", &sealed).unwrap_err();
        assert!(matches!(err, SecretBoxError::DoesNotOpen { .. }), "{err}");
    }

    #[test]
    fn tampered_value_does_not_open() {
        let key = key();
        let sealed = key.seal("s", b"value").unwrap();
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert!(
                key.open("s", &tampered).is_err(),
                "byte {i} flipped still opens"
            );
        }
        assert!(key.open("s", &sealed[..sealed.len() - 1]).is_err());
        assert!(matches!(
            key.open("s", &[]),
            Err(SecretBoxError::TooShort { .. })
        ));
        assert!(matches!(
            key.open("s", &[1; 20]),
            Err(SecretBoxError::TooShort { .. })
        ));
    }

    #[test]
    fn other_key_does_not_open() {
        let sealed = key().seal("s", b"value").unwrap();
        assert!(matches!(
            key().open("s", &sealed),
            Err(SecretBoxError::DoesNotOpen { .. })
        ));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let bytes = [0xabu8; KEY_LEN];
        let key = SecretKey::from_bytes(&bytes).unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains("abab") && !debug.contains("171"), "{debug}");
        assert!(debug.contains(key.id()));
    }

    #[test]
    fn encoded_keys_hex_and_base64_give_the_same_key() {
        let bytes: Vec<u8> = (0..32).collect();
        let from_hex = SecretKey::from_encoded(&hex::encode(&bytes), "test").unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let from_b64 = SecretKey::from_encoded(&format!("{b64}\n"), "test").unwrap();
        let sealed = from_hex.seal("n", b"v").unwrap();
        assert_eq!(from_b64.open("n", &sealed).unwrap(), b"v");
        let err = SecretKey::from_encoded("abcd", "CM_SECRETS_KEY").unwrap_err();
        assert!(err.to_string().contains("CM_SECRETS_KEY"), "{err}");
    }

    #[test]
    fn key_file_is_created_private_once_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secrets.key");
        let first = SecretKey::load_or_create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), KEY_LEN as u64);
        let second = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(first.id(), second.id());
        let sealed = first.seal("n", b"v").unwrap();
        assert_eq!(second.open("n", &sealed).unwrap(), b"v");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary files left behind");
    }
}
