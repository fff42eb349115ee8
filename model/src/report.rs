//! The run report: what the engine did, resource by resource. The agent prints
//! it (`--format json` prints exactly this) and sends it to the server unchanged.
//!
//! `status` is `success`, `failed`, or `warning`: every resource converged,
//! but from the last good plan, because the server has no valid plan for
//! the node (`plan_error` says why). Keys are stable; new ones are only
//! ever added (docs/agent.md).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Success,
    Failed,
    /// Converged, but not what the server wants now: see `plan_error`.
    Warning,
}

impl RunStatus {
    /// The status as JSON and the server's run list spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
            RunStatus::Warning => "warning",
        }
    }
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
    /// Why the server has no valid plan for this node (a pin no version
    /// meets, a missing cookbook or role); the run used the last good plan,
    /// if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_error: Option<String>,
    /// What the run did that its author should know and that is no failure:
    /// a cookbook version read as it was pushed, before cm refused YAML
    /// values read two ways (docs/cookbooks.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
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

    /// Whether the run failed (a warning did not: everything converged).
    pub fn failed(&self) -> bool {
        self.status == RunStatus::Failed
    }

    /// Record that the server has no valid plan for the node: a run that
    /// converged is a warning from now on, a failed one stays failed.
    pub fn set_plan_error(&mut self, reason: String) {
        if self.status == RunStatus::Success {
            self.status = RunStatus::Warning;
        }
        self.plan_error = Some(reason);
    }
}

/// Why a run did not succeed, in one line: the run's own error, else its
/// first failed resource and its error (and how many more failed), else
/// the plan error a warning converged around; `None` for a success. Read
/// from the report as JSON, so reports of older and newer agents read too.
pub fn why(report: &serde_json::Value) -> Option<String> {
    let text = |v: &serde_json::Value| v.as_str().map(first_line);
    if let Some(e) = text(&report["error"]) {
        return Some(e);
    }
    let failed: Vec<&serde_json::Value> = report["resources"]
        .as_array()
        .map(|r| r.iter().filter(|r| r["error"].is_string()).collect())
        .unwrap_or_default();
    if let Some(first) = failed.first() {
        let more = match failed.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return Some(first_line(&format!(
            "{}[{}]: {}{more}",
            first["type"].as_str().unwrap_or("?"),
            first["name"].as_str().unwrap_or("?"),
            text(&first["error"]).unwrap_or_default()
        )));
    }
    text(&report["plan_error"]).map(|e| format!("plan error: {e}"))
}

/// The first line of `text`, at most 160 characters, control characters
/// (a node's colour codes, tabs) made visible: a table cell.
pub fn first_line(text: &str) -> String {
    let line: String = text
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    match line.char_indices().nth(160) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> RunReport {
        RunReport {
            status: RunStatus::Success,
            why_run: false,
            started_at: 1,
            resources_total: 0,
            resources_changed: 0,
            resources_failed: 0,
            duration_ms: 0,
            error: None,
            plan_error: None,
            notices: Vec::new(),
            resources: Vec::new(),
        }
    }

    #[test]
    fn a_plan_error_turns_success_into_warning_and_keeps_failed() {
        let mut ok = report();
        ok.set_plan_error("pin".into());
        assert_eq!(ok.status, RunStatus::Warning);
        assert!(!ok.succeeded() && !ok.failed());
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(
            (json["status"].as_str(), json["plan_error"].as_str()),
            (Some("warning"), Some("pin"))
        );
        let mut failed = RunReport {
            status: RunStatus::Failed,
            ..report()
        };
        failed.set_plan_error("pin".into());
        assert_eq!(failed.status, RunStatus::Failed);
    }

    #[test]
    fn a_report_without_a_plan_error_keeps_its_json() {
        let json = serde_json::to_value(report()).unwrap();
        assert!(json.get("plan_error").is_none(), "{json}");
        assert!(json.get("notices").is_none(), "{json}");
        let old: RunReport = serde_json::from_str(
            r#"{"status":"success","why_run":false,"started_at":1,"resources_total":0,
               "resources_changed":0,"resources_failed":0,"duration_ms":0,"resources":[]}"#,
        )
        .unwrap();
        assert_eq!(old, report());
    }
}
