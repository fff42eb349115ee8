//! The part of file, template, remote_file, cron and apt_repository that is
//! the same: put bytes at a path with an owner and mode, atomically, keeping
//! a backup, with a diff the report may show.
//!
//! The parent directory is opened once by the safe walk ([`crate::safe_path`])
//! and everything after (reading the old content, the backup, the write)
//! goes through that handle. A symbolic link at the path is replaced by the
//! file and reported; what it points to is never read.

use std::ffi::OsString;
use std::path::PathBuf;

use cm_model::resources::Ownership;

use super::{Cx, Outcome};
use crate::fsutil::{self, FileError, Shown, Wanted, others_may_read};
use crate::safe_path::{self, Dir, Existing, Missing, SafePathError};

/// A file the run manages.
#[derive(Debug, Clone)]
pub struct ManagedFile {
    pub path: PathBuf,
    pub ownership: Ownership,
    /// Previous versions to keep.
    pub backup: u32,
    /// The resource's `diff`: show content always, never, or (None) only when
    /// others may read the file.
    pub diff: Option<bool>,
}

/// The managed path's parent, opened once, and what is at the path now.
#[derive(Debug)]
pub struct Current {
    /// None when the parent directory does not exist (yet).
    dir: Option<Dir>,
    name: OsString,
    pub existing: Existing,
}

impl ManagedFile {
    /// Resolve owner and group now: a user created earlier in this run must be seen.
    /// In why-run that user may not exist yet, which is a change, not an error.
    fn wanted(&self, cx: &Cx, changes: &mut Vec<String>) -> Result<Wanted, FileError> {
        match Wanted::resolve(&self.ownership) {
            Ok(w) => Ok(w),
            Err(e) if cx.why_run => {
                changes.push(format!("{e} yet (an earlier resource may create it)"));
                Ok(Wanted::default())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Open the parent by the safe walk and look at the path without following it.
    pub fn look(&self) -> Result<Current, FileError> {
        let (parent, name) = safe_path::split(&self.path)?;
        let name = name.to_os_string();
        match safe_path::open_dir(parent, Missing::Fail) {
            Ok(dir) => {
                let existing = dir.read_file(&name)?;
                Ok(Current {
                    dir: Some(dir),
                    name,
                    existing,
                })
            }
            Err(SafePathError::Missing { .. }) => Ok(Current {
                dir: None,
                name,
                existing: Existing::Missing,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Make the file hold `content` (or just exist, when None) with its ownership.
    /// `if_missing` leaves an existing file's content alone.
    pub fn create(
        &self,
        content: Option<&[u8]>,
        if_missing: bool,
        cx: &Cx,
    ) -> Result<Outcome, FileError> {
        self.create_in(self.look()?, content, if_missing, cx)
    }

    /// [`ManagedFile::create`] on what [`ManagedFile::look`] found.
    pub fn create_in(
        &self,
        current: Current,
        content: Option<&[u8]>,
        if_missing: bool,
        cx: &Cx,
    ) -> Result<Outcome, FileError> {
        self.converge(current, content, if_missing, cx, &mut || {})
    }

    /// `before_write` runs between the check and the write (tests swap paths there).
    fn converge(
        &self,
        current: Current,
        content: Option<&[u8]>,
        if_missing: bool,
        cx: &Cx,
        before_write: &mut dyn FnMut(),
    ) -> Result<Outcome, FileError> {
        if current.dir.is_none() && !cx.why_run {
            return Err(self.missing_parent());
        }
        let mut out = Outcome::unchanged();
        let wanted = self.wanted(cx, &mut out.changes)?;
        let (old_stat, old_content) = match &current.existing {
            Existing::File { stat, content } => (Some(stat), Some(content.as_slice())),
            _ => (None, None),
        };
        let write = match (&current.existing, content) {
            (Existing::Missing, c) => {
                out.changes.push("created".into());
                Some(c.unwrap_or_default())
            }
            // Never followed, never kept: the file takes the link's place.
            (Existing::Symlink { target, .. }, c) => {
                out.changes.push(format!(
                    "replaced symbolic link (was -> {})",
                    target.display()
                ));
                Some(c.unwrap_or_default())
            }
            (Existing::File { .. }, _) if if_missing => None,
            (Existing::File { content: old, .. }, Some(new)) if old.as_slice() != new => {
                out.changes.push("content".into());
                Some(new)
            }
            (Existing::File { .. }, _) => None,
        };
        if let (Some(new), Some(_)) = (write, content) {
            out.diff = Some(fsutil::describe_change(
                &self.path,
                old_content,
                new,
                match self.shown(&wanted, old_stat.map(|s| s.mode)) {
                    Shown::Lines if !cx.full_diff => Shown::Head,
                    shown => shown,
                },
            ));
        }
        match old_stat {
            Some(stat) => out.changes.extend(wanted.differences(stat)),
            None => out
                .changes
                .extend(wanted.mode.map(|m| format!("mode {m:04o}"))),
        }
        if cx.why_run || !out.is_changed() {
            return Ok(out);
        }
        let Some(dir) = &current.dir else {
            return Err(self.missing_parent());
        };
        match (write, &current.existing) {
            (Some(bytes), _) => {
                if let Some(old) = old_content {
                    fsutil::backup(&self.path, old, &cx.backup_dir, self.backup).map_err(
                        |source| FileError::Backup {
                            path: self.path.clone(),
                            source,
                        },
                    )?;
                }
                before_write();
                dir.write_file(&current.name, bytes, wanted.for_new_content(old_stat))?;
            }
            (None, Existing::File { stat, .. }) => {
                dir.set_ownership(&current.name, stat, wanted.uid, wanted.gid, wanted.mode)?
            }
            (None, _) => {}
        }
        Ok(out)
    }

    /// Lines, unless the resource says otherwise or others may not read the
    /// file before or after (a 0600 key is shown by size and digest).
    fn shown(&self, wanted: &Wanted, old_mode: Option<u32>) -> Shown {
        let new_mode = wanted.mode.or(old_mode).unwrap_or(0o644);
        let public = others_may_read(new_mode) && old_mode.is_none_or(others_may_read);
        match self.diff {
            Some(true) => Shown::Lines,
            Some(false) => Shown::Digest,
            None if public => Shown::Lines,
            None => Shown::Digest,
        }
    }

    fn missing_parent(&self) -> FileError {
        FileError::MissingParent {
            path: self.path.clone(),
            missing: self.path.parent().unwrap_or(&self.path).to_path_buf(),
        }
    }

    /// Remove the file (keeping a backup), or a link at its place (the link only).
    pub fn delete(&self, cx: &Cx) -> Result<Outcome, FileError> {
        let current = self.look()?;
        let (Some(dir), change) = (&current.dir, &current.existing) else {
            return Ok(Outcome::unchanged());
        };
        let out = match change {
            Existing::Missing => return Ok(Outcome::unchanged()),
            Existing::Symlink { target, .. } => Outcome::changed(format!(
                "deleted symbolic link (was -> {})",
                target.display()
            )),
            Existing::File { stat, content } => {
                if !cx.why_run {
                    fsutil::backup(&self.path, content, &cx.backup_dir, self.backup).map_err(
                        |source| FileError::Backup {
                            path: self.path.clone(),
                            source,
                        },
                    )?;
                }
                Outcome::changed(format!("deleted ({} bytes)", stat.size))
            }
        };
        if !cx.why_run {
            dir.remove_file(&current.name)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn file(path: &Path) -> ManagedFile {
        ManagedFile {
            path: path.to_path_buf(),
            ownership: Ownership::default(),
            backup: 1,
            diff: None,
        }
    }

    #[test]
    fn a_directory_swapped_for_a_link_between_check_and_write_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("etc/app")).unwrap();
        std::fs::write(root.join("etc/app/app.conf"), "old\n").unwrap();
        std::fs::create_dir(root.join("elsewhere")).unwrap();
        let f = file(&root.join("etc/app/app.conf"));
        let cx = Cx::new(false, root.join("backup"));
        let current = f.look().unwrap();
        let mut swap = || {
            std::fs::rename(root.join("etc/app"), root.join("etc/moved")).unwrap();
            std::os::unix::fs::symlink(root.join("elsewhere"), root.join("etc/app")).unwrap();
        };
        let out = f
            .converge(current, Some(b"new\n"), false, &cx, &mut swap)
            .unwrap();
        assert_eq!(out.changes, ["content"]);
        assert_eq!(
            std::fs::read_to_string(root.join("etc/moved/app.conf")).unwrap(),
            "new\n"
        );
        assert_eq!(
            std::fs::read_dir(root.join("elsewhere")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_missing_parent_is_an_error_except_in_why_run() {
        let tmp = tempfile::tempdir().unwrap();
        let f = file(&tmp.path().join("nope/app.conf"));
        let e = f
            .create(Some(b"x"), false, &Cx::new(false, tmp.path().join("b")))
            .unwrap_err();
        assert!(
            e.to_string().contains("parent directory") && e.to_string().contains("nope"),
            "{e}"
        );
        let out = f
            .create(Some(b"x"), false, &Cx::new(true, tmp.path().join("b")))
            .unwrap();
        assert_eq!(out.changes, ["created"]);
        assert_eq!(
            f.delete(&Cx::new(false, tmp.path().join("b"))).unwrap(),
            Outcome::unchanged()
        );
    }
}
