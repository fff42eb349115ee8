//! `cron` provider: one job per file in /etc/cron.d, written like any managed file.

use std::path::PathBuf;

use cm_model::resources::cron::CronSpec;
use cm_model::resources::{FieldError, Ownership, Spec};

use super::managed_file::ManagedFile;
use super::{Cx, Outcome, Provider, ProviderType, spec_of};
use crate::engine::CompiledResource;

pub const PROVIDER: ProviderType = ProviderType {
    name: CronSpec::TYPE,
    build,
};

/// Where cron reads system jobs from.
pub const CRON_DIR: &str = "/etc/cron.d";

struct Cron {
    file: ManagedFile,
    content: String,
}

fn build(r: &CompiledResource) -> Result<Box<dyn Provider>, FieldError> {
    let spec: CronSpec = spec_of(r)?;
    let ownership = Ownership {
        owner: Some("root".into()),
        group: Some("root".into()),
        mode: Some(0o644),
    };
    Ok(Box::new(Cron {
        file: ManagedFile {
            path: PathBuf::from(CRON_DIR).join(&spec.cron_name),
            ownership,
            backup: 0,
            diff: None,
        },
        content: render(&spec),
    }))
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
    fn converge(&mut self, action: &str, cx: &mut Cx) -> Result<Outcome, String> {
        match action {
            "create" => Ok(self.file.create(Some(self.content.as_bytes()), false, cx)?),
            "delete" => Ok(self.file.delete(cx)?),
            _ => Ok(Outcome::unchanged()),
        }
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
