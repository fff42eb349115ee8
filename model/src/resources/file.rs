//! `file`: a file with inline content or a file shipped in the cookbook's `files/`.

use serde::{Deserialize, Serialize};

use super::{
    CookbookContent, CookbookRefs, FieldError, Ownership, Spec, check_managed_path, check_mode,
    cookbook_file, is_templated,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Absolute path; defaults to the resource name.
    pub path: String,
    /// Inline content (handlebars expressions are rendered).
    pub content: Option<String>,
    /// A file under the cookbook's `files/`, copied byte for byte.
    pub source: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    /// How many previous versions to keep in the agent's backup dir; 0 keeps none.
    #[serde(default = "default_backups")]
    pub backup: u32,
    /// Show the content in the diff (`true`), never (`false`), or, unset, only
    /// when the file's mode lets others read it (a 0600 key is shown by size
    /// and digest).
    pub diff: Option<bool>,
}

pub(crate) fn default_backups() -> u32 {
    3
}

impl FileSpec {
    pub fn ownership(&self) -> Result<Ownership, FieldError> {
        Ownership::from_props(&self.owner, &self.group, &self.mode)
    }
}

crate::actions! {
    /// What a `file`, `template` or `remote_file` may be told to do.
    pub enum FileAction {
        Create = "create",
        CreateIfMissing = "create_if_missing",
        Delete = "delete",
        Nothing = "nothing",
    }
}

impl Spec for FileSpec {
    const TYPE: &'static str = "file";
    type Action = FileAction;
    const DEFAULT_ACTIONS: &'static [FileAction] = &[FileAction::Create];
    const NAME_PROPERTY: &'static str = "path";

    fn validate(&self, refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        check_managed_path("path", &self.path)?;
        check_mode("mode", &self.mode)?;
        if self.content.is_some() && self.source.is_some() {
            return Err(FieldError::new(
                "source",
                "give either content or source, not both",
            ));
        }
        if let Some(src) = &self.source
            && !is_templated(src)
            && !refs.has_file(src)
        {
            return Err(FieldError::new(
                "source",
                format!("no file {src:?} in the cookbook's files/"),
            ));
        }
        Ok(())
    }

    /// The cookbook file `source` names, else the inline `content`; with
    /// neither, the file is only made to exist.
    fn content(&self, cookbook: &dyn CookbookContent) -> Result<Option<Vec<u8>>, FieldError> {
        match (&self.source, &self.content) {
            (Some(src), _) => cookbook_file(cookbook, "source", src).map(Some),
            (None, Some(text)) => Ok(Some(text.as_bytes().to_vec())),
            (None, None) => Ok(None),
        }
    }
}
