//! The part of file, template and remote_file that is the same: put bytes at a
//! path with an owner and mode, atomically, keeping a backup, with a diff.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cm_model::resources::Ownership;

use super::{Cx, Outcome};
use crate::fsutil::{self, Wanted};

/// A file the run manages.
#[derive(Debug, Clone)]
pub struct ManagedFile {
    pub path: PathBuf,
    pub ownership: Ownership,
    /// Previous versions to keep.
    pub backup: u32,
}

impl ManagedFile {
    /// Resolve owner and group now: a user created earlier in this run must be seen.
    /// In why-run that user may not exist yet, which is a change, not an error.
    fn wanted(&self, cx: &Cx, changes: &mut Vec<String>) -> Result<Option<Wanted>, String> {
        match Wanted::resolve(&self.ownership) {
            Ok(w) => Ok(Some(w)),
            Err(e) if cx.why_run => {
                changes.push(format!("{e} yet (an earlier resource may create it)"));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Read the current file: None when missing; an error for a directory.
    pub fn current(&self) -> Result<Option<(std::fs::Metadata, Vec<u8>)>, String> {
        match std::fs::symlink_metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.path.display())),
            Ok(m) if m.is_dir() => Err(format!("{} is a directory", self.path.display())),
            Ok(_) => {
                let meta = std::fs::metadata(&self.path)
                    .map_err(|e| format!("{}: {e}", self.path.display()))?;
                let bytes = std::fs::read(&self.path)
                    .map_err(|e| format!("{}: {e}", self.path.display()))?;
                Ok(Some((meta, bytes)))
            }
        }
    }

    /// Make the file hold `content` (or just exist, when None) with its ownership.
    /// `if_missing` leaves an existing file's content alone.
    pub fn create(
        &self,
        content: Option<&[u8]>,
        if_missing: bool,
        cx: &Cx,
    ) -> Result<Outcome, String> {
        let parent = self.path.parent().unwrap_or(Path::new("/"));
        if !parent.is_dir() && !cx.why_run {
            return Err(format!(
                "{}: parent directory {} does not exist",
                self.path.display(),
                parent.display()
            ));
        }
        let current = self.current()?;
        let mut out = Outcome::unchanged();
        let wanted = self.wanted(cx, &mut out.changes)?;
        let write = match (&current, content) {
            (None, c) => {
                out.changes.push("created".into());
                out.diff = c.map(|c| fsutil::diff(&self.path, None, c));
                Some(c.unwrap_or_default())
            }
            (Some(_), _) if if_missing => None,
            (Some((_, old)), Some(new)) if old.as_slice() != new => {
                out.changes.push("content".into());
                out.diff = Some(fsutil::diff(&self.path, Some(old), new));
                Some(new)
            }
            (Some(_), _) => None,
        };
        let wanted = wanted.unwrap_or_default();
        if let Some((meta, _)) = &current {
            out.changes.extend(wanted.differences(meta));
        } else if let Some(m) = wanted.mode {
            out.changes.push(format!("mode {m:04o}"));
        }
        if cx.why_run || !out.is_changed() {
            return Ok(out);
        }
        match write {
            Some(bytes) => {
                if current.is_some() {
                    fsutil::backup(&self.path, &cx.backup_dir, self.backup)
                        .map_err(|e| format!("backing up {}: {e}", self.path.display()))?;
                }
                fsutil::write_atomic(&self.path, bytes, &wanted)
                    .map_err(|e| format!("writing {}: {e}", self.path.display()))?
            }
            None => wanted
                .apply_to_path(&self.path)
                .map_err(|e| format!("setting owner/mode of {}: {e}", self.path.display()))?,
        }
        Ok(out)
    }

    /// Remove the file (keeping a backup).
    pub fn delete(&self, cx: &Cx) -> Result<Outcome, String> {
        let Some((meta, _)) = self.current()? else {
            return Ok(Outcome::unchanged());
        };
        let out = Outcome::changed(format!("deleted ({} bytes)", meta.size()));
        if !cx.why_run {
            fsutil::backup(&self.path, &cx.backup_dir, self.backup)
                .map_err(|e| format!("backing up {}: {e}", self.path.display()))?;
            std::fs::remove_file(&self.path)
                .map_err(|e| format!("deleting {}: {e}", self.path.display()))?;
        }
        Ok(out)
    }
}
