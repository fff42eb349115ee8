//! `directory`: a directory, optionally with its missing parents.

use serde::{Deserialize, Serialize};

use super::{CookbookRefs, FieldError, Ownership, Spec, check_managed_path, check_mode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySpec {
    pub path: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    /// Create missing parents (with default ownership) / delete with contents.
    #[serde(default)]
    pub recursive: bool,
}

impl DirectorySpec {
    pub fn ownership(&self) -> Result<Ownership, FieldError> {
        Ownership::from_props(&self.owner, &self.group, &self.mode)
    }
}

crate::actions! {
    /// What a `directory` may be told to do.
    pub enum DirectoryAction {
        Create = "create",
        Delete = "delete",
        Nothing = "nothing",
    }
}

impl Spec for DirectorySpec {
    const TYPE: &'static str = "directory";
    type Action = DirectoryAction;
    const DEFAULT_ACTIONS: &'static [DirectoryAction] = &[DirectoryAction::Create];
    const NAME_PROPERTY: &'static str = "path";

    fn validate(&self, _refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        check_managed_path("path", &self.path)?;
        check_mode("mode", &self.mode)
    }
}
