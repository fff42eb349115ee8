//! `link` provider: symbolic or hard links.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use cm_model::resources::link::{LinkSpec, LinkType};
use cm_model::resources::{FieldError, Ownership, Spec};

use super::{Cx, Outcome, Provider, ProviderType, spec_of};
use crate::engine::CompiledResource;
use crate::fsutil::Wanted;

pub const PROVIDER: ProviderType = ProviderType {
    name: LinkSpec::TYPE,
    build,
};

struct Link {
    path: PathBuf,
    to: String,
    spec: LinkSpec,
}

fn build(r: &CompiledResource) -> Result<Box<dyn Provider>, FieldError> {
    let spec: LinkSpec = spec_of(r)?;
    if spec.to.is_none() && r.actions.iter().any(|a| a == "create") {
        return Err(FieldError::new("to", "a link to create needs `to`"));
    }
    Ok(Box::new(Link {
        path: spec.path.clone().into(),
        to: spec.to.clone().unwrap_or_default(),
        spec,
    }))
}

impl Link {
    fn in_state(&self) -> Result<Option<String>, String> {
        let p = &self.path;
        let meta = match std::fs::symlink_metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Some("created".into()));
            }
            Err(e) => return Err(format!("{}: {e}", p.display())),
            Ok(m) => m,
        };
        match self.spec.link_type {
            LinkType::Symbolic => {
                if meta.is_dir() {
                    return Err(format!("{} is a directory, not a link", p.display()));
                }
                if !meta.file_type().is_symlink() {
                    return Ok(Some("replaced a file with a link".into()));
                }
                let target = std::fs::read_link(p).map_err(|e| format!("{}: {e}", p.display()))?;
                Ok((target.as_path() != std::path::Path::new(&self.to))
                    .then(|| format!("target {} -> {}", target.display(), self.to)))
            }
            LinkType::Hard => {
                let to = std::fs::metadata(&self.to)
                    .map_err(|e| format!("link target {}: {e}", self.to))?;
                Ok((meta.ino() != to.ino() || meta.dev() != to.dev())
                    .then(|| "relinked".to_string()))
            }
        }
    }

    fn create(&self, cx: &Cx) -> Result<Outcome, String> {
        let mut out = Outcome::unchanged();
        let change = self.in_state()?;
        let wanted = Wanted::resolve(&Ownership {
            owner: self.spec.owner.clone(),
            group: self.spec.group.clone(),
            mode: None,
        });
        let wanted = match wanted {
            Ok(w) => w,
            Err(e) if cx.why_run => return Ok(Outcome::changed(format!("{e} yet"))),
            Err(e) => return Err(e),
        };
        if let Some(c) = change {
            out.changes.push(c);
        } else if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            out.changes.extend(wanted.differences(&m));
        }
        if cx.why_run || !out.is_changed() {
            return Ok(out);
        }
        let p = &self.path;
        // Build the link beside the old path and rename over it, so there is no moment without one.
        let tmp = p.with_file_name(format!(
            ".{}.cm-tmp",
            p.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        let _ = std::fs::remove_file(&tmp);
        match self.spec.link_type {
            LinkType::Symbolic => std::os::unix::fs::symlink(&self.to, &tmp),
            LinkType::Hard => std::fs::hard_link(&self.to, &tmp),
        }
        .map_err(|e| format!("linking {} -> {}: {e}", p.display(), self.to))?;
        std::fs::rename(&tmp, p).map_err(|e| format!("placing link {}: {e}", p.display()))?;
        if wanted.uid.is_some() || wanted.gid.is_some() {
            std::os::unix::fs::lchown(p, wanted.uid, wanted.gid)
                .map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok(out)
    }

    fn delete(&self, cx: &Cx) -> Result<Outcome, String> {
        let p = &self.path;
        match std::fs::symlink_metadata(p) {
            Err(_) => Ok(Outcome::unchanged()),
            Ok(m) if self.spec.link_type == LinkType::Symbolic && !m.file_type().is_symlink() => {
                Err(format!(
                    "{} is not a symbolic link; not deleting it",
                    p.display()
                ))
            }
            Ok(_) => {
                if !cx.why_run {
                    std::fs::remove_file(p)
                        .map_err(|e| format!("deleting {}: {e}", p.display()))?;
                }
                Ok(Outcome::changed("deleted"))
            }
        }
    }
}

impl Provider for Link {
    fn converge(&mut self, action: &str, cx: &mut Cx) -> Result<Outcome, String> {
        match action {
            "create" => self.create(cx),
            "delete" => self.delete(cx),
            _ => Ok(Outcome::unchanged()),
        }
    }
}
