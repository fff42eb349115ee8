//! What `cm-server backup` and `restore` print: a few lines for people, or
//! one JSON object with stable keys for scripts.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

use super::manifest::BackupManifest;

/// A backup, restore or check, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    /// `backup`, `restore` or `check`.
    pub action: &'static str,
    /// The backup directory.
    pub backup: String,
    /// The data dir restored into (restore only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
    pub cm_version: String,
    /// Unix seconds when the backup was taken.
    pub created_at: i64,
    pub ca_fingerprint: String,
    pub counts: BTreeMap<String, u64>,
    /// Files in the backup and their total size, each verified by SHA-256.
    pub files: usize,
    pub bytes: u64,
}

impl BackupSummary {
    pub fn new(
        action: &'static str,
        backup: &Path,
        data_dir: Option<&Path>,
        manifest: &BackupManifest,
    ) -> BackupSummary {
        BackupSummary {
            action,
            backup: backup.display().to_string(),
            data_dir: data_dir.map(|d| d.display().to_string()),
            cm_version: manifest.cm_version.clone(),
            created_at: manifest.created_at,
            ca_fingerprint: manifest.ca_fingerprint.clone(),
            counts: manifest.counts.clone(),
            files: manifest.files.len(),
            bytes: manifest.total_bytes(),
        }
    }

    /// The lines a person reads.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let first = match (self.action, &self.data_dir) {
            ("backup", _) => format!("backup written to {}", self.backup),
            ("restore", Some(data_dir)) => {
                format!("restored {} into {data_dir}", self.backup)
            }
            _ => format!("{} is a complete, intact backup", self.backup),
        };
        let _ = writeln!(out, "{first}");
        let _ = writeln!(
            out,
            "  taken {} UTC by cm-server {}",
            cm_model::time::utc(self.created_at),
            self.cm_version
        );
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(what, n)| format!("{n} {}", what.replace('_', " ")))
            .collect();
        let _ = writeln!(out, "  holds {}", counts.join(", "));
        let _ = writeln!(
            out,
            "  {} files, {} bytes, every one checked against its sha256",
            self.files, self.bytes
        );
        let _ = writeln!(out, "  CA fingerprint (sha256): {}", self.ca_fingerprint);
        if let Some(data_dir) = &self.data_dir {
            let _ = writeln!(
                out,
                "start the server with --data-dir {data_dir} (as the user it runs as)"
            );
        }
        out
    }
}
