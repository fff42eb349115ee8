//! `directory` provider. Parents are reached (and, with `recursive`, created)
//! by the safe walk of [`crate::safe_path`]: a planted link on the way stops
//! the resource; a link at the path itself is not a directory and is refused.

use std::path::PathBuf;

use cm_model::resources::directory::{DirectoryAction, DirectorySpec};
use cm_model::resources::{FieldError, Ownership};

use super::{Cx, Outcome, Provider, ProviderError};
use crate::engine::CompiledResource;
use crate::fsutil::{OwnerError, Wanted};
use crate::safe_path::{self, Kind, Missing, SafePathError};

/// Mode of a new directory (and of missing parents) unless `mode` says otherwise.
const DEFAULT_MODE: u32 = 0o755;

pub struct Directory {
    path: PathBuf,
    ownership: Ownership,
    recursive: bool,
}

/// Why a directory could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Path(#[from] SafePathError),
    #[error(transparent)]
    Owner(#[from] OwnerError),
    #[error("{0} exists and is not a directory")]
    NotADirectory(PathBuf),
    #[error("{path}: parent {parent} does not exist (set recursive: true)")]
    MissingParent { path: PathBuf, parent: PathBuf },
    #[error("deleting {path}: {source} (recursive: true deletes contents)")]
    Delete {
        path: PathBuf,
        source: SafePathError,
    },
}

impl Directory {
    fn create(&self, cx: &Cx) -> Result<Outcome, DirectoryError> {
        let wanted = match Wanted::resolve(&self.ownership) {
            Ok(w) => w,
            Err(e) if cx.why_run => return Ok(Outcome::changed(format!("{e} yet"))),
            Err(e) => return Err(e.into()),
        };
        let (parent, name) = safe_path::split(&self.path)?;
        let missing = match self.recursive && !cx.why_run {
            true => Missing::Create(DEFAULT_MODE),
            false => Missing::Fail,
        };
        let dir = match safe_path::open_dir(parent, missing) {
            Ok(dir) => dir,
            Err(SafePathError::Missing { .. }) if cx.why_run => {
                return Ok(Outcome::changed("created"));
            }
            Err(SafePathError::Missing { .. }) => {
                return Err(DirectoryError::MissingParent {
                    path: self.path.clone(),
                    parent: parent.to_path_buf(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let stat = match dir.stat(name)? {
            Some(stat) if stat.kind == Kind::Directory => {
                let out = Outcome {
                    changes: wanted.differences(&stat),
                    diff: None,
                };
                if cx.why_run || !out.is_changed() {
                    return Ok(out);
                }
                dir.set_ownership(name, &stat, wanted.uid, wanted.gid, wanted.mode)?;
                return Ok(out);
            }
            Some(_) => return Err(DirectoryError::NotADirectory(self.path.clone())),
            None if cx.why_run => return Ok(Outcome::changed("created")),
            None => {
                // New directories get 0755 unless told otherwise, whatever the umask.
                dir.make_dir(name, wanted.mode.unwrap_or(DEFAULT_MODE))?;
                dir.stat(name)?.ok_or_else(|| SafePathError::Changed {
                    path: self.path.clone(),
                })?
            }
        };
        if wanted.uid.is_some() || wanted.gid.is_some() {
            dir.set_ownership(name, &stat, wanted.uid, wanted.gid, Some(stat.mode))?;
        }
        Ok(Outcome::changed("created"))
    }

    fn delete(&self, cx: &Cx) -> Result<Outcome, DirectoryError> {
        let (parent, name) = safe_path::split(&self.path)?;
        let dir = match safe_path::open_dir(parent, Missing::Fail) {
            Ok(dir) => dir,
            Err(SafePathError::Missing { .. }) => return Ok(Outcome::unchanged()),
            Err(e) => return Err(e.into()),
        };
        match dir.stat(name)? {
            None => return Ok(Outcome::unchanged()),
            Some(stat) if stat.kind != Kind::Directory => {
                return Err(DirectoryError::NotADirectory(self.path.clone()));
            }
            Some(_) => {}
        }
        if !cx.why_run {
            let removed = match self.recursive {
                true => dir.remove_tree(name),
                false => dir.remove_dir(name),
            };
            removed.map_err(|source| DirectoryError::Delete {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(Outcome::changed("deleted"))
    }
}

impl Provider for Directory {
    type Spec = DirectorySpec;

    fn build(spec: DirectorySpec, _: &CompiledResource) -> Result<Self, FieldError> {
        Ok(Directory {
            path: spec.path.clone().into(),
            ownership: spec.ownership()?,
            recursive: spec.recursive,
        })
    }

    fn converge(&mut self, action: DirectoryAction, cx: &mut Cx) -> Result<Outcome, ProviderError> {
        Ok(match action {
            DirectoryAction::Create => self.create(cx)?,
            DirectoryAction::Delete => self.delete(cx)?,
            DirectoryAction::Nothing => Outcome::unchanged(),
        })
    }
}
