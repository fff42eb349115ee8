//! `group`: a local group and, optionally, its members.

use serde::{Deserialize, Serialize};

use super::user::check_account_name;
use super::{CookbookRefs, FieldError, Spec};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub group_name: String,
    pub gid: Option<u32>,
    /// Members to ensure; with `append: false` the member list is exactly this.
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default = "yes")]
    pub append: bool,
    #[serde(default)]
    pub system: bool,
}

fn yes() -> bool {
    true
}

crate::actions! {
    /// What a `group` may be told to do.
    pub enum GroupAction {
        Create = "create",
        Remove = "remove",
        Nothing = "nothing",
    }
}

impl Spec for GroupSpec {
    const TYPE: &'static str = "group";
    type Action = GroupAction;
    const DEFAULT_ACTIONS: &'static [GroupAction] = &[GroupAction::Create];
    const NAME_PROPERTY: &'static str = "group_name";

    fn validate(&self, _refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        check_account_name("group_name", &self.group_name)?;
        for m in &self.members {
            check_account_name("members", m)?;
        }
        Ok(())
    }
}
