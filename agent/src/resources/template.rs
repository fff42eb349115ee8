//! `template` provider: the content was rendered at compile time (so a missing
//! variable fails the run before anything changes); here it is only written.

use cm_model::resources::FieldError;
use cm_model::resources::file::FileAction;
use cm_model::resources::template::TemplateSpec;

use super::managed_file::ManagedFile;
use super::{Cx, Outcome, Provider, ProviderError};
use crate::engine::CompiledResource;

pub struct Template {
    file: ManagedFile,
    content: Vec<u8>,
}

impl Provider for Template {
    type Spec = TemplateSpec;

    fn build(spec: TemplateSpec, r: &CompiledResource) -> Result<Self, FieldError> {
        Ok(Template {
            file: ManagedFile {
                path: spec.path.clone().into(),
                ownership: spec.ownership()?,
                backup: spec.backup,
                diff: spec.diff,
            },
            content: r.content.clone().unwrap_or_default(),
        })
    }

    fn converge(&mut self, action: FileAction, cx: &mut Cx) -> Result<Outcome, ProviderError> {
        Ok(match action {
            FileAction::Create => self.file.create(Some(&self.content), false, cx)?,
            FileAction::CreateIfMissing => self.file.create(Some(&self.content), true, cx)?,
            FileAction::Delete => self.file.delete(cx)?,
            FileAction::Nothing => Outcome::unchanged(),
        })
    }
}
