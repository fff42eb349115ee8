//! `package`: a Debian package through apt and dpkg.

use serde::{Deserialize, Serialize};

use super::{CookbookRefs, FieldError, Spec, is_templated};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSpec {
    pub package_name: String,
    /// Exact version to pin (`apt-get install NAME=VERSION`).
    pub version: Option<String>,
    /// Seconds to wait for the dpkg lock held by another apt (unattended-upgrades at boot).
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout: u64,
}

fn default_lock_timeout() -> u64 {
    300
}

crate::actions! {
    /// What a `package` may be told to do.
    pub enum PackageAction {
        Install = "install",
        Upgrade = "upgrade",
        Remove = "remove",
        Purge = "purge",
        Nothing = "nothing",
    }
}

impl Spec for PackageSpec {
    const TYPE: &'static str = "package";
    type Action = PackageAction;
    const DEFAULT_ACTIONS: &'static [PackageAction] = &[PackageAction::Install];
    const NAME_PROPERTY: &'static str = "package_name";

    fn validate(&self, _refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        let name = &self.package_name;
        if !is_templated(name) && !is_debian_package_name(name) {
            return Err(FieldError::new(
                "package_name",
                format!("{name:?} is not a Debian package name"),
            ));
        }
        if let Some(v) = &self.version
            && !is_templated(v)
            && (v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '='))
        {
            return Err(FieldError::new(
                "version",
                format!("{v:?} is not a package version"),
            ));
        }
        Ok(())
    }
}

/// Debian policy 5.6.1: lowercase letters, digits, `+ - .`, at least two chars,
/// starting with an alphanumeric. (`:arch` qualifiers are accepted too.)
pub fn is_debian_package_name(name: &str) -> bool {
    let base = name.split_once(':').map_or(name, |(b, _)| b);
    base.len() >= 2
        && base.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && base
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}
