//! `user`: a local account.

use serde::{Deserialize, Serialize};

use super::{CookbookRefs, FieldError, Spec, is_templated};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub username: String,
    pub uid: Option<u32>,
    /// Primary group name; created by useradd with the user's name when absent.
    pub group: Option<String>,
    /// Supplementary groups; the user is added to these and removed from no others.
    #[serde(default)]
    pub groups: Vec<String>,
    pub home: Option<String>,
    pub shell: Option<String>,
    pub comment: Option<String>,
    #[serde(default)]
    pub system: bool,
    /// Create the home directory when creating the user.
    #[serde(default)]
    pub manage_home: bool,
}

crate::actions! {
    /// What a `user` may be told to do.
    pub enum UserAction {
        Create = "create",
        Remove = "remove",
        Nothing = "nothing",
    }
}

impl Spec for UserSpec {
    const TYPE: &'static str = "user";
    type Action = UserAction;
    const DEFAULT_ACTIONS: &'static [UserAction] = &[UserAction::Create];
    const NAME_PROPERTY: &'static str = "username";

    fn validate(&self, _refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        check_account_name("username", &self.username)?;
        if let Some(g) = &self.group {
            check_account_name("group", g)?;
        }
        for g in &self.groups {
            check_account_name("groups", g)?;
        }
        for (field, v) in [("home", &self.home), ("shell", &self.shell)] {
            if let Some(p) = v {
                super::check_absolute(field, p)?;
            }
        }
        if let Some(c) = &self.comment
            && c.contains([':', '\n'])
        {
            return Err(FieldError::new("comment", "may not hold ':' or a newline"));
        }
        Ok(())
    }
}

/// Names useradd/groupadd accept on Debian (NAME_REGEX, stricter: no leading digit).
pub(crate) fn check_account_name(field: &str, name: &str) -> Result<(), FieldError> {
    let ok = is_templated(name)
        || (!name.is_empty()
            && name.len() <= 32
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{name:?} is not a valid account name"),
        ))
    }
}
