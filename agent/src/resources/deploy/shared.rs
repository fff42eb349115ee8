//! Shared directories: `shared/<name>/`, the only part of a deploy the
//! application's user owns, and the link `releases/<id>/<name>` to it in
//! each release (relative: up out of the release, then `shared/<name>`),
//! which replaces whatever the release shipped at that path.
//!
//! Every directory on the way is opened without following a link, so the
//! application's user, who may write inside its shared directories, can
//! never lead the agent anywhere; the agent never looks inside them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::DeployError;
use super::layout::{DIR_MODE, SHARED};
use crate::fsutil::Wanted;
use crate::safe_path::{Dir, Kind, SafePathError, Stat};

/// A shared name split into the directories above it and its own name.
fn split(name: &str) -> (Vec<OsString>, OsString) {
    let mut parts: Vec<OsString> = name.split('/').map(OsString::from).collect();
    let last = parts.pop().unwrap_or_default();
    (parts, last)
}

/// What is at `shared/<name>` now: None when it does not exist.
pub fn look(shared: &Dir, name: &str) -> Result<Option<Stat>, DeployError> {
    let (above, leaf) = split(name);
    let mut opened: Option<Dir> = None;
    for part in &above {
        let here = opened.as_ref().unwrap_or(shared);
        match here.open_subdir(part) {
            Ok(dir) => opened = Some(dir),
            Err(SafePathError::Missing { .. }) => return Ok(None),
            Err(SafePathError::NotADirectory { path }) => {
                return Err(DeployError::NotADirectory(path));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let here = opened.as_ref().unwrap_or(shared);
    match here.stat(&leaf)? {
        Some(stat) if stat.kind != Kind::Directory => {
            Err(DeployError::NotADirectory(here.child_path(&leaf)))
        }
        found => Ok(found),
    }
}

/// What making `shared/<name>` right would change, in words.
pub fn changes(name: &str, now: Option<&Stat>, wanted: &Wanted) -> Vec<String> {
    match now {
        None => vec![format!("created {SHARED}/{name}")],
        Some(stat) => wanted
            .differences(stat)
            .into_iter()
            .map(|d| format!("{SHARED}/{name} {d}"))
            .collect(),
    }
}

/// Make `shared/<name>` a directory with the wanted owner and group (the
/// directories above it are root's).
pub fn ensure(shared: &Dir, name: &str, wanted: &Wanted) -> Result<(), DeployError> {
    let (above, leaf) = split(name);
    let mut opened: Option<Dir> = None;
    for part in &above {
        let here = opened.as_ref().unwrap_or(shared);
        if here.stat(part)?.is_none() {
            here.make_dir(part, DIR_MODE)?;
        }
        opened = Some(here.open_subdir(part)?);
    }
    let here = opened.as_ref().unwrap_or(shared);
    let stat = match here.stat(&leaf)? {
        Some(stat) if stat.kind == Kind::Directory => stat,
        Some(_) => return Err(DeployError::NotADirectory(here.child_path(&leaf))),
        None => {
            here.make_dir(&leaf, DIR_MODE)?;
            here.stat(&leaf)?.ok_or_else(|| SafePathError::Changed {
                path: here.child_path(&leaf),
            })?
        }
    };
    if !wanted.differences(&stat).is_empty() {
        here.set_ownership(&leaf, &stat, wanted.uid, wanted.gid, None)?;
    }
    Ok(())
}

/// The link a release holds for shared `name`: two `..` steps up out of
/// `releases/<id>`, one more for each directory above it in the release,
/// then `shared/<name>`.
pub fn link_target(name: &str) -> PathBuf {
    let depth = name.split('/').count() + 1;
    let mut target = PathBuf::new();
    for _ in 0..depth {
        target.push("..");
    }
    target.join(SHARED).join(name)
}

/// Does `release` hold shared `name` as its link?
pub fn is_linked(release: &Dir, name: &str) -> Result<bool, DeployError> {
    let (above, leaf) = split(name);
    let mut opened: Option<Dir> = None;
    for part in &above {
        let here = opened.as_ref().unwrap_or(release);
        match here.open_subdir(part) {
            Ok(dir) => opened = Some(dir),
            Err(SafePathError::Missing { .. } | SafePathError::NotADirectory { .. }) => {
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let here = opened.as_ref().unwrap_or(release);
    Ok(match here.stat(&leaf)? {
        Some(stat) if stat.kind == Kind::Symlink => here.read_link(&leaf)? == link_target(name),
        _ => false,
    })
}

/// Link shared `name` into `release` (release `id`), replacing what is there.
pub fn link(release: &Dir, id: &str, name: &str) -> Result<(), DeployError> {
    let (above, leaf) = split(name);
    let mut opened: Option<Dir> = None;
    let mut walked = PathBuf::new();
    for part in &above {
        walked.push(part);
        let here = opened.as_ref().unwrap_or(release);
        match here.stat(part)? {
            None => here.make_dir(part, DIR_MODE)?,
            Some(stat) if stat.kind == Kind::Directory => {}
            Some(_) => {
                return Err(DeployError::SharedParent {
                    id: id.to_string(),
                    name: name.to_string(),
                    path: walked,
                });
            }
        }
        opened = Some(here.open_subdir(part)?);
    }
    let here = opened.as_ref().unwrap_or(release);
    // A directory cannot be renamed over; what the release shipped goes.
    if here.stat(&leaf)?.is_some_and(|s| s.kind == Kind::Directory) {
        here.remove_tree(&leaf)?;
    }
    here.symlink(Path::new(&link_target(name)), &leaf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &Path) -> Vec<&str> {
        path.iter().map(|p| p.to_str().unwrap()).collect()
    }

    #[test]
    fn a_shared_link_climbs_out_of_the_release_to_shared() {
        assert_eq!(parts(&link_target("logs")), ["..", "..", "shared", "logs"]);
        assert_eq!(
            parts(&link_target("public/uploads")),
            ["..", "..", "..", "shared", "public", "uploads"]
        );
    }
}
