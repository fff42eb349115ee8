//! `service` provider: start, stop, restart, reload, enable and disable a
//! system service through what runs services on this node (decisions.md, "How
//! the init system is detected"): systemctl when systemd is PID 1, `service`
//! and update-rc.d under sysvinit, and when PID 1 is neither (a container) the
//! init script run directly, with update-rc.d for the boot links; the change
//! text then says so, since no init reads those links here.
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

use std::path::{Path, PathBuf};
use std::time::Duration;

use cm_model::resources::service::{ServiceProvider, ServiceSpec};
use cm_model::resources::{FieldError, Spec};

use super::{Cx, Init, Outcome, Provider, ProviderType, spec_of};
use crate::command::{Cmd, Finished};
use crate::engine::CompiledResource;

mod running;

pub use running::{NotRunning, SETTLE};

pub const PROVIDER: ProviderType = ProviderType {
    name: ServiceSpec::TYPE,
    build,
};

/// Starting or stopping waits for the result, but not forever.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(90);
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
const INIT_D: &str = "/etc/init.d";
/// Where the rc?.d directories are.
const RC_ROOT: &str = "/etc";
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Change notes when PID 1 is neither systemd nor init.
const RUN_DIRECT: &str = "init script run directly: PID 1 is no init system";
const LINKS_ONLY: &str = "rc links only: PID 1 is no init system to read them";

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

/// The value of `key` in the output of `systemctl show -p KEY...`, or "".
fn property<'a>(text: &'a str, key: &str) -> &'a str {
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
fn parse_is_enabled(stdout: &str) -> Result<Enablement, String> {
    let answer = stdout.lines().map(str::trim).rfind(|l| !l.is_empty());
    match answer.unwrap_or_default() {
        "enabled" | "enabled-runtime" | "alias" => Ok(Enablement::Enabled),
        "disabled" | "linked" | "linked-runtime" => Ok(Enablement::Disabled),
        "masked" | "masked-runtime" => Ok(Enablement::Masked),
        s @ ("static" | "indirect" | "generated" | "transient") => Ok(Enablement::Fixed(s.into())),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// An init script's `status` by LSB exit codes: 0 running; 1-3 dead or not
/// running; 4 unknown. A script without status prints its usage instead.
fn parse_lsb_status(code: Option<i32>, output: &str) -> Running {
    match code {
        Some(0) => Running::Yes,
        Some(1..=3) if !output.to_ascii_lowercase().contains("usage:") => Running::No,
        _ => Running::Unknown,
    }
}

/// `S` or `K` when `file` is an rc link (`S01name`) of service `name`.
fn link_kind(file: &str, name: &str) -> Option<char> {
    let kind = file.chars().next().filter(|c| matches!(c, 'S' | 'K'))?;
    let digits = file.get(1..3)?;
    (digits.bytes().all(|b| b.is_ascii_digit()) && file.get(3..)? == name).then_some(kind)
}

/// (has a start link, has any link) in `etc`/rc2.d to rc5.d: enabled means a
/// start link in a multi-user runlevel.
fn rc_links(etc: &Path, name: &str) -> (bool, bool) {
    let (mut start, mut any) = (false, false);
    for level in 2..=5 {
        let Ok(entries) = std::fs::read_dir(etc.join(format!("rc{level}.d"))) else {
            continue;
        };
        for e in entries.flatten() {
            if let Some(kind) = link_kind(&e.file_name().to_string_lossy(), name) {
                any = true;
                start |= kind == 'S';
            }
        }
    }
    (start, any)
}

struct Service {
    name: String,
    provider: ServiceProvider,
}

fn build(r: &CompiledResource) -> Result<Box<dyn Provider>, FieldError> {
    let spec: ServiceSpec = spec_of(r)?;
    Ok(Box::new(Service {
        name: spec.service_name,
        provider: spec.provider,
    }))
}

/// Run a command: (how it ended, its command line for messages).
fn exec(program: &str, args: &[&str], timeout: Duration) -> Result<(Finished, String), String> {
    let line = format!("{program} {}", args.join(" "));
    let f = Cmd::new(program, args)
        .env("PATH", PATH)
        .timeout(timeout)
        .run()
        .map_err(|e| format!("{line}: {e}"))?;
    Ok((f, line))
}

fn check(f: &Finished, line: &str) -> Result<(), String> {
    if f.success() {
        Ok(())
    } else {
        Err(format!("{line} failed ({})", f.error()))
    }
}

impl Service {
    fn script(&self) -> PathBuf {
        Path::new(INIT_D).join(&self.name)
    }

    /// Run `verb` on the service: (how it ended, the command line for messages).
    fn run(&self, b: Backend, verb: &str, timeout: Duration) -> Result<(Finished, String), String> {
        let script = self.script().to_string_lossy().into_owned();
        match b {
            Backend::Systemd => exec("systemctl", &[verb, &self.name], timeout),
            Backend::Service => exec("service", &[&self.name, verb], timeout),
            Backend::Script => exec(&script, &[verb], timeout),
        }
    }

    fn control(&self, b: Backend, verb: &str) -> Result<(), String> {
        let (f, line) = self.run(b, verb, CONTROL_TIMEOUT)?;
        check(&f, &line)
    }

    /// Why the service does not exist here, or None when it does.
    fn missing(&self, b: Backend) -> Result<Option<String>, String> {
        if b != Backend::Systemd {
            let script = self.script();
            return Ok((!script.is_file()).then(|| format!("no init script {}", script.display())));
        }
        let (f, line) = self.run_systemctl(&["show", "-p", "LoadState"])?;
        check(&f, &line)?;
        Ok((parse_show(&f.stdout).0 == "not-found")
            .then(|| format!("no systemd unit {}", self.name)))
    }

    fn running(&self, b: Backend) -> Result<Running, String> {
        if b != Backend::Systemd {
            let (f, line) = self.run(b, "status", QUERY_TIMEOUT)?;
            if f.timed_out {
                return Err(format!("{line}: {}", f.error()));
            }
            let output = format!("{}{}", f.stdout, f.stderr);
            return Ok(parse_lsb_status(f.code, &output));
        }
        let (f, line) = self.run_systemctl(&["show", "-p", "ActiveState"])?;
        check(&f, &line)?;
        Ok(systemd_running(&parse_show(&f.stdout).1))
    }

    fn run_systemctl(&self, args: &[&str]) -> Result<(Finished, String), String> {
        let mut all = args.to_vec();
        all.push(&self.name);
        exec("systemctl", &all, QUERY_TIMEOUT)
    }

    fn enablement(&self, b: Backend) -> Result<Enablement, String> {
        if b == Backend::Systemd {
            // is-enabled exits non-zero for every state but enabled: read its answer.
            let (f, line) = self.run_systemctl(&["is-enabled"])?;
            return parse_is_enabled(&f.stdout).map_err(|e| format!("{line}: {e} ({})", f.error()));
        }
        Ok(match rc_links(Path::new(RC_ROOT), &self.name) {
            (true, _) => Enablement::Enabled,
            _ => Enablement::Disabled,
        })
    }

    /// Set the boot links: update-rc.d `defaults` creates them when there are
    /// none (its `enable` only flips existing ones).
    fn set_enabled(&self, b: Backend, on: bool) -> Result<(), String> {
        if b == Backend::Systemd {
            return self.control(b, if on { "enable" } else { "disable" });
        }
        let verb = match (on, rc_links(Path::new(RC_ROOT), &self.name)) {
            (true, (_, false)) => "defaults",
            (true, _) => "enable",
            (false, _) => "disable",
        };
        let (f, line) = exec("update-rc.d", &[&self.name, verb], QUERY_TIMEOUT)?;
        check(&f, &line)?;
        if rc_links(Path::new(RC_ROOT), &self.name).0 != on {
            return Err(format!(
                "{line} left /etc/rc[2-5].d {} a start link for {} (see its Default-Start header)",
                if on { "without" } else { "with" },
                self.name
            ));
        }
        Ok(())
    }

    fn act(&self, b: Backend, verb: &str, what: String, cx: &Cx) -> Result<Outcome, String> {
        if !cx.why_run {
            self.control(b, verb)?;
        }
        Ok(Outcome::changed(what))
    }

    /// [`Service::act`], then check the service stayed up after `action`.
    fn act_and_verify(
        &self,
        b: Backend,
        (action, verb): (&str, &str),
        what: String,
        before: Running,
        cx: &Cx,
    ) -> Result<Outcome, String> {
        let outcome = self.act(b, verb, what, cx)?;
        if !cx.why_run {
            self.verify_running(b, action, before)?;
        }
        Ok(outcome)
    }

    fn switch(&self, b: Backend, on: bool, cx: &Cx) -> Result<Outcome, String> {
        match (self.enablement(b)?, on) {
            (Enablement::Enabled, true)
            | (Enablement::Disabled | Enablement::Masked, false)
            | (Enablement::Fixed(_), _) => return Ok(Outcome::unchanged()),
            (Enablement::Masked, true) => {
                return Err(format!("{} is masked: unmask it to enable it", self.name));
            }
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
}

impl Provider for Service {
    fn converge(&mut self, action: &str, cx: &mut Cx) -> Result<Outcome, String> {
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
        if action == "nothing" {
            return Ok(Outcome::unchanged());
        }
        if let Some(why) = self.missing(b)? {
            // In why-run, the package that ships it may not be installed yet.
            return if cx.why_run {
                Ok(Outcome::changed(format!(
                    "{action} ({why} yet: an earlier resource may install it)"
                )))
            } else {
                Err(format!(
                    "{why}: is the package that ships {} installed?",
                    self.name
                ))
            };
        }
        match action {
            "start" | "stop" => {
                let r = self.running(b)?;
                let want = if action == "start" {
                    Running::Yes
                } else {
                    Running::No
                };
                if r == want {
                    return Ok(Outcome::unchanged());
                }
                if action == "stop" {
                    return self.act(b, action, with_note("stopped", r), cx);
                }
                self.act_and_verify(b, (action, action), with_note("started", r), r, cx)
            }
            "restart" => {
                let r = self.running(b)?;
                let what = with_note("restarted", r);
                self.act_and_verify(b, (action, action), what, r, cx)
            }
            "reload" => {
                let r = self.running(b)?;
                if r == Running::No {
                    return Ok(Outcome::unchanged());
                }
                let verb = match b {
                    Backend::Systemd => "try-reload-or-restart",
                    _ => "force-reload",
                };
                self.act_and_verify(b, (action, verb), with_note("reloaded", r), r, cx)
            }
            "enable" => self.switch(b, true, cx),
            "disable" => self.switch(b, false, cx),
            _ => Ok(Outcome::unchanged()),
        }
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
        assert_eq!(parse_is_enabled("enabled\n"), Ok(Enablement::Enabled));
        assert_eq!(
            parse_is_enabled("memcached.service is not a native service\nExecuting: x\ndisabled\n"),
            Ok(Enablement::Disabled)
        );
        assert_eq!(parse_is_enabled("masked-runtime"), Ok(Enablement::Masked));
        assert_eq!(
            parse_is_enabled("static\n"),
            Ok(Enablement::Fixed("static".into()))
        );
        assert!(parse_is_enabled("").is_err());
    }

    #[test]
    fn reads_lsb_status_exit_codes() {
        assert_eq!(parse_lsb_status(Some(0), "is running"), Running::Yes);
        assert_eq!(parse_lsb_status(Some(3), "is not running"), Running::No);
        assert_eq!(parse_lsb_status(Some(1), "pid file exists"), Running::No);
        assert_eq!(
            parse_lsb_status(Some(1), "Usage: /etc/init.d/x {start|stop}"),
            Running::Unknown
        );
        assert_eq!(parse_lsb_status(Some(4), "unclear"), Running::Unknown);
        assert_eq!(parse_lsb_status(None, ""), Running::Unknown);
    }

    #[test]
    fn finds_start_links_in_multi_user_runlevels_only() {
        assert_eq!(link_kind("S01memcached", "memcached"), Some('S'));
        assert_eq!(link_kind("K20memcached", "memcached"), Some('K'));
        assert_eq!(link_kind("S01memcached-extra", "memcached"), None);
        assert_eq!(link_kind("Sx1memcached", "memcached"), None);
        assert_eq!(link_kind("README", "memcached"), None);
        let etc = tempfile::tempdir().unwrap();
        let link = |dir: &str, file: &str| {
            std::fs::create_dir_all(etc.path().join(dir)).unwrap();
            std::os::unix::fs::symlink("../init.d/x", etc.path().join(dir).join(file)).unwrap();
        };
        assert_eq!(rc_links(etc.path(), "x"), (false, false));
        link("rc1.d", "S01x");
        link("rc0.d", "K01x");
        assert_eq!(rc_links(etc.path(), "x"), (false, false));
        link("rc3.d", "K01x");
        assert_eq!(rc_links(etc.path(), "x"), (false, true));
        link("rc5.d", "S02x");
        assert_eq!(rc_links(etc.path(), "x"), (true, true));
    }
}
