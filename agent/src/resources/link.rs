//! `link` provider: symbolic or hard links. The link's directory (and a hard
//! link's source) is reached by the safe walk of [`crate::safe_path`]; the
//! link is built beside its place and renamed over it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use cm_model::resources::link::{LinkAction, LinkSpec, LinkType};
use cm_model::resources::{FieldError, Ownership};

use super::{Cx, Outcome, Provider, ProviderError, declared_actions};
use crate::engine::CompiledResource;
use crate::fsutil::{OwnerError, Wanted};
use crate::safe_path::{self, Dir, Kind, Missing, SafePathError, Stat};

pub struct Link {
    path: PathBuf,
    to: String,
    spec: LinkSpec,
}

/// Why a link could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Path(#[from] SafePathError),
    #[error(transparent)]
    Owner(#[from] OwnerError),
    #[error("{0} is a directory, not a link")]
    IsADirectory(PathBuf),
    #[error("{0} is not a symbolic link; not deleting it")]
    NotASymlink(PathBuf),
    #[error("link target {to}: {source}")]
    Target { to: String, source: SafePathError },
    #[error("{path}: parent directory {parent} does not exist")]
    MissingParent { path: PathBuf, parent: PathBuf },
}

/// The link's directory, its name there and what is there now.
struct Place {
    dir: Dir,
    name: OsString,
    stat: Option<Stat>,
}

impl Link {
    /// None when the link's directory does not exist.
    fn look(&self) -> Result<Option<Place>, LinkError> {
        let (parent, name) = safe_path::split(&self.path)?;
        match safe_path::open_dir(parent, Missing::Fail) {
            Ok(dir) => {
                let stat = dir.stat(name)?;
                Ok(Some(Place {
                    dir,
                    name: name.to_os_string(),
                    stat,
                }))
            }
            Err(SafePathError::Missing { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A hard link's source: its directory by the safe walk, and its name.
    fn source(&self) -> Result<(Dir, OsString), LinkError> {
        let target = |source| LinkError::Target {
            to: self.to.clone(),
            source,
        };
        let (dir, name) =
            safe_path::open_parent(Path::new(&self.to), Missing::Fail).map_err(target)?;
        Ok((dir, name))
    }

    /// What is wrong with the link now, in a few words; None when it is right.
    fn in_state(&self, place: &Place) -> Result<Option<String>, LinkError> {
        let Some(meta) = &place.stat else {
            return Ok(Some("created".into()));
        };
        if meta.kind == Kind::Directory {
            return Err(LinkError::IsADirectory(self.path.clone()));
        }
        match self.spec.link_type {
            LinkType::Symbolic => {
                if meta.kind != Kind::Symlink {
                    return Ok(Some("replaced a file with a link".into()));
                }
                let target = place.dir.read_link(&place.name)?;
                Ok((target.as_path() != Path::new(&self.to))
                    .then(|| format!("target {} -> {}", target.display(), self.to)))
            }
            LinkType::Hard => {
                let (dir, name) = self.source()?;
                let to = dir.stat(&name)?.ok_or_else(|| LinkError::Target {
                    to: self.to.clone(),
                    source: SafePathError::Missing {
                        path: PathBuf::from(&self.to),
                    },
                })?;
                Ok((meta.ino != to.ino || meta.dev != to.dev).then(|| "relinked".to_string()))
            }
        }
    }

    fn create(&self, cx: &Cx) -> Result<Outcome, LinkError> {
        let wanted = Wanted::resolve(&Ownership {
            owner: self.spec.owner.clone(),
            group: self.spec.group.clone(),
            mode: None,
        });
        let wanted = match wanted {
            Ok(w) => w,
            Err(e) if cx.why_run => return Ok(Outcome::changed(format!("{e} yet"))),
            Err(e) => return Err(e.into()),
        };
        let Some(place) = self.look()? else {
            if cx.why_run {
                return Ok(Outcome::changed("created"));
            }
            return Err(LinkError::MissingParent {
                path: self.path.clone(),
                parent: self.path.parent().unwrap_or(Path::new("/")).to_path_buf(),
            });
        };
        let mut out = Outcome::unchanged();
        let change = self.in_state(&place)?;
        let relink = change.is_some();
        match (change, &place.stat) {
            (Some(c), _) => out.changes.push(c),
            (None, Some(stat)) => out.changes.extend(wanted.differences(stat)),
            (None, None) => {}
        }
        if cx.why_run || !out.is_changed() {
            return Ok(out);
        }
        if relink {
            match self.spec.link_type {
                LinkType::Symbolic => place.dir.symlink(Path::new(&self.to), &place.name)?,
                LinkType::Hard => {
                    let (dir, name) = self.source()?;
                    place.dir.hard_link(&dir, &name, &place.name)?
                }
            }
        }
        if wanted.uid.is_some() || wanted.gid.is_some() {
            place
                .dir
                .set_link_owner(&place.name, wanted.uid, wanted.gid)?;
        }
        Ok(out)
    }

    fn delete(&self, cx: &Cx) -> Result<Outcome, LinkError> {
        let Some(place) = self.look()? else {
            return Ok(Outcome::unchanged());
        };
        match place.stat {
            None => return Ok(Outcome::unchanged()),
            Some(s) if self.spec.link_type == LinkType::Symbolic && s.kind != Kind::Symlink => {
                return Err(LinkError::NotASymlink(self.path.clone()));
            }
            Some(s) if s.kind == Kind::Directory => {
                return Err(LinkError::IsADirectory(self.path.clone()));
            }
            Some(_) => {}
        }
        if !cx.why_run {
            place.dir.remove_file(&place.name)?;
        }
        Ok(Outcome::changed("deleted"))
    }
}

impl Provider for Link {
    type Spec = LinkSpec;

    fn build(spec: LinkSpec, r: &CompiledResource) -> Result<Self, FieldError> {
        let creates = declared_actions(r)?.contains(&LinkAction::Create);
        if spec.to.is_none() && creates {
            return Err(FieldError::new("to", "a link to create needs `to`"));
        }
        Ok(Link {
            path: spec.path.clone().into(),
            to: spec.to.clone().unwrap_or_default(),
            spec,
        })
    }

    fn converge(&mut self, action: LinkAction, cx: &mut Cx) -> Result<Outcome, ProviderError> {
        Ok(match action {
            LinkAction::Create => self.create(cx)?,
            LinkAction::Delete => self.delete(cx)?,
            LinkAction::Nothing => Outcome::unchanged(),
        })
    }
}
