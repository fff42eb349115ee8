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

/// The five fields of a cron.d line, in order.
const FIELDS: [&str; 5] = ["minute", "hour", "day", "month", "weekday"];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One field as Debian's cron (Vixie cron) reads it: `*`, numbers and, for
/// months and weekdays, their three-letter names, in lists, ranges and
/// steps. The tokens are checked here (croner also knows Quartz's `L`, `W`,
/// `#` and `?`, which cron would not read), then croner checks ranges and
/// steps with the other four fields `*`, so the error names the field.
fn check_field(index: usize, value: &str) -> Result<(), FieldError> {
    let field = FIELDS[index];
    let bad =
        |why: String| FieldError::new(field, format!("{value:?} is not a cron {field}: {why}"));
    let names: &[&str] = match field {
        "month" => &MONTHS,
        "weekday" => &WEEKDAYS,
        _ => &[],
    };
    for token in value.split([',', '-', '/']) {
        let ok = token == "*"
            || (!token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()))
            || names.contains(&token.to_ascii_lowercase().as_str());
        if !ok {
            return Err(bad(format!(
                "{token:?} is not `*`, a number{}",
                if names.is_empty() { "" } else { " or a name" }
            )));
        }
    }
    let mut pattern = ["*"; 5];
    pattern[index] = value;
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(&pattern.join(" "))
        .map(|_| ())
        .map_err(|e| bad(e.to_string()))
}

fn star() -> String {
    "*".into()
}

fn root() -> String {
    "root".into()
}

crate::actions! {
    /// What a `cron` job may be told to do.
    pub enum CronAction {
        Create = "create",
        Delete = "delete",
        Nothing = "nothing",
    }
}

impl Spec for CronSpec {
    const TYPE: &'static str = "cron";
    type Action = CronAction;
    const DEFAULT_ACTIONS: &'static [CronAction] = &[CronAction::Create];
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
        let fields = [
            &self.minute,
            &self.hour,
            &self.day,
            &self.month,
            &self.weekday,
        ];
        for (i, v) in fields.into_iter().enumerate() {
            if !is_templated(v) {
                check_field(i, v)?;
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

#[cfg(test)]
mod tests {
    use super::check_field;

    #[test]
    fn fields_cron_reads_are_accepted() {
        for (i, v) in [
            (0, "*/15"),
            (0, "0,30"),
            (1, "2-5"),
            (1, "*/2"),
            (2, "1-31/7"),
            (3, "jan-mar"),
            (3, "12"),
            (4, "mon-fri"),
            (4, "0,7"),
        ] {
            check_field(i, v).unwrap_or_else(|e| panic!("{v}: {}", e.message));
        }
    }

    #[test]
    fn fields_cron_would_ignore_are_refused_naming_the_field() {
        for (i, v, field) in [
            (0, "99", "minute"),
            (0, "*/0", "minute"),
            (1, "24", "hour"),
            (2, "0", "day"),
            (2, "L", "day"),
            (2, "15W", "day"),
            (3, "13", "month"),
            (3, "mon", "month"),
            (4, "1#2", "weekday"),
            (4, "?", "weekday"),
            (0, "@daily", "minute"),
            (0, "", "minute"),
            (1, "5-2x", "hour"),
        ] {
            let e = check_field(i, v).expect_err(v);
            assert_eq!(e.field, field, "{v}: {}", e.message);
            assert!(e.message.contains(field), "{v}: {}", e.message);
        }
    }
}
