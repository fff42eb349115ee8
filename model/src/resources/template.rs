//! `template`: a file rendered from a handlebars template in the cookbook's `templates/`.

use serde::{Deserialize, Serialize};

use super::file::FileAction;

use super::{
    CookbookContent, CookbookRefs, FieldError, Ownership, Spec, check_managed_path, check_mode,
    is_templated,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    pub path: String,
    /// Template file under `templates/`, e.g. `memcached.conf.hbs`.
    pub source: String,
    /// Extra values the template sees as `vars.*`.
    #[serde(default)]
    pub variables: serde_json::Map<String, serde_json::Value>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    #[serde(default = "super::file::default_backups")]
    pub backup: u32,
    /// Show the content in the diff (`true`), never (`false`), or, unset, only
    /// when the file's mode lets others read it (a 0600 key is shown by size
    /// and digest).
    pub diff: Option<bool>,
}

impl TemplateSpec {
    pub fn ownership(&self) -> Result<Ownership, FieldError> {
        Ownership::from_props(&self.owner, &self.group, &self.mode)
    }
}

impl Spec for TemplateSpec {
    const TYPE: &'static str = "template";
    type Action = FileAction;
    const DEFAULT_ACTIONS: &'static [FileAction] = &[FileAction::Create];
    const NAME_PROPERTY: &'static str = "path";

    fn validate(&self, refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        check_managed_path("path", &self.path)?;
        check_mode("mode", &self.mode)?;
        if !is_templated(&self.source) && !refs.has_template(&self.source) {
            return Err(FieldError::new(
                "source",
                format!("no template {:?} in the cookbook's templates/", self.source),
            ));
        }
        Ok(())
    }

    /// Rendered here, at compile time, so a missing variable fails the run
    /// before anything is touched.
    fn content(&self, cookbook: &dyn CookbookContent) -> Result<Option<Vec<u8>>, FieldError> {
        cookbook
            .render_template(&self.source, &self.variables)
            .map(|text| Some(text.into_bytes()))
            .map_err(|e| FieldError::new("source", e.message))
    }
}
