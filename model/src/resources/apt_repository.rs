//! `apt_repository`: a deb822 `.sources` file with its own `Signed-By` key.

use serde::{Deserialize, Serialize};

use super::{CookbookRefs, FieldError, Spec, is_templated};

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

impl Spec for AptRepositorySpec {
    const TYPE: &'static str = "apt_repository";
    const ACTIONS: &'static [&'static str] = &["add", "remove", "nothing"];
    const DEFAULT_ACTIONS: &'static [&'static str] = &["add"];
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
}
