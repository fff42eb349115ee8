//! `directory` provider.

use std::path::{Path, PathBuf};

use cm_model::resources::directory::DirectorySpec;
use cm_model::resources::{FieldError, Spec};

use super::{Cx, Outcome, Provider, ProviderType, spec_of};
use crate::engine::CompiledResource;
use crate::fsutil::Wanted;

pub const PROVIDER: ProviderType = ProviderType {
    name: DirectorySpec::TYPE,
    build,
};

struct Directory {
    path: PathBuf,
    spec: DirectorySpec,
}

fn build(r: &CompiledResource) -> Result<Box<dyn Provider>, FieldError> {
    let spec: DirectorySpec = spec_of(r)?;
    spec.ownership()?;
    Ok(Box::new(Directory {
        path: spec.path.clone().into(),
        spec,
    }))
}

impl Directory {
    fn create(&self, cx: &Cx) -> Result<Outcome, String> {
        let wanted = match Wanted::resolve(&self.spec.ownership().map_err(|e| e.message)?) {
            Ok(w) => w,
            Err(e) if cx.why_run => return Ok(Outcome::changed(format!("{e} yet"))),
            Err(e) => return Err(e),
        };
        let p = &self.path;
        let mut out = Outcome::unchanged();
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => out.changes.extend(wanted.differences(&m)),
            Ok(_) => return Err(format!("{} exists and is not a directory", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let parent = p.parent().unwrap_or(Path::new("/"));
                if !self.spec.recursive && !parent.is_dir() && !cx.why_run {
                    return Err(format!(
                        "{}: parent {} does not exist (set recursive: true)",
                        p.display(),
                        parent.display()
                    ));
                }
                out.changes.push("created".into());
            }
            Err(e) => return Err(format!("{}: {e}", p.display())),
        }
        if cx.why_run || !out.is_changed() {
            return Ok(out);
        }
        if !p.exists() {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(self.spec.recursive);
            b.create(p)
                .map_err(|e| format!("creating {}: {e}", p.display()))?;
            if wanted.mode.is_none() {
                // New directories get 0755 unless told otherwise, whatever the umask.
                let w = Wanted {
                    mode: Some(0o755),
                    ..wanted
                };
                w.apply_to_path(p)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
            }
        }
        wanted
            .apply_to_path(p)
            .map_err(|e| format!("setting owner/mode of {}: {e}", p.display()))?;
        Ok(out)
    }

    fn delete(&self, cx: &Cx) -> Result<Outcome, String> {
        let p = &self.path;
        match std::fs::symlink_metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::unchanged()),
            Err(e) => return Err(format!("{}: {e}", p.display())),
            Ok(m) if !m.is_dir() => return Err(format!("{} is not a directory", p.display())),
            Ok(_) => {}
        }
        if !cx.why_run {
            let r = if self.spec.recursive {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_dir(p)
            };
            r.map_err(|e| {
                format!(
                    "deleting {}: {e} (recursive: true deletes contents)",
                    p.display()
                )
            })?;
        }
        Ok(Outcome::changed("deleted"))
    }
}

impl Provider for Directory {
    fn converge(&mut self, action: &str, cx: &mut Cx) -> Result<Outcome, String> {
        match action {
            "create" => self.create(cx),
            "delete" => self.delete(cx),
            _ => Ok(Outcome::unchanged()),
        }
    }
}
