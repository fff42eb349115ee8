//! `cron`: a job in `/etc/cron.d/<name>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CookbookRefs, FieldError, Spec, is_templated};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronSpec {
    /// File name under /etc/cron.d: cron ignores names with anything but letters, digits, `_` and `-`.
    pub cron_name: String,
    #[serde(default = "star")]
    pub minute: String,
    #[serde(default = "star")]
    pub hour: String,
    #[serde(default = "star")]
    pub day: String,
    #[serde(default = "star")]
    pub month: String,
    #[serde(default = "star")]
    pub weekday: String,
    #[serde(default = "root")]
    pub user: String,
    pub command: String,
    /// Variables set at the top of the file (MAILTO, PATH, ...).
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

fn star() -> String {
    "*".into()
}

fn root() -> String {
    "root".into()
}

impl Spec for CronSpec {
    const TYPE: &'static str = "cron";
    const ACTIONS: &'static [&'static str] = &["create", "delete", "nothing"];
    const DEFAULT_ACTIONS: &'static [&'static str] = &["create"];
    const NAME_PROPERTY: &'static str = "cron_name";

    fn validate(&self, _refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        let n = &self.cron_name;
        if !is_templated(n)
            && (n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        {
            return Err(FieldError::new(
                "cron_name",
                format!(
                    "{n:?}: cron.d ignores files whose names hold anything but letters, digits, '_' and '-'"
                ),
            ));
        }
        for (field, v) in [
            ("minute", &self.minute),
            ("hour", &self.hour),
            ("day", &self.day),
            ("month", &self.month),
            ("weekday", &self.weekday),
        ] {
            let ok = is_templated(v)
                || (!v.is_empty()
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ",-*/".contains(c)));
            if !ok {
                return Err(FieldError::new(field, format!("{v:?} is not a cron field")));
            }
        }
        super::user::check_account_name("user", &self.user)?;
        if self.command.contains('\n') || self.command.trim().is_empty() {
            return Err(FieldError::new(
                "command",
                "a cron command is one non-empty line",
            ));
        }
        for (k, v) in &self.environment {
            if k.is_empty() || k.contains(['=', ' ', '\n']) || v.contains('\n') {
                return Err(FieldError::new(
                    "environment",
                    format!("{k:?} is not a variable for cron"),
                ));
            }
        }
        Ok(())
    }
}
