//! `execute`: a command, run when its guards say so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CookbookRefs, FieldError, Spec};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteSpec {
    /// Run by `/bin/sh -c`; build it from data with `{{shell_quote ...}}`.
    pub command: String,
    pub cwd: Option<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub user: Option<String>,
    pub group: Option<String>,
    /// Seconds before the command is killed.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Exit codes that count as success.
    #[serde(default = "default_returns")]
    pub returns: Vec<i32>,
}

fn default_timeout() -> u64 {
    600
}

fn default_returns() -> Vec<i32> {
    vec![0]
}

crate::actions! {
    /// What an `execute` may be told to do.
    pub enum ExecuteAction {
        Run = "run",
        Nothing = "nothing",
    }
}

impl Spec for ExecuteSpec {
    const TYPE: &'static str = "execute";
    type Action = ExecuteAction;
    const DEFAULT_ACTIONS: &'static [ExecuteAction] = &[ExecuteAction::Run];
    const NAME_PROPERTY: &'static str = "command";

    fn validate(&self, _refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        if self.command.trim().is_empty() {
            return Err(FieldError::new("command", "command is empty"));
        }
        if self.timeout == 0 {
            return Err(FieldError::new(
                "timeout",
                "timeout must be at least 1 second",
            ));
        }
        if self.returns.is_empty() {
            return Err(FieldError::new("returns", "list at least one exit code"));
        }
        if let Some(cwd) = &self.cwd {
            super::check_absolute("cwd", cwd)?;
        }
        for k in self.environment.keys() {
            if k.is_empty() || k.contains(['=', '\0']) {
                return Err(FieldError::new(
                    "environment",
                    format!("{k:?} is not a variable name"),
                ));
            }
        }
        Ok(())
    }
}
