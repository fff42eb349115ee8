//! `execute` provider: runs its command each time its guards let it.
//! Idempotence comes from `creates`, `only_if` and `not_if`, or from notifications.

use std::path::PathBuf;
use std::time::Duration;

use cm_model::resources::FieldError;
use cm_model::resources::execute::{ExecuteAction, ExecuteSpec};

use super::{Cx, ExecuteError, Outcome, Provider, ProviderError};
use crate::command::Cmd;
use crate::engine::CompiledResource;
use crate::fsutil::{self, OwnerError};

pub struct Execute {
    spec: ExecuteSpec,
}

impl Execute {
    fn command(&self) -> Result<Cmd, OwnerError> {
        let s = &self.spec;
        let mut cmd = Cmd::shell(&s.command).timeout(Duration::from_secs(s.timeout));
        cmd.cwd = s.cwd.as_ref().map(PathBuf::from);
        cmd.env.insert(
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        );
        if let Some(user) = &s.user {
            let u = nix::unistd::User::from_name(user)
                .map_err(|errno| OwnerError::Lookup {
                    kind: "user",
                    name: user.clone(),
                    errno,
                })?
                .ok_or_else(|| OwnerError::NoUser(user.clone()))?;
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

impl Execute {
    fn run(&self, cx: &Cx) -> Result<Outcome, ExecuteError> {
        if cx.why_run {
            return Ok(Outcome::changed("run"));
        }
        let f = self.command()?.run()?;
        match f.code {
            Some(c) if !f.timed_out && self.spec.returns.contains(&c) => {
                Ok(Outcome::changed(format!("ran (exit {c})")))
            }
            _ => Err(f.error().into()),
        }
    }
}

impl Provider for Execute {
    type Spec = ExecuteSpec;

    fn build(spec: ExecuteSpec, _: &CompiledResource) -> Result<Self, FieldError> {
        Ok(Execute { spec })
    }

    fn converge(&mut self, action: ExecuteAction, cx: &mut Cx) -> Result<Outcome, ProviderError> {
        Ok(match action {
            ExecuteAction::Run => self.run(cx)?,
            ExecuteAction::Nothing => Outcome::unchanged(),
        })
    }
}
