//! `execute` provider: runs its command each time its guards let it.
//! Idempotence comes from `creates`, `only_if` and `not_if`, or from notifications.

use std::path::PathBuf;
use std::time::Duration;

use cm_model::resources::execute::ExecuteSpec;
use cm_model::resources::{FieldError, Spec};

use super::{Cx, Outcome, Provider, ProviderType, spec_of};
use crate::command::Cmd;
use crate::engine::CompiledResource;
use crate::fsutil;

pub const PROVIDER: ProviderType = ProviderType {
    name: ExecuteSpec::TYPE,
    build,
};

struct Execute {
    spec: ExecuteSpec,
}

fn build(r: &CompiledResource) -> Result<Box<dyn Provider>, FieldError> {
    Ok(Box::new(Execute { spec: spec_of(r)? }))
}

impl Execute {
    fn command(&self) -> Result<Cmd, String> {
        let s = &self.spec;
        let mut cmd = Cmd::shell(&s.command).timeout(Duration::from_secs(s.timeout));
        cmd.cwd = s.cwd.as_ref().map(PathBuf::from);
        cmd.env.insert(
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        );
        if let Some(user) = &s.user {
            let u = nix::unistd::User::from_name(user)
                .map_err(|e| format!("looking up user {user:?}: {e}"))?
                .ok_or_else(|| format!("no user {user:?}"))?;
            cmd.uid = Some(u.uid.as_raw());
            cmd.gid = Some(u.gid.as_raw());
            cmd.env.insert("HOME".into(), u.dir.display().to_string());
            cmd.env.insert("USER".into(), u.name.clone());
            cmd.env.insert("LOGNAME".into(), u.name);
        }
        if let Some(g) = &s.group {
            cmd.gid = Some(fsutil::gid_of(g)?);
        }
        cmd.env.extend(s.environment.clone());
        Ok(cmd)
    }
}

impl Provider for Execute {
    fn converge(&mut self, action: &str, cx: &mut Cx) -> Result<Outcome, String> {
        if action != "run" {
            return Ok(Outcome::unchanged());
        }
        if cx.why_run {
            return Ok(Outcome::changed("run"));
        }
        let cmd = self.command()?;
        let f = cmd.run().map_err(|e| e.to_string())?;
        match f.code {
            Some(c) if !f.timed_out && self.spec.returns.contains(&c) => {
                Ok(Outcome::changed(format!("ran (exit {c})")))
            }
            _ => Err(f.error().to_string()),
        }
    }
}
