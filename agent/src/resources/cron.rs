//! `cron` provider: one job per file in /etc/cron.d, written like any managed file.

use std::path::PathBuf;

use cm_model::resources::cron::{CronAction, CronSpec};
use cm_model::resources::{FieldError, Ownership};

use super::managed_file::ManagedFile;
use super::{Cx, Outcome, Provider, ProviderError};
use crate::engine::CompiledResource;

/// Where cron reads system jobs from.
pub const CRON_DIR: &str = "/etc/cron.d";

pub struct Cron {
    file: ManagedFile,
    content: String,
}

/// The cron.d file for one job.
pub fn render(s: &CronSpec) -> String {
    let mut out = format!(
        "# Managed by cm: cron[{}]. Local changes are overwritten.\n",
        s.cron_name
    );
    for (k, v) in &s.environment {
        out.push_str(&format!("{k}={v}\n"));
    }
    out.push_str(&format!(
        "{} {} {} {} {} {} {}\n",
        s.minute, s.hour, s.day, s.month, s.weekday, s.user, s.command
    ));
    out
}

impl Provider for Cron {
    type Spec = CronSpec;

    fn build(spec: CronSpec, _: &CompiledResource) -> Result<Self, FieldError> {
        let ownership = Ownership {
            owner: Some("root".into()),
            group: Some("root".into()),
            mode: Some(0o644),
        };
        Ok(Cron {
            file: ManagedFile {
                path: PathBuf::from(CRON_DIR).join(&spec.cron_name),
                ownership,
                backup: 0,
                diff: None,
            },
            content: render(&spec),
        })
    }

    fn converge(&mut self, action: CronAction, cx: &mut Cx) -> Result<Outcome, ProviderError> {
        Ok(match action {
            CronAction::Create => self.file.create(Some(self.content.as_bytes()), false, cx)?,
            CronAction::Delete => self.file.delete(cx)?,
            CronAction::Nothing => Outcome::unchanged(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_environment_then_the_job() {
        let spec: CronSpec = serde_json::from_value(serde_json::json!({
            "cron_name": "s3sync-logs", "minute": "*/5", "command": "/usr/local/bin/sync",
            "environment": {"MAILTO": "ops@example.com"}
        }))
        .unwrap();
        assert_eq!(
            render(&spec),
            "# Managed by cm: cron[s3sync-logs]. Local changes are overwritten.\nMAILTO=ops@example.com\n*/5 * * * * root /usr/local/bin/sync\n"
        );
    }
}
