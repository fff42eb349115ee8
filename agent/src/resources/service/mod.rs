//! `service` provider: start, stop, restart, reload, enable and disable a
//! system service through what runs services on this node (decisions.md, "How
//! the init system is detected"): systemctl when systemd is PID 1
//! ([`systemd`]), `service` and update-rc.d under sysvinit, and when PID 1 is
//! neither (a container) the init script run directly, with update-rc.d for
//! the boot links ([`sysv`]); the change text then says so, since no init
//! reads those links here.
//!
//! `start` and `stop` act only on a difference. `restart` always acts: it is
//! normally a notification. `reload` acts only on a running service (a
//! stopped one reads its configuration when it starts) and never fails for
//! want of a reload: systemd gets `try-reload-or-restart` and an init script
//! `force-reload`, which LSB requires of every script and defines as reload
//! when supported, restart otherwise (memcached's script, for one, has no
//! reload). Units that are static, generated or transient have no boot
//! switch, so enable and disable leave them alone. A service that does not
//! exist is an error, except in why-run, where the package that ships it may
//! be installed by an earlier resource of the same run. After a start,
//! restart or reload the service must be running ([`running`]): one that
//! dies at once is a failed resource, not "started" on every run.

use std::path::PathBuf;
use std::time::Duration;

use cm_model::resources::FieldError;
use cm_model::resources::service::{ServiceAction, ServiceProvider, ServiceSpec};

use super::{CommandFailed, Cx, Init, Outcome, Provider, ProviderError};
use crate::command::{Cmd, CommandError, Finished};
use crate::engine::CompiledResource;

mod running;
mod systemd;
mod sysv;

pub use running::{NotRunning, SETTLE};

/// Starting or stopping waits for the result, but not forever.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(90);
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Change notes when PID 1 is neither systemd nor init.
const RUN_DIRECT: &str = "init script run directly: PID 1 is no init system";
const LINKS_ONLY: &str = "rc links only: PID 1 is no init system to read them";

/// Why a service could not be asked about or brought to its state.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A command could not be started, waited for, or ran past its timeout.
    #[error("{command}: {source}")]
    Run {
        command: String,
        source: CommandError,
    },
    #[error(transparent)]
    Failed(#[from] CommandFailed),
    #[error("{command}: unexpected answer {answer:?} ({source})")]
    UnexpectedAnswer {
        command: String,
        answer: String,
        source: CommandError,
    },
    #[error(
        "{command} left /etc/rc[2-5].d {} a start link for {service} (see its Default-Start header)",
        if *.enabled { "without" } else { "with" }
    )]
    RcLinks {
        command: String,
        service: String,
        /// What was asked: enabled (a start link wanted) or not.
        enabled: bool,
    },
    #[error("{0} is masked: unmask it to enable it")]
    Masked(String),
    #[error("{absent}: is the package that ships {service} installed?")]
    Missing { absent: Absent, service: String },
    #[error(transparent)]
    NotRunning(#[from] NotRunning),
}

impl ServiceError {
    pub(super) fn without_output(&self) -> String {
        match self {
            ServiceError::Run { command, source } => format!("{command}: {}", source.status()),
            ServiceError::Failed(e) => e.without_output(),
            ServiceError::UnexpectedAnswer {
                command,
                answer,
                source,
            } => format!(
                "{command}: unexpected answer {answer:?} ({})",
                source.status()
            ),
            ServiceError::NotRunning(e) => {
                format!("{} is not running after {}", e.service, e.action)
            }
            other => other.to_string(),
        }
    }
}

/// What is missing of a service that does not exist here.
#[derive(Debug, thiserror::Error)]
pub enum Absent {
    #[error("no init script {0}")]
    Script(PathBuf),
    #[error("no systemd unit {0}")]
    Unit(String),
}

/// How commands reach the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Systemd,
    /// `service NAME VERB`, under sysvinit.
    Service,
    /// `/etc/init.d/NAME VERB`, when PID 1 is no init system.
    Script,
}

/// `sysvinit` forced under systemd still goes through `service`, which hands
/// native units to systemctl rather than racing systemd with a script.
fn backend(p: ServiceProvider, init: Init) -> Backend {
    match (p, init) {
        (ServiceProvider::Systemd, _) | (ServiceProvider::Auto, Init::Systemd) => Backend::Systemd,
        (_, Init::Direct) => Backend::Script,
        _ => Backend::Service,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Running {
    Yes,
    No,
    /// The init script has no status command.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Enablement {
    Enabled,
    Disabled,
    Masked,
    /// static, indirect, generated, transient: started by something else.
    Fixed(String),
}

pub struct Service {
    name: String,
    provider: ServiceProvider,
}

/// Run a command: (how it ended, its command line for messages).
fn exec(
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<(Finished, String), ServiceError> {
    let line = format!("{program} {}", args.join(" "));
    match Cmd::new(program, args)
        .env("PATH", PATH)
        .timeout(timeout)
        .run()
    {
        Ok(f) => Ok((f, line)),
        Err(source) => Err(ServiceError::Run {
            command: line,
            source,
        }),
    }
}

fn check(f: &Finished, line: &str) -> Result<(), ServiceError> {
    if f.success() {
        Ok(())
    } else {
        Err(CommandFailed::new(line, f.error()).into())
    }
}

impl Service {
    /// Run `verb` on the service: (how it ended, the command line for messages).
    fn run(
        &self,
        b: Backend,
        verb: &str,
        timeout: Duration,
    ) -> Result<(Finished, String), ServiceError> {
        match b {
            Backend::Systemd => exec("systemctl", &[verb, &self.name], timeout),
            Backend::Service => exec("service", &[&self.name, verb], timeout),
            Backend::Script => exec(&self.script().to_string_lossy(), &[verb], timeout),
        }
    }

    fn control(&self, b: Backend, verb: &str) -> Result<(), ServiceError> {
        let (f, line) = self.run(b, verb, CONTROL_TIMEOUT)?;
        check(&f, &line)
    }

    /// What is missing when the service does not exist here, or None when it does.
    fn missing(&self, b: Backend) -> Result<Option<Absent>, ServiceError> {
        match b {
            Backend::Systemd => self.unit_missing(),
            Backend::Service | Backend::Script => Ok(self.script_missing()),
        }
    }

    fn running(&self, b: Backend) -> Result<Running, ServiceError> {
        match b {
            Backend::Systemd => self.unit_running(),
            Backend::Service | Backend::Script => self.script_running(b),
        }
    }

    fn enablement(&self, b: Backend) -> Result<Enablement, ServiceError> {
        match b {
            Backend::Systemd => self.unit_enablement(),
            Backend::Service | Backend::Script => Ok(self.rc_enablement()),
        }
    }

    fn set_enabled(&self, b: Backend, on: bool) -> Result<(), ServiceError> {
        match b {
            Backend::Systemd => self.control(b, if on { "enable" } else { "disable" }),
            Backend::Service | Backend::Script => self.set_rc_links(on),
        }
    }

    fn act(&self, b: Backend, verb: &str, what: String, cx: &Cx) -> Result<Outcome, ServiceError> {
        if !cx.why_run {
            self.control(b, verb)?;
        }
        Ok(Outcome::changed(what))
    }

    /// [`Service::act`], then check the service stayed up after `action`.
    fn act_and_verify(
        &self,
        b: Backend,
        (action, verb): (ServiceAction, &str),
        what: String,
        before: Running,
        cx: &Cx,
    ) -> Result<Outcome, ServiceError> {
        let outcome = self.act(b, verb, what, cx)?;
        if !cx.why_run {
            self.verify_running(b, action, before)?;
        }
        Ok(outcome)
    }

    fn switch(&self, b: Backend, on: bool, cx: &Cx) -> Result<Outcome, ServiceError> {
        match (self.enablement(b)?, on) {
            (Enablement::Enabled, true)
            | (Enablement::Disabled | Enablement::Masked, false)
            | (Enablement::Fixed(_), _) => return Ok(Outcome::unchanged()),
            (Enablement::Masked, true) => return Err(ServiceError::Masked(self.name.clone())),
            _ => {}
        }
        if !cx.why_run {
            self.set_enabled(b, on)?;
        }
        let what = if on { "enabled" } else { "disabled" };
        Ok(Outcome::changed(if b == Backend::Script {
            format!("{what} ({LINKS_ONLY})")
        } else {
            what.to_string()
        }))
    }

    fn converge_action(&self, action: ServiceAction, cx: &Cx) -> Result<Outcome, ServiceError> {
        let b = backend(self.provider, cx.init);
        let with_note = |what: &str, r: Running| {
            let mut s = what.to_string();
            if r == Running::Unknown {
                s.push_str(" (its init script reports no status)");
            }
            if b == Backend::Script {
                s.push_str(&format!(" ({RUN_DIRECT})"));
            }
            s
        };
        if action == ServiceAction::Nothing {
            return Ok(Outcome::unchanged());
        }
        if let Some(absent) = self.missing(b)? {
            // In why-run, the package that ships it may not be installed yet.
            return if cx.why_run {
                Ok(Outcome::changed(format!(
                    "{action} ({absent} yet: an earlier resource may install it)"
                )))
            } else {
                Err(ServiceError::Missing {
                    absent,
                    service: self.name.clone(),
                })
            };
        }
        let verb = action.to_string();
        match action {
            ServiceAction::Start | ServiceAction::Stop => {
                let r = self.running(b)?;
                let want = if action == ServiceAction::Start {
                    Running::Yes
                } else {
                    Running::No
                };
                if r == want {
                    return Ok(Outcome::unchanged());
                }
                if action == ServiceAction::Stop {
                    return self.act(b, &verb, with_note("stopped", r), cx);
                }
                self.act_and_verify(b, (action, &verb), with_note("started", r), r, cx)
            }
            ServiceAction::Restart => {
                let r = self.running(b)?;
                let what = with_note("restarted", r);
                self.act_and_verify(b, (action, &verb), what, r, cx)
            }
            ServiceAction::Reload => {
                let r = self.running(b)?;
                if r == Running::No {
                    return Ok(Outcome::unchanged());
                }
                let verb = match b {
                    Backend::Systemd => "try-reload-or-restart",
                    Backend::Service | Backend::Script => "force-reload",
                };
                self.act_and_verify(b, (action, verb), with_note("reloaded", r), r, cx)
            }
            ServiceAction::Enable => self.switch(b, true, cx),
            ServiceAction::Disable => self.switch(b, false, cx),
            ServiceAction::Nothing => Ok(Outcome::unchanged()),
        }
    }
}

impl Provider for Service {
    type Spec = ServiceSpec;

    fn build(spec: ServiceSpec, _: &CompiledResource) -> Result<Self, FieldError> {
        Ok(Service {
            name: spec.service_name,
            provider: spec.provider,
        })
    }

    fn converge(&mut self, action: ServiceAction, cx: &mut Cx) -> Result<Outcome, ProviderError> {
        Ok(self.converge_action(action, cx)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_follows_pid_1_unless_forced() {
        use ServiceProvider::*;
        assert_eq!(backend(Auto, Init::Systemd), Backend::Systemd);
        assert_eq!(backend(Auto, Init::Sysvinit), Backend::Service);
        assert_eq!(backend(Auto, Init::Direct), Backend::Script);
        assert_eq!(backend(Sysvinit, Init::Direct), Backend::Script);
        assert_eq!(backend(Sysvinit, Init::Systemd), Backend::Service);
        assert_eq!(backend(Systemd, Init::Direct), Backend::Systemd);
    }
}
