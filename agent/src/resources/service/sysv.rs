//! The init-script half of the service provider: the script's presence and
//! its LSB `status`, and the boot links in /etc/rc[2-5].d that update-rc.d
//! sets, for sysvinit (through `service`) and for a node whose PID 1 is no
//! init system (the script run directly).

use std::path::{Path, PathBuf};

use super::{
    Absent, Backend, Enablement, QUERY_TIMEOUT, Running, Service, ServiceError, check, exec,
};

const INIT_D: &str = "/etc/init.d";
/// Where the rc?.d directories are.
const RC_ROOT: &str = "/etc";

/// An init script's `status` by LSB exit codes: 0 running; 1-3 dead or not
/// running; 4 unknown. A script without status prints its usage instead.
pub(super) fn parse_lsb_status(code: Option<i32>, output: &str) -> Running {
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

impl Service {
    pub(super) fn script(&self) -> PathBuf {
        Path::new(INIT_D).join(&self.name)
    }

    pub(super) fn script_missing(&self) -> Option<Absent> {
        let script = self.script();
        (!script.is_file()).then_some(Absent::Script(script))
    }

    pub(super) fn script_running(&self, b: Backend) -> Result<Running, ServiceError> {
        let (f, line) = self.run(b, "status", QUERY_TIMEOUT)?;
        if f.timed_out {
            return Err(ServiceError::Run {
                command: line,
                source: f.error(),
            });
        }
        let output = format!("{}{}", f.stdout, f.stderr);
        Ok(parse_lsb_status(f.code, &output))
    }

    pub(super) fn rc_enablement(&self) -> Enablement {
        match rc_links(Path::new(RC_ROOT), &self.name) {
            (true, _) => Enablement::Enabled,
            _ => Enablement::Disabled,
        }
    }

    /// Set the boot links: update-rc.d `defaults` creates them when there are
    /// none (its `enable` only flips existing ones).
    pub(super) fn set_rc_links(&self, on: bool) -> Result<(), ServiceError> {
        let verb = match (on, rc_links(Path::new(RC_ROOT), &self.name)) {
            (true, (_, false)) => "defaults",
            (true, _) => "enable",
            (false, _) => "disable",
        };
        let (f, line) = exec("update-rc.d", &[&self.name, verb], QUERY_TIMEOUT)?;
        check(&f, &line)?;
        if rc_links(Path::new(RC_ROOT), &self.name).0 != on {
            return Err(ServiceError::RcLinks {
                command: line,
                service: self.name.clone(),
                enabled: on,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
