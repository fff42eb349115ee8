//! File work shared by the file-like providers and the agent's own state:
//! owners and modes, atomic writes through [`crate::safe_path`], private
//! backups ([`backup`]), and what a report may show of a content change
//! ([`diff`]). Where a path may lead is `safe_path`'s business, not this one's.

mod backup;
mod diff;

use std::path::{Path, PathBuf};

use cm_model::resources::Ownership;

use crate::safe_path::{self, FileOwnership, Missing, SafePathError, Stat};

pub use backup::backup;
pub use diff::{Shown, describe_change, others_may_read};

/// An owner or group that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    #[error("no user {0:?}")]
    NoUser(String),
    #[error("no group {0:?}")]
    NoGroup(String),
    #[error("looking up {kind} {name:?}: {errno}")]
    Lookup {
        kind: &'static str,
        name: String,
        errno: nix::errno::Errno,
    },
}

/// A managed file could not be read, written or removed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Path(#[from] SafePathError),
    #[error(transparent)]
    Owner(#[from] OwnerError),
    #[error("{path}: parent directory {missing} does not exist (declare a directory first)")]
    MissingParent { path: PathBuf, missing: PathBuf },
    #[error("backing up {path}: {source}")]
    Backup {
        path: PathBuf,
        source: SafePathError,
    },
}

/// Resolve a user name (or numeric uid) through NSS.
pub fn uid_of(user: &str) -> Result<u32, OwnerError> {
    if let Ok(n) = user.parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(OwnerError::NoUser(user.to_string())),
        Err(errno) => Err(OwnerError::Lookup {
            kind: "user",
            name: user.to_string(),
            errno,
        }),
    }
}

/// Resolve a group name (or numeric gid) through NSS.
pub fn gid_of(group: &str) -> Result<u32, OwnerError> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(OwnerError::NoGroup(group.to_string())),
        Err(errno) => Err(OwnerError::Lookup {
            kind: "group",
            name: group.to_string(),
            errno,
        }),
    }
}

/// Owner, group and mode as numbers, only for what the resource sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
}

impl Wanted {
    pub fn resolve(o: &Ownership) -> Result<Wanted, OwnerError> {
        Ok(Wanted {
            uid: o.owner.as_deref().map(uid_of).transpose()?,
            gid: o.group.as_deref().map(gid_of).transpose()?,
            mode: o.mode,
        })
    }

    /// What differs from `stat`, in words for the log ("mode 0600 -> 0644").
    pub fn differences(&self, stat: &Stat) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(u) = self.uid
            && u != stat.uid
        {
            out.push(format!("owner {} -> {u}", stat.uid));
        }
        if let Some(g) = self.gid
            && g != stat.gid
        {
            out.push(format!("group {} -> {g}", stat.gid));
        }
        if let Some(m) = self.mode
            && m != stat.mode
        {
            out.push(format!("mode {:04o} -> {m:04o}", stat.mode));
        }
        out
    }

    /// Owner and mode for new content at a path: what the resource sets, else
    /// what the file there has, else the agent's user and 0644.
    pub fn for_new_content(&self, existing: Option<&Stat>) -> FileOwnership {
        FileOwnership {
            uid: self.uid.or(existing.map(|s| s.uid)),
            gid: self.gid.or(existing.map(|s| s.gid)),
            mode: self.mode.or(existing.map(|s| s.mode)).unwrap_or(0o644),
        }
    }
}

/// Write `content` to `path` atomically through the safe walk (see
/// [`crate::safe_path`]): a temp file beside it, owner and mode set, fsync,
/// rename, directory fsync. A failure at any step leaves the old file as it
/// was. New files get mode 0644 unless `wanted` says otherwise; an existing
/// regular file keeps its owner and mode; a link there is replaced, not followed.
pub fn write_atomic(path: &Path, content: &[u8], wanted: &Wanted) -> Result<(), SafePathError> {
    let path = std::path::absolute(path).map_err(|_| SafePathError::NotAbsolute {
        path: path.to_path_buf(),
    })?;
    let (dir, name) = safe_path::open_parent(&path, Missing::Fail)?;
    let existing = dir.stat(&name)?.filter(|s| s.kind == safe_path::Kind::File);
    dir.write_file(&name, content, wanted.for_new_content(existing.as_ref()))
}

/// [`write_atomic`] for the agent's own secrets (keys, plans): mode 0600.
/// An `std::io` error for its callers, the [`SafePathError`] inside.
pub fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let wanted = Wanted {
        mode: Some(0o600),
        ..Wanted::default()
    };
    Ok(write_atomic(path, content, &wanted)?)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn atomic_write_sets_mode_and_keeps_it_on_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(
            &p,
            b"one",
            &Wanted {
                mode: Some(0o600),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
        write_atomic(&p, b"two", &Wanted::default()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
    }

    #[test]
    fn failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "old").unwrap();
        let missing_dir = dir.path().join("nope/f");
        let e = write_atomic(&missing_dir, b"new", &Wanted::default()).unwrap_err();
        assert!(matches!(e, SafePathError::Missing { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temp file left behind");
    }

    #[test]
    fn private_write_replaces_a_planted_link_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "untouched").unwrap();
        let p = dir.path().join("plan.pb");
        std::os::unix::fs::symlink(&outside, &p).unwrap();
        write_private(&p, b"plan").unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
        assert_eq!(std::fs::read(&p).unwrap(), b"plan");
        assert_eq!(
            std::fs::symlink_metadata(&p).unwrap().mode() & 0o7777,
            0o600
        );
    }
}
