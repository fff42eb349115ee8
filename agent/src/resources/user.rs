//! `user` provider: a local account, with useradd, usermod and userdel.
//!
//! The account is read through NSS and its supplementary groups from
//! /etc/group. A missing account is created with everything the spec sets;
//! an existing one gets one usermod with only the attributes that differ.
//! Supplementary groups are only added (`usermod -a -G`), never removed.
//! `system` and `manage_home` matter at creation; `manage_home` also makes
//! `remove` delete the home directory (`userdel -r`). A changed `home` is
//! recorded without moving the old directory's content.

use std::collections::BTreeSet;

use cm_model::resources::FieldError;
use cm_model::resources::user::{UserAction, UserSpec};

use super::accounts::{AccountError, GroupEntry, Plan, read_groups};
use super::{Cx, Outcome, Provider, ProviderError};
use crate::engine::CompiledResource;
use crate::fsutil::{self, OwnerError};

pub struct User {
    spec: UserSpec,
}

/// An existing account as the spec can compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    uid: u32,
    gid: u32,
    home: String,
    shell: String,
    comment: String,
    /// Group names the user belongs to, the primary one included.
    groups: BTreeSet<String>,
}

fn current(name: &str, groups: &[GroupEntry]) -> Result<Option<Account>, OwnerError> {
    let u = match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => u,
        Ok(None) => return Ok(None),
        Err(errno) => {
            return Err(OwnerError::Lookup {
                kind: "user",
                name: name.to_string(),
                errno,
            });
        }
    };
    let gid = u.gid.as_raw();
    Ok(Some(Account {
        uid: u.uid.as_raw(),
        gid,
        home: u.dir.display().to_string(),
        shell: u.shell.display().to_string(),
        comment: u.gecos.to_string_lossy().into_owned(),
        groups: groups
            .iter()
            .filter(|g| g.gid == gid || g.members.iter().any(|m| m == name))
            .map(|g| g.name.clone())
            .collect(),
    }))
}

/// useradd's arguments for a new account. Without `group`, the account gets
/// a group of its own name: created (`-U`), or the existing one of that name.
fn useradd_args(spec: &UserSpec, own_group_exists: bool) -> Vec<String> {
    fn opt(a: &mut Vec<String>, flag: &str, v: &str) {
        a.extend([flag.to_string(), v.to_string()]);
    }
    let mut a: Vec<String> = Vec::new();
    if let Some(uid) = spec.uid {
        opt(&mut a, "-u", &uid.to_string());
    }
    match &spec.group {
        Some(g) => opt(&mut a, "-g", g),
        None if own_group_exists => opt(&mut a, "-g", &spec.username),
        None => a.push("-U".into()),
    }
    if !spec.groups.is_empty() {
        opt(&mut a, "-G", &spec.groups.join(","));
    }
    for (flag, v) in [
        ("-d", &spec.home),
        ("-s", &spec.shell),
        ("-c", &spec.comment),
    ] {
        if let Some(v) = v {
            opt(&mut a, flag, v);
        }
    }
    if spec.system {
        a.push("-r".into());
    }
    a.push(if spec.manage_home { "-m" } else { "-M" }.into());
    a.push(spec.username.clone());
    a
}

/// usermod's arguments and the differences in words; no arguments when none differ.
/// `wanted_gid` is the gid of `spec.group`, None when that group does not
/// exist (then usermod is asked and says so, unless this is why-run).
fn usermod_args(
    spec: &UserSpec,
    cur: &Account,
    wanted_gid: Option<u32>,
) -> (Vec<String>, Vec<String>) {
    let (mut args, mut changes) = (Vec::<String>::new(), Vec::new());
    if let Some(uid) = spec.uid
        && uid != cur.uid
    {
        args.extend(["-u".into(), uid.to_string()]);
        changes.push(format!("uid {} -> {uid}", cur.uid));
    }
    if let Some(g) = &spec.group
        && wanted_gid != Some(cur.gid)
    {
        args.extend(["-g".into(), g.clone()]);
        changes.push(format!("primary group gid {} -> {g}", cur.gid));
    }
    let texts = [
        ("-d", "home", &spec.home, &cur.home),
        ("-s", "shell", &spec.shell, &cur.shell),
        ("-c", "comment", &spec.comment, &cur.comment),
    ];
    for (flag, what, want, have) in texts {
        if let Some(want) = want
            && want != have
        {
            args.extend([flag.into(), want.clone()]);
            changes.push(format!("{what} {have:?} -> {want:?}"));
        }
    }
    let mut missing: Vec<String> = Vec::new();
    for g in &spec.groups {
        if !cur.groups.contains(g) && !missing.contains(g) {
            missing.push(g.clone());
        }
    }
    if !missing.is_empty() {
        args.extend(["-a".into(), "-G".into(), missing.join(",")]);
        changes.push(format!("added to groups {}", missing.join(", ")));
    }
    if !args.is_empty() {
        args.push(spec.username.clone());
    }
    (args, changes)
}

impl User {
    fn create(&self) -> Result<Plan, AccountError> {
        let s = &self.spec;
        let groups = read_groups()?;
        let Some(cur) = current(&s.username, &groups)? else {
            let own_group_exists = groups.iter().any(|g| g.name == s.username);
            return Ok(Plan {
                changes: vec!["created".into()],
                calls: vec![("useradd", useradd_args(s, own_group_exists))],
            });
        };
        let wanted_gid = s.group.as_deref().and_then(|g| fsutil::gid_of(g).ok());
        let (args, changes) = usermod_args(s, &cur, wanted_gid);
        let calls = if args.is_empty() {
            Vec::new()
        } else {
            vec![("usermod", args)]
        };
        Ok(Plan { changes, calls })
    }

    fn remove(&self) -> Result<Plan, AccountError> {
        let s = &self.spec;
        if current(&s.username, &[])?.is_none() {
            return Ok(Plan::default());
        }
        let (what, mut args) = if s.manage_home {
            ("removed with its home directory", vec!["-r".to_string()])
        } else {
            ("removed", Vec::new())
        };
        args.push(s.username.clone());
        Ok(Plan {
            changes: vec![what.into()],
            calls: vec![("userdel", args)],
        })
    }
}

impl Provider for User {
    type Spec = UserSpec;

    fn build(spec: UserSpec, _: &CompiledResource) -> Result<Self, FieldError> {
        Ok(User { spec })
    }

    fn converge(&mut self, action: UserAction, cx: &mut Cx) -> Result<Outcome, ProviderError> {
        let plan = match action {
            UserAction::Create => self.create()?,
            UserAction::Remove => self.remove()?,
            UserAction::Nothing => return Ok(Outcome::unchanged()),
        };
        Ok(plan.apply(cx.why_run)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> UserSpec {
        serde_json::from_value(json).unwrap()
    }

    fn account() -> Account {
        Account {
            uid: 1001,
            gid: 1001,
            home: "/home/app".into(),
            shell: "/bin/sh".into(),
            comment: "".into(),
            groups: ["app".to_string(), "adm".to_string()].into(),
        }
    }

    #[test]
    fn useradd_gets_every_attribute_the_spec_sets() {
        let s = spec(
            serde_json::json!({"username": "app", "uid": 1500, "group": "www-data",
            "groups": ["adm", "audio"], "home": "/srv/app", "shell": "/bin/bash",
            "comment": "App -c; rm -rf /", "system": true, "manage_home": true}),
        );
        assert_eq!(
            useradd_args(&s, false),
            [
                "-u",
                "1500",
                "-g",
                "www-data",
                "-G",
                "adm,audio",
                "-d",
                "/srv/app",
                "-s",
                "/bin/bash",
                "-c",
                "App -c; rm -rf /",
                "-r",
                "-m",
                "app"
            ]
        );
    }

    #[test]
    fn useradd_without_group_creates_or_reuses_the_users_own() {
        let s = spec(serde_json::json!({"username": "app"}));
        assert_eq!(useradd_args(&s, false), ["-U", "-M", "app"]);
        assert_eq!(useradd_args(&s, true), ["-g", "app", "-M", "app"]);
    }

    #[test]
    fn usermod_changes_only_what_differs() {
        let s = spec(
            serde_json::json!({"username": "app", "uid": 1001, "group": "app",
            "shell": "/bin/bash", "home": "/home/app", "groups": ["adm", "audio", "app"]}),
        );
        let (args, changes) = usermod_args(&s, &account(), Some(1001));
        assert_eq!(args, ["-s", "/bin/bash", "-a", "-G", "audio", "app"]);
        assert_eq!(
            changes,
            [
                "shell \"/bin/sh\" -> \"/bin/bash\"",
                "added to groups audio"
            ]
        );
    }

    #[test]
    fn usermod_has_nothing_to_do_when_in_step() {
        let s = spec(
            serde_json::json!({"username": "app", "uid": 1001, "group": "app",
            "shell": "/bin/sh", "comment": "", "groups": ["adm"]}),
        );
        assert_eq!(usermod_args(&s, &account(), Some(1001)), (vec![], vec![]));
    }

    #[test]
    fn usermod_changes_uid_and_primary_group_including_a_missing_one() {
        let s = spec(serde_json::json!({"username": "app", "uid": 2000, "group": "staff"}));
        let (args, changes) = usermod_args(&s, &account(), None);
        assert_eq!(args, ["-u", "2000", "-g", "staff", "app"]);
        assert_eq!(
            changes,
            ["uid 1001 -> 2000", "primary group gid 1001 -> staff"]
        );
    }
}
