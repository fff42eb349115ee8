//! `file` provider: inline content or a cookbook file, via [`ManagedFile`].

use cm_model::resources::file::FileSpec;
use cm_model::resources::{FieldError, Spec};

use super::managed_file::ManagedFile;
use super::{Cx, Outcome, Provider, ProviderType, spec_of};
use crate::engine::CompiledResource;

pub const PROVIDER: ProviderType = ProviderType {
    name: FileSpec::TYPE,
    build,
};

struct File {
    file: ManagedFile,
    content: Option<Vec<u8>>,
}

fn build(r: &CompiledResource) -> Result<Box<dyn Provider>, FieldError> {
    let spec: FileSpec = spec_of(r)?;
    Ok(Box::new(File {
        file: ManagedFile {
            path: spec.path.clone().into(),
            ownership: spec.ownership()?,
            backup: spec.backup,
            diff: spec.diff,
        },
        content: r.content.clone(),
    }))
}

impl Provider for File {
    fn converge(&mut self, action: &str, cx: &mut Cx) -> Result<Outcome, String> {
        match action {
            "create" => Ok(self.file.create(self.content.as_deref(), false, cx)?),
            "create_if_missing" => Ok(self.file.create(self.content.as_deref(), true, cx)?),
            "delete" => Ok(self.file.delete(cx)?),
            _ => Ok(Outcome::unchanged()),
        }
    }
}
