//! `file` provider: inline content or a cookbook file, via [`ManagedFile`].

use cm_model::resources::FieldError;
use cm_model::resources::file::{FileAction, FileSpec};

use super::managed_file::ManagedFile;
use super::{Cx, Outcome, Provider, ProviderError};
use crate::engine::CompiledResource;

pub struct File {
    file: ManagedFile,
    /// Loaded at compile time ([`FileSpec`]'s content); None only makes the file exist.
    content: Option<Vec<u8>>,
}

impl Provider for File {
    type Spec = FileSpec;

    fn build(spec: FileSpec, r: &CompiledResource) -> Result<Self, FieldError> {
        Ok(File {
            file: ManagedFile {
                path: spec.path.clone().into(),
                ownership: spec.ownership()?,
                backup: spec.backup,
                diff: spec.diff,
            },
            content: r.content.clone(),
        })
    }

    fn converge(&mut self, action: FileAction, cx: &mut Cx) -> Result<Outcome, ProviderError> {
        let content = self.content.as_deref();
        Ok(match action {
            FileAction::Create => self.file.create(content, false, cx)?,
            FileAction::CreateIfMissing => self.file.create(content, true, cx)?,
            FileAction::Delete => self.file.delete(cx)?,
            FileAction::Nothing => Outcome::unchanged(),
        })
    }
}
