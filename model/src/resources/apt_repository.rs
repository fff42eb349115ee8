//! `apt_repository`: a deb822 `.sources` file with its own `Signed-By` key.

use serde::{Deserialize, Serialize};

use super::{CookbookContent, CookbookRefs, FieldError, Spec, cookbook_file, is_templated};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AptRepositorySpec {
    /// Becomes /etc/apt/sources.list.d/<name>.sources and /etc/apt/keyrings/<name>.asc.
    pub repo_name: String,
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    #[serde(default)]
    pub components: Vec<String>,
    #[serde(default)]
    pub architectures: Vec<String>,
    /// ASCII-armored OpenPGP public key, inline.
    pub key: Option<String>,
    /// Or a key file under the cookbook's `files/`.
    pub key_source: Option<String>,
}

crate::actions! {
    /// What an `apt_repository` may be told to do.
    pub enum AptRepositoryAction {
        Add = "add",
        Remove = "remove",
        Nothing = "nothing",
    }
}

impl Spec for AptRepositorySpec {
    const TYPE: &'static str = "apt_repository";
    type Action = AptRepositoryAction;
    const DEFAULT_ACTIONS: &'static [AptRepositoryAction] = &[AptRepositoryAction::Add];
    const NAME_PROPERTY: &'static str = "repo_name";

    fn validate(&self, refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        let n = &self.repo_name;
        if !is_templated(n)
            && (n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                || n.starts_with('.'))
        {
            return Err(FieldError::new(
                "repo_name",
                format!("{n:?} is not a safe file name"),
            ));
        }
        if self.uris.is_empty() {
            return Err(FieldError::new("uris", "list at least one URI"));
        }
        if self.suites.is_empty() {
            return Err(FieldError::new("suites", "list at least one suite"));
        }
        for (field, list) in [
            ("uris", &self.uris),
            ("suites", &self.suites),
            ("components", &self.components),
            ("architectures", &self.architectures),
        ] {
            if let Some(bad) = list
                .iter()
                .find(|v| v.is_empty() || v.contains(char::is_whitespace))
            {
                return Err(FieldError::new(
                    field,
                    format!("{bad:?} may not be empty or hold spaces"),
                ));
            }
        }
        match (&self.key, &self.key_source) {
            (Some(_), Some(_)) => Err(FieldError::new(
                "key_source",
                "give either key or key_source, not both",
            )),
            (None, None) => Err(FieldError::new(
                "key",
                "a repository needs its signing key (key or key_source)",
            )),
            (Some(k), None) if !is_templated(k) && !k.contains("BEGIN PGP PUBLIC KEY BLOCK") => {
                Err(FieldError::new(
                    "key",
                    "expected an ASCII-armored OpenPGP public key",
                ))
            }
            (None, Some(src)) if !is_templated(src) && !refs.has_file(src) => Err(FieldError::new(
                "key_source",
                format!("no file {src:?} in the cookbook's files/"),
            )),
            _ => Ok(()),
        }
    }

    /// The signing key `key_source` names, which the provider writes next
    /// to the `.sources` file (an inline `key` is a property already).
    fn content(&self, cookbook: &dyn CookbookContent) -> Result<Option<Vec<u8>>, FieldError> {
        self.key_source
            .as_deref()
            .map(|src| cookbook_file(cookbook, "key_source", src))
            .transpose()
    }
}
