//! `template` provider: the content was rendered at compile time (so a missing
//! variable fails the run before anything changes); here it is only written.

use cm_model::resources::template::TemplateSpec;
use cm_model::resources::{FieldError, Spec};

use super::managed_file::ManagedFile;
use super::{Cx, Outcome, Provider, ProviderType, spec_of};
use crate::engine::CompiledResource;

pub const PROVIDER: ProviderType = ProviderType {
    name: TemplateSpec::TYPE,
    build,
};

struct Template {
    file: ManagedFile,
    content: Vec<u8>,
}

fn build(r: &CompiledResource) -> Result<Box<dyn Provider>, FieldError> {
    let spec: TemplateSpec = spec_of(r)?;
    Ok(Box::new(Template {
        file: ManagedFile {
            path: spec.path.clone().into(),
            ownership: spec.ownership()?,
            backup: spec.backup,
            diff: spec.diff,
        },
        content: r.content.clone().unwrap_or_default(),
    }))
}

impl Provider for Template {
    fn converge(&mut self, action: &str, cx: &mut Cx) -> Result<Outcome, String> {
        match action {
            "create" => Ok(self.file.create(Some(&self.content), false, cx)?),
            "create_if_missing" => Ok(self.file.create(Some(&self.content), true, cx)?),
            "delete" => Ok(self.file.delete(cx)?),
            _ => Ok(Outcome::unchanged()),
        }
    }
}
