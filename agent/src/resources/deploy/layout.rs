//! The deploy directory: `releases/<id>/`, `shared/<name>/` and the
//! `current` link, each reached through handles opened by the safe walk.
//!
//! The deploy directory, `releases/` and `shared/` must be root's and
//! writable by root only (the rule the agent trusts links by): a user who
//! could write them could swap a release or `current` under the agent, and
//! under whatever follows `current` as root.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::DeployError;
use crate::safe_path::{self, Dir, Kind, Missing, SafePathError, Stat};

pub const RELEASES: &str = "releases";
pub const SHARED: &str = "shared";
pub const CURRENT: &str = "current";
/// Mode of the directories the agent makes here.
pub const DIR_MODE: u32 = 0o755;
/// Length of a release id made from a sha256 (a git revision is 40).
pub const DIGEST_ID_LEN: usize = 16;

/// The parts of a deploy directory that exist, opened and checked.
#[derive(Debug, Default)]
pub struct Found {
    pub root: Option<Dir>,
    pub releases: Option<Dir>,
    pub shared: Option<Dir>,
}

/// A deploy directory with all its parts.
#[derive(Debug)]
pub struct Layout {
    pub root: Dir,
    pub releases: Dir,
    pub shared: Dir,
}

/// What `current` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    Missing,
    /// A link to `releases/<id>`.
    Release(String),
    /// A link somewhere else.
    Elsewhere(PathBuf),
}

/// A release under `releases/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub id: String,
    /// Nanoseconds since the epoch: when `deploy` last switched to it.
    pub modified: i128,
}

impl Found {
    /// Open what exists of the deploy directory at `path`.
    pub fn look(path: &Path) -> Result<Found, DeployError> {
        let (parent, name) = safe_path::split(path)?;
        let parent = match safe_path::open_dir(parent, Missing::Fail) {
            Ok(dir) => dir,
            Err(SafePathError::Missing { .. }) => return Ok(Found::default()),
            Err(e) => return Err(e.into()),
        };
        let Some(root) = open_checked(&parent, name)? else {
            return Ok(Found::default());
        };
        Ok(Found {
            releases: open_checked(&root, RELEASES.as_ref())?,
            shared: open_checked(&root, SHARED.as_ref())?,
            root: Some(root),
        })
    }

    /// The parts that are missing, as changes: `created /srv/app`, `created releases/`.
    pub fn missing(&self, path: &Path) -> Vec<String> {
        if self.root.is_none() {
            return vec![format!("created {}", path.display())];
        }
        [(&self.releases, RELEASES), (&self.shared, SHARED)]
            .into_iter()
            .filter(|(dir, _)| dir.is_none())
            .map(|(_, name)| format!("created {name}/"))
            .collect()
    }

    /// Make what is missing (root's, [`DIR_MODE`]).
    pub fn ensure(self, path: &Path) -> Result<Layout, DeployError> {
        let root = match self.root {
            Some(root) => root,
            None => {
                let (parent, name) = safe_path::split(path)?;
                let parent = match safe_path::open_dir(parent, Missing::Fail) {
                    Ok(dir) => dir,
                    Err(SafePathError::Missing { .. }) => {
                        return Err(DeployError::MissingParent {
                            path: path.to_path_buf(),
                            parent: parent.to_path_buf(),
                        });
                    }
                    Err(e) => return Err(e.into()),
                };
                make_checked(&parent, name)?
            }
        };
        let releases = match self.releases {
            Some(dir) => dir,
            None => make_checked(&root, RELEASES.as_ref())?,
        };
        let shared = match self.shared {
            Some(dir) => dir,
            None => make_checked(&root, SHARED.as_ref())?,
        };
        Ok(Layout {
            root,
            releases,
            shared,
        })
    }
}

/// Open directory `name` of `parent` if there is one, refusing one others may write.
fn open_checked(parent: &Dir, name: &OsStr) -> Result<Option<Dir>, DeployError> {
    match parent.stat(name)? {
        None => return Ok(None),
        Some(stat) if stat.kind != Kind::Directory => {
            return Err(DeployError::NotADirectory(parent.child_path(name)));
        }
        Some(_) => {}
    }
    let dir = parent.open_subdir(name)?;
    // Checked through the handle: what was opened is what is judged.
    let stat = dir
        .stat(".".as_ref())?
        .ok_or_else(|| SafePathError::Changed {
            path: dir.path().to_path_buf(),
        })?;
    check_trusted(dir.path(), &stat)?;
    Ok(Some(dir))
}

fn make_checked(parent: &Dir, name: &OsStr) -> Result<Dir, DeployError> {
    parent.make_dir(name, DIR_MODE)?;
    open_checked(parent, name)?.ok_or_else(|| {
        SafePathError::Changed {
            path: parent.child_path(name),
        }
        .into()
    })
}

/// Root's (or the agent's own user's), and no one else may write it.
fn check_trusted(path: &Path, stat: &Stat) -> Result<(), DeployError> {
    let owner_ok = stat.uid == 0 || stat.uid == nix::unistd::geteuid().as_raw();
    let others_write = stat.mode & 0o002 != 0 || (stat.mode & 0o020 != 0 && stat.gid != 0);
    if owner_ok && !others_write {
        return Ok(());
    }
    Err(DeployError::Untrusted {
        path: path.to_path_buf(),
        uid: stat.uid,
        mode: stat.mode,
    })
}

/// Is `name` a release id: 16 (a digest's) or 40 (a revision's) lowercase hex digits?
pub fn is_release_id(name: &str) -> bool {
    matches!(name.len(), DIGEST_ID_LEN | 40)
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `releases/<id>`: what `current` points to, relative so the deploy
/// directory may be moved or mounted elsewhere.
pub fn current_target(id: &str) -> PathBuf {
    Path::new(RELEASES).join(id)
}

/// What `current` in the deploy directory `root` is.
pub fn current(root: &Dir) -> Result<Current, DeployError> {
    let name = OsStr::new(CURRENT);
    match root.stat(name)? {
        None => Ok(Current::Missing),
        Some(stat) if stat.kind == Kind::Symlink => {
            let target = root.read_link(name)?;
            let id = target
                .strip_prefix(RELEASES)
                .ok()
                .and_then(Path::to_str)
                .filter(|id| is_release_id(id));
            Ok(match id {
                Some(id) => Current::Release(id.to_string()),
                None => Current::Elsewhere(target),
            })
        }
        Some(_) => Err(DeployError::CurrentNotALink(root.child_path(name))),
    }
}

/// The releases, newest first, and the agent's unfinished work (a release
/// being unpacked, a scratch git repository) left by a run that died.
pub fn releases(dir: &Dir) -> Result<(Vec<Release>, Vec<OsString>), DeployError> {
    let mut found = Vec::new();
    let mut unfinished = Vec::new();
    for name in dir.names()? {
        let Some(text) = name.to_str() else { continue };
        if is_unfinished(text) {
            unfinished.push(name);
            continue;
        }
        if !is_release_id(text) || dir.stat(&name)?.is_none_or(|s| s.kind != Kind::Directory) {
            continue; // not the agent's: never touched
        }
        found.push(Release {
            id: text.to_string(),
            modified: dir.modified(&name)?,
        });
    }
    found.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| a.id.cmp(&b.id)));
    Ok((found, unfinished))
}

/// The name of a release being made: `.<id>.tmp-<random>` (or `.git-` for
/// its scratch repository).
pub fn unfinished_name(id: &str, what: &str) -> OsString {
    OsString::from(format!(".{id}.{what}-{:016x}", fastrand::u64(..)))
}

fn is_unfinished(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    match rest.split_once('.') {
        Some((id, what)) => {
            is_release_id(id) && (what.starts_with("tmp-") || what.starts_with("git-"))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_names_are_ids_and_unfinished_work_is_told_apart() {
        assert!(is_release_id("3f2a9c1d0e4b5a6f"));
        assert!(is_release_id(&"ab".repeat(20)));
        for not in [
            "3F2A9C1D0E4B5A6F",
            "3f2a",
            "shared",
            ".3f2a9c1d0e4b5a6f",
            "",
        ] {
            assert!(!is_release_id(not), "{not}");
        }
        let id = "3f2a9c1d0e4b5a6f";
        for what in ["tmp", "git"] {
            let name = unfinished_name(id, what);
            assert!(is_unfinished(name.to_str().unwrap()), "{name:?}");
        }
        for not in [".keep", id, ".3f2a.tmp-1", ".3f2a9c1d0e4b5a6f.old"] {
            assert!(!is_unfinished(not), "{not}");
        }
    }

    #[test]
    fn current_is_read_as_the_release_it_points_to() {
        let tmp = tempfile::tempdir().unwrap();
        let root = safe_path::open_dir(tmp.path(), Missing::Fail).unwrap();
        assert_eq!(current(&root).unwrap(), Current::Missing);
        let id = "3f2a9c1d0e4b5a6f";
        std::os::unix::fs::symlink(current_target(id), tmp.path().join(CURRENT)).unwrap();
        assert_eq!(current(&root).unwrap(), Current::Release(id.into()));
        std::fs::remove_file(tmp.path().join(CURRENT)).unwrap();
        std::os::unix::fs::symlink("/srv/old", tmp.path().join(CURRENT)).unwrap();
        assert_eq!(
            current(&root).unwrap(),
            Current::Elsewhere("/srv/old".into())
        );
        std::fs::remove_file(tmp.path().join(CURRENT)).unwrap();
        std::fs::create_dir(tmp.path().join(CURRENT)).unwrap();
        assert!(matches!(
            current(&root),
            Err(DeployError::CurrentNotALink(_))
        ));
    }
}
