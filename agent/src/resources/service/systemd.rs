//! The systemd half of the service provider: a unit asked about with
//! `systemctl show` and `systemctl is-enabled`, and driven with systemctl
//! (through [`Service::run`]).

use super::{Absent, Enablement, QUERY_TIMEOUT, Running, Service, ServiceError, check, exec};
use crate::command::Finished;

/// The value of `key` in the output of `systemctl show -p KEY...`, or "".
pub(super) fn property<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_default()
        .trim()
}

/// LoadState and ActiveState from `systemctl show -p LoadState -p ActiveState`.
fn parse_show(text: &str) -> (String, String) {
    let get = |key: &str| property(text, key).to_string();
    (get("LoadState"), get("ActiveState"))
}

fn systemd_running(active_state: &str) -> Running {
    match active_state {
        "active" | "reloading" | "activating" | "refreshing" => Running::Yes,
        _ => Running::No,
    }
}

/// The answer of `systemctl is-enabled`: its last line (a sysv script's
/// answer comes after systemd-sysv-install's chatter).
fn is_enabled_answer(stdout: &str) -> &str {
    stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default()
}

/// What an answer of `systemctl is-enabled` means; None for one not known here.
fn enablement_of(answer: &str) -> Option<Enablement> {
    match answer {
        "enabled" | "enabled-runtime" | "alias" => Some(Enablement::Enabled),
        "disabled" | "linked" | "linked-runtime" => Some(Enablement::Disabled),
        "masked" | "masked-runtime" => Some(Enablement::Masked),
        s @ ("static" | "indirect" | "generated" | "transient") => {
            Some(Enablement::Fixed(s.into()))
        }
        _ => None,
    }
}

impl Service {
    /// `systemctl ARGS... NAME`: (how it ended, its command line).
    pub(super) fn run_systemctl(&self, args: &[&str]) -> Result<(Finished, String), ServiceError> {
        let mut all = args.to_vec();
        all.push(&self.name);
        exec("systemctl", &all, QUERY_TIMEOUT)
    }

    pub(super) fn unit_missing(&self) -> Result<Option<Absent>, ServiceError> {
        let (f, line) = self.run_systemctl(&["show", "-p", "LoadState"])?;
        check(&f, &line)?;
        Ok((parse_show(&f.stdout).0 == "not-found").then(|| Absent::Unit(self.name.clone())))
    }

    pub(super) fn unit_running(&self) -> Result<Running, ServiceError> {
        let (f, line) = self.run_systemctl(&["show", "-p", "ActiveState"])?;
        check(&f, &line)?;
        Ok(systemd_running(&parse_show(&f.stdout).1))
    }

    pub(super) fn unit_enablement(&self) -> Result<Enablement, ServiceError> {
        // is-enabled exits non-zero for every state but enabled: read its answer.
        let (f, line) = self.run_systemctl(&["is-enabled"])?;
        let answer = is_enabled_answer(&f.stdout);
        enablement_of(answer).ok_or_else(|| ServiceError::UnexpectedAnswer {
            command: line,
            answer: answer.to_string(),
            source: f.error(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_is_enabled(stdout: &str) -> Option<Enablement> {
        enablement_of(is_enabled_answer(stdout))
    }

    #[test]
    fn reads_systemctl_show_and_is_enabled() {
        let (load, active) = parse_show("LoadState=loaded\nActiveState=reloading\n");
        assert_eq!(
            (load.as_str(), systemd_running(&active)),
            ("loaded", Running::Yes)
        );
        let (load, active) = parse_show("ActiveState=inactive\nLoadState=not-found\n");
        assert_eq!(
            (load.as_str(), systemd_running(&active)),
            ("not-found", Running::No)
        );
        assert_eq!(parse_is_enabled("enabled\n"), Some(Enablement::Enabled));
        assert_eq!(
            parse_is_enabled("memcached.service is not a native service\nExecuting: x\ndisabled\n"),
            Some(Enablement::Disabled)
        );
        assert_eq!(parse_is_enabled("masked-runtime"), Some(Enablement::Masked));
        assert_eq!(
            parse_is_enabled("static\n"),
            Some(Enablement::Fixed("static".into()))
        );
        assert!(parse_is_enabled("").is_none());
    }
}
