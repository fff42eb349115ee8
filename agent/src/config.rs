//! The agent's settings: `/etc/cm/agent.yaml`, under `CM_*` variables and
//! flags (the command line parses both; whatever it leaves unset comes from
//! the file, then from the defaults here).

use std::path::{Path, PathBuf};
use std::time::Duration;

use cm_model::LoadError;
use cm_model::secrets::SecretString;
use cm_model::server_url::ServerUrl;
pub use cm_model::time::parse_duration;
use serde::Deserialize;

use crate::facts::Cloud;

pub const DEFAULT_FILE: &str = "/etc/cm/agent.yaml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cm/agent";
/// Drift repair between plan changes; plan changes arrive on the watch stream.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_SPLAY: Duration = Duration::from_secs(60);

/// What agent.yaml may hold. Unknown keys are errors: a typo must not
/// silently fall back to a default.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub server: Option<String>,
    pub ca_fingerprint: Option<String>,
    pub token: Option<SecretString>,
    pub name: Option<String>,
    pub cloud: Option<Cloud>,
    pub imds_endpoint: Option<String>,
    pub interval: Option<Seconds>,
    pub splay: Option<Seconds>,
    pub state_dir: Option<PathBuf>,
    pub backup_dir: Option<PathBuf>,
}

/// A duration written as seconds (`900`) or with a unit (`15m`, `1h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub u64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Seconds(n)),
            Raw::Text(t) => parse_duration(&t)
                .map(Seconds)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Settings given on the command line or in `CM_*` variables: the same
/// keys as the file, and they win over it.
pub type Overrides = FileSettings;

/// The settings a run uses.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file read (it may not exist), so the token can be removed from it.
    pub file: PathBuf,
    pub server: Option<String>,
    /// SHA-256 of the CA certificate (hex), how a node trusts the server before it enrolls.
    pub ca_fingerprint: Option<String>,
    /// Shown as a redaction in `Debug`, so a logged config leaks nothing.
    pub token: Option<SecretString>,
    /// Node name; `None` picks the instance id on EC2, else the hostname.
    pub name: Option<String>,
    pub cloud: Cloud,
    pub imds_endpoint: Option<String>,
    pub interval: Duration,
    pub splay: Duration,
    pub state_dir: PathBuf,
    pub backup_dir: PathBuf,
}

impl Config {
    /// Read `file` (a missing file is no error: everything may come from
    /// flags) and apply `over` on top.
    pub fn load(file: &Path, over: Overrides) -> Result<Config, LoadError> {
        let settings = match std::fs::read_to_string(file) {
            Ok(text) if text.trim().is_empty() => FileSettings::default(),
            Ok(text) => cm_model::yaml::parse::<FileSettings>(file, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileSettings::default(),
            Err(e) => return Err(LoadError::in_file(file, format!("cannot read: {e}"))),
        };
        let config = Config {
            file: file.to_path_buf(),
            server: over.server.or(settings.server),
            ca_fingerprint: over
                .ca_fingerprint
                .or(settings.ca_fingerprint)
                .map(|f| normalize_fingerprint(&f)),
            token: over
                .token
                .or(settings.token)
                .filter(|t| !t.expose().is_empty()),
            name: over.name.or(settings.name).filter(|n| !n.is_empty()),
            cloud: over.cloud.or(settings.cloud).unwrap_or_default(),
            imds_endpoint: over.imds_endpoint.or(settings.imds_endpoint),
            interval: over
                .interval
                .or(settings.interval)
                .map_or(DEFAULT_INTERVAL, |s| Duration::from_secs(s.0)),
            splay: over
                .splay
                .or(settings.splay)
                .map_or(DEFAULT_SPLAY, |s| Duration::from_secs(s.0)),
            state_dir: over
                .state_dir
                .or(settings.state_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            backup_dir: over
                .backup_dir
                .or(settings.backup_dir)
                .unwrap_or_else(|| PathBuf::from("/var/lib/cm/backup")),
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), LoadError> {
        let bad =
            |field: &str, why: String| LoadError::in_file(&self.file, format!("{field}: {why}"));
        if let Some(url) = &self.server {
            ServerUrl::parse(url).map_err(|e| bad("server", e.to_string()))?;
        }
        if let Some(f) = &self.ca_fingerprint
            && (f.len() != 64 || !f.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(bad(
                "ca_fingerprint",
                "must be the CA certificate's SHA-256 as 64 hex digits (cm-server prints it)"
                    .into(),
            ));
        }
        if self.interval.is_zero() {
            return Err(bad("interval", "must be at least one second".into()));
        }
        Ok(())
    }

    /// The server URL, or why a run that needs one cannot start.
    pub fn server_url(&self) -> Result<&str, String> {
        self.server.as_deref().ok_or_else(|| {
            let missing = if self.file.exists() {
                ""
            } else {
                " (it does not exist)"
            };
            format!(
                "no server: set `server: https://HOST:8443` in {}{missing} or pass --server",
                self.file.display()
            )
        })
    }
}

/// `AA:bb:..` or `aabb..` → lowercase hex without separators.
pub fn normalize_fingerprint(f: &str) -> String {
    let f = f.trim();
    let f = f.strip_prefix("sha256:").unwrap_or(f);
    f.chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Remove the `token:` line from agent.yaml once the node has enrolled:
/// the token is worth nothing to this node any more and something to a thief.
pub fn forget_token(file: &Path) -> std::io::Result<()> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !text.lines().any(|l| l.starts_with("token:")) {
        return Ok(());
    }
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("token:"))
        .map(|l| format!("{l}\n"))
        .collect();
    cm_model::atomic_file::write(file, kept.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str, over: Overrides) -> Result<Config, LoadError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.yaml");
        std::fs::write(&file, yaml).unwrap();
        Config::load(&file, over)
    }

    #[test]
    fn file_values_under_overrides_and_defaults() {
        let c = load(
            "server: https://cm.example:8443\ninterval: 5m\nsplay: 10\ncloud: none\n",
            Overrides {
                splay: Some(Seconds(0)),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.server.as_deref(), Some("https://cm.example:8443"));
        assert_eq!(c.interval, Duration::from_secs(300));
        assert_eq!(c.splay, Duration::ZERO);
        assert_eq!(c.cloud, Cloud::None);
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
    }

    #[test]
    fn unknown_key_and_bad_values_name_the_field() {
        let e = load("sever: https://x\n", Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("sever"), "{e}");
        let e = load("server: http://x:1\n", Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("server: "), "{e}");
        let e = load("ca_fingerprint: abc\n", Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("ca_fingerprint"), "{e}");
        let e = load("interval: soon\n", Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("soon"), "{e}");
    }

    #[test]
    fn missing_file_is_fine() {
        let c = Config::load(Path::new("/nonexistent/agent.yaml"), Overrides::default()).unwrap();
        assert!(c.server.is_none());
        assert!(c.server_url().unwrap_err().contains("--server"));
    }

    #[test]
    fn fingerprints_are_normalized() {
        assert_eq!(normalize_fingerprint("sha256:AB:cd"), "abcd");
    }

    #[test]
    fn forget_token_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.yaml");
        std::fs::write(&file, "server: https://a:1\ntoken: s3cret\ncloud: none\n").unwrap();
        forget_token(&file).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "server: https://a:1\ncloud: none\n"
        );
    }
}
