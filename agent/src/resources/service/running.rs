//! Did the service stay up? A start that returns 0 proves little: an init
//! script (and a systemd unit of `Type=simple`, `exec` or `idle`) returns
//! as soon as the daemon is forked, and a daemon that dies at once on a bad
//! configuration would read "started" on every run. So after `start`,
//! `restart` and `reload` the provider waits [`SETTLE`] where the command
//! could not know, then asks again, and a service that is not running is a
//! failed resource whose error says what its status said.

use std::time::Duration;

use cm_model::resources::service::ServiceAction;

use super::systemd::property;
use super::sysv::parse_lsb_status;
use super::{Backend, Running, Service, ServiceError};

/// How long a freshly started service has to die before it counts as up:
/// part of the provider (a documented second), not of any test.
pub const SETTLE: Duration = Duration::from_secs(1);

/// The `systemctl show` properties the check reads.
const UNIT_STATE: &[&str] = &[
    "Type",
    "ActiveState",
    "SubState",
    "Result",
    "ExecMainStatus",
    "NRestarts",
];

/// A service that was told to run and is not running.
#[derive(Debug, thiserror::Error)]
#[error("{service} is not running after {action} ({state}){}", status_lines(.status))]
pub struct NotRunning {
    pub service: String,
    pub action: String,
    /// The state in a few words: systemd's properties, or the script's exit status.
    pub state: String,
    /// The last lines of `systemctl status` or of the script's `status`.
    pub status: String,
}

fn status_lines(status: &str) -> String {
    if status.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", status.trim())
    }
}

/// Units whose start job returns before the service has shown it can run.
fn returns_at_fork(unit_type: &str) -> bool {
    matches!(unit_type, "simple" | "exec" | "idle" | "")
}

/// Whether a unit is up, from `systemctl show` with [`UNIT_STATE`]: None
/// when it is, else its state in a few words. `restarts_before` is
/// `NRestarts` right after the job, so a unit that died and was restarted
/// by systemd meanwhile does not count as up.
fn unit_down_state(show: &str, restarts_before: &str) -> Option<String> {
    let (active, sub) = (property(show, "ActiveState"), property(show, "SubState"));
    let up = match property(show, "Type") {
        // A oneshot has run to completion by the time `start` returns.
        "oneshot" => property(show, "Result") == "success",
        _ => {
            matches!(active, "active" | "reloading" | "refreshing")
                || (active == "activating" && sub != "auto-restart")
        }
    };
    let restarts = property(show, "NRestarts");
    let restarted = !restarts_before.is_empty() && restarts != restarts_before;
    if up && !restarted {
        return None;
    }
    let mut state = format!(
        "ActiveState={active} SubState={sub} Result={} ExecMainStatus={}",
        property(show, "Result"),
        property(show, "ExecMainStatus")
    );
    if restarted {
        state.push_str(&format!(
            ", restarted by systemd meanwhile (NRestarts {restarts_before} -> {restarts})"
        ));
    }
    Some(state)
}

impl Service {
    /// After `action` (start, restart, reload) succeeded: is the service up?
    /// `before` is what was known before it; an init script without
    /// `status` cannot be asked.
    pub(super) fn verify_running(
        &self,
        b: Backend,
        action: ServiceAction,
        before: Running,
    ) -> Result<(), ServiceError> {
        let not_running = |state: String, status: String| NotRunning {
            service: self.name.clone(),
            action: action.to_string(),
            state,
            status,
        };
        if b == Backend::Systemd {
            let mut show = self.unit_state()?;
            let restarts = property(&show, "NRestarts").to_string();
            if action != ServiceAction::Reload && returns_at_fork(property(&show, "Type")) {
                std::thread::sleep(SETTLE);
                show = self.unit_state()?;
            }
            return match unit_down_state(&show, &restarts) {
                None => Ok(()),
                Some(state) => Err(not_running(state, self.systemd_status()).into()),
            };
        }
        if before == Running::Unknown {
            return Ok(());
        }
        std::thread::sleep(SETTLE);
        let (f, line) = self.run(b, "status", super::QUERY_TIMEOUT)?;
        let output = format!("{}{}", f.stdout, f.stderr);
        if f.timed_out || parse_lsb_status(f.code, &output) != Running::No {
            return Ok(());
        }
        Err(not_running(format!("{line}: {}", f.error()), String::new()).into())
    }

    fn unit_state(&self) -> Result<String, ServiceError> {
        let mut args = vec!["show"];
        for p in UNIT_STATE {
            args.extend(["-p", p]);
        }
        let (f, line) = self.run_systemctl(&args)?;
        super::check(&f, &line)?;
        Ok(f.stdout)
    }

    /// The tail of `systemctl status`: the state and the unit's last log lines.
    fn systemd_status(&self) -> String {
        // It exits 3 for a unit that is not active: the text is what matters.
        self.run_systemctl(&["status", "--no-pager", "--full", "--lines=5"])
            .map(|(f, _)| f.stdout.trim_end().to_string())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMPLE_DIED: &str = "Type=simple\nActiveState=failed\nSubState=failed\n\
        Result=exit-code\nExecMainStatus=3\nNRestarts=0\n";

    #[test]
    fn a_unit_that_died_is_not_up_and_says_how() {
        assert_eq!(
            unit_down_state(SIMPLE_DIED, "0").as_deref(),
            Some("ActiveState=failed SubState=failed Result=exit-code ExecMainStatus=3")
        );
    }

    #[test]
    fn a_unit_systemd_restarts_over_and_over_is_not_up() {
        let looping = "Type=simple\nActiveState=activating\nSubState=auto-restart\n\
            Result=exit-code\nExecMainStatus=1\nNRestarts=4\n";
        assert!(unit_down_state(looping, "3").is_some());
        // Caught while up again between two restarts.
        let between = "Type=simple\nActiveState=active\nSubState=running\n\
            Result=success\nExecMainStatus=0\nNRestarts=5\n";
        let e = unit_down_state(between, "3").unwrap();
        assert!(e.contains("NRestarts 3 -> 5"), "{e}");
    }

    #[test]
    fn running_units_and_finished_oneshots_are_up() {
        let running = "Type=notify\nActiveState=active\nSubState=running\n\
            Result=success\nExecMainStatus=0\nNRestarts=0\n";
        assert_eq!(unit_down_state(running, "0"), None);
        let oneshot = "Type=oneshot\nActiveState=inactive\nSubState=dead\n\
            Result=success\nExecMainStatus=0\nNRestarts=0\n";
        assert_eq!(unit_down_state(oneshot, "0"), None);
        let failed_oneshot = oneshot.replace("Result=success", "Result=exit-code");
        assert!(unit_down_state(&failed_oneshot, "0").is_some());
        // systemd before NRestarts existed.
        assert_eq!(
            unit_down_state("Type=simple\nActiveState=active\nSubState=running\n", ""),
            None
        );
    }

    #[test]
    fn only_units_whose_start_returns_at_fork_are_given_time() {
        for t in ["simple", "exec", "idle", ""] {
            assert!(returns_at_fork(t), "{t}");
        }
        for t in ["forking", "notify", "oneshot", "dbus", "notify-reload"] {
            assert!(!returns_at_fork(t), "{t}");
        }
    }

    #[test]
    fn the_error_names_the_service_the_action_and_its_status() {
        let e = NotRunning {
            service: "cm-dies".into(),
            action: "start".into(),
            state: "/etc/init.d/cm-dies status: exit 3".into(),
            status: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "cm-dies is not running after start (/etc/init.d/cm-dies status: exit 3)"
        );
    }
}
