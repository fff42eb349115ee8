//! The run report: what the engine did, resource by resource. The agent prints
//! it (`--format json` prints exactly this) and sends it to the server unchanged.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Success,
    Failed,
}

/// One run of the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub status: RunStatus,
    pub why_run: bool,
    /// Unix seconds when the run started.
    pub started_at: u64,
    pub resources_total: usize,
    pub resources_changed: usize,
    pub resources_failed: usize,
    pub duration_ms: u64,
    /// Why the run failed before or outside any resource (bad cookbook, lock, signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub resources: Vec<ResourceReport>,
}

/// One resource of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceReport {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// The action(s) taken, comma-separated (`enable,start`), or the ones asked for when nothing was needed.
    pub action: String,
    pub changed: bool,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the resource did not run (a guard or `creates`; a false `when` drops it at compile time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// What changed, in a few words each ("content", "mode 0600 -> 0644").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// Unified diff of file content; never set when the content holds a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The content or command holds a secret (or is marked sensitive): nothing of it is shown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

impl RunReport {
    pub fn succeeded(&self) -> bool {
        self.status == RunStatus::Success
    }
}
