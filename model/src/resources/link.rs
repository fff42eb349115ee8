//! `link`: a symbolic (or hard) link.

use serde::{Deserialize, Serialize};

use super::{CookbookRefs, FieldError, Spec, check_absolute, check_managed_path};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// The link itself.
    pub path: String,
    /// What it points to; required to create the link.
    pub to: Option<String>,
    #[serde(default)]
    pub link_type: LinkType,
    pub owner: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkType {
    #[default]
    Symbolic,
    Hard,
}

crate::actions! {
    /// What a `link` may be told to do.
    pub enum LinkAction {
        Create = "create",
        Delete = "delete",
        Nothing = "nothing",
    }
}

impl Spec for LinkSpec {
    const TYPE: &'static str = "link";
    type Action = LinkAction;
    const DEFAULT_ACTIONS: &'static [LinkAction] = &[LinkAction::Create];
    const NAME_PROPERTY: &'static str = "path";

    fn validate(&self, _refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        check_managed_path("path", &self.path)?;
        match self.to.as_deref() {
            Some("") => return Err(FieldError::new("to", "link target is empty")),
            // A hard link names an existing file; the agent reaches it like any managed path.
            Some(to) if self.link_type == LinkType::Hard => check_managed_path("to", to)?,
            // A symbolic link's relative target is kept as written (`../lib/x` is the idiom).
            Some(to) if to.starts_with('/') => check_absolute("to", to)?,
            _ => {}
        }
        Ok(())
    }
}
