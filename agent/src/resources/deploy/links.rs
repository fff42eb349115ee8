//! Where a symbolic link of a release leads, resolved the way the kernel
//! would: through the release's own links, one component at a time. A link
//! whose target climbs above the release, or is absolute, leads out of it;
//! so does a chain of links that each look harmless (`d/b -> ..` then
//! `e -> d/b/..`), which a check of each target's words alone would pass.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

use crate::safe_path::{Dir, Kind, SafePathError};

/// As many links as the kernel follows in one lookup (`MAXSYMLINKS`).
const MAX_HOPS: usize = 40;

/// Where a link leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leads {
    /// Somewhere inside the release (or to a name not there yet, inside).
    Inside,
    /// Out of the release.
    Out,
    /// Around in circles, past [`MAX_HOPS`] links.
    Loop,
}

/// One step of a path: down into a name, or up.
enum Step {
    Down(OsString),
    Up,
}

/// The steps of a relative path; None for an absolute one.
fn steps(path: &Path) -> Option<Vec<Step>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(Step::Down(name.to_os_string())),
            Component::ParentDir => out.push(Step::Up),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Where a link in directory `at` (names from the release root) with
/// `target` leads, in the release opened as `root`.
pub fn leads(root: &Dir, at: &[OsString], target: &Path) -> Result<Leads, SafePathError> {
    let Some(first) = steps(target) else {
        return Ok(Leads::Out);
    };
    let mut pos: Vec<OsString> = at.to_vec();
    let mut todo: VecDeque<Step> = first.into();
    let mut hops = 0;
    while let Some(step) = todo.pop_front() {
        let name = match step {
            Step::Up if pos.pop().is_some() => continue,
            Step::Up => return Ok(Leads::Out),
            Step::Down(name) => name,
        };
        let Some(next) = link_at(root, &pos, &name)? else {
            pos.push(name);
            continue;
        };
        hops += 1;
        if hops > MAX_HOPS {
            return Ok(Leads::Loop);
        }
        // The link's target takes its place, read from the link's directory.
        let Some(expanded) = steps(&next) else {
            return Ok(Leads::Out);
        };
        for s in expanded.into_iter().rev() {
            todo.push_front(s);
        }
    }
    Ok(Leads::Inside)
}

/// The target of `name` in the directory at `pos`, if it is a symbolic link;
/// None for anything else, or when a directory on the way is not one (the
/// rest of the path is then only words, and read as such).
fn link_at(root: &Dir, pos: &[OsString], name: &OsStr) -> Result<Option<PathBuf>, SafePathError> {
    let mut opened: Option<Dir> = None;
    for part in pos {
        let here = opened.as_ref().unwrap_or(root);
        match here.open_subdir(part) {
            Ok(d) => opened = Some(d),
            Err(SafePathError::Missing { .. } | SafePathError::NotADirectory { .. }) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
    let here = opened.as_ref().unwrap_or(root);
    match here.stat(name)? {
        Some(stat) if stat.kind == Kind::Symlink => Ok(Some(here.read_link(name)?)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::safe_path::{self, Missing};

    fn at(parts: &[&str]) -> Vec<OsString> {
        parts.iter().map(OsString::from).collect()
    }

    #[test]
    fn links_are_followed_through_the_release_to_see_where_they_lead() {
        let tmp = tempfile::tempdir().unwrap();
        let rel = tmp.path().join("release");
        std::fs::create_dir_all(rel.join("d/e")).unwrap();
        symlink("..", rel.join("d/up")).unwrap();
        symlink("up", rel.join("d/e/alias")).unwrap();
        symlink("loop-b", rel.join("loop-a")).unwrap();
        symlink("loop-a", rel.join("loop-b")).unwrap();
        let root = safe_path::open_dir(&rel, Missing::Fail).unwrap();
        let to = |dir: &[&str], target: &str| leads(&root, &at(dir), Path::new(target)).unwrap();

        assert_eq!(to(&[], "d/e"), Leads::Inside);
        assert_eq!(to(&["d"], "../d/e/../e"), Leads::Inside);
        assert_eq!(to(&[], "not/there/yet"), Leads::Inside);
        assert_eq!(to(&["d"], ".."), Leads::Inside, "d/up itself");
        assert_eq!(to(&[], "/etc"), Leads::Out);
        assert_eq!(to(&[], ".."), Leads::Out);
        assert_eq!(to(&["d", "e"], "../../../x"), Leads::Out);
        // Each word stays inside; through d/up (the release root), `..` does not.
        assert_eq!(to(&[], "d/up/.."), Leads::Out);
        assert_eq!(to(&["d"], "e/alias/.."), Leads::Inside, "d/e/up is no link");
        assert_eq!(to(&[], "loop-a"), Leads::Loop);
    }
}
