//! Secrets as a type that cannot be printed by accident: `Debug` and `Display`
//! redact. Templates see them under `secrets.`; anything rendered with one in
//! it is marked sensitive and never shown in a diff, log or report.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A secret's value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The plain value: call only to hand it to a template or the store.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// The secrets a node may read, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secrets(pub BTreeMap<String, SecretString>);

/// Values shorter than this are not searched for in rendered text: "1" or "on"
/// would mark half the node's files sensitive. Such secrets still render.
pub const MIN_DETECTABLE_LEN: usize = 4;

impl Secrets {
    /// The object templates see as `secrets`.
    pub fn to_template_value(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.expose().to_string())))
                .collect::<Map<_, _>>(),
        )
    }

    /// Does `text` contain any secret's value?
    pub fn appear_in(&self, text: &str) -> bool {
        self.0
            .values()
            .any(|v| v.0.len() >= MIN_DETECTABLE_LEN && text.contains(v.expose()))
    }

    /// `text` with every secret's value replaced by `<secret>` (values
    /// shorter than [`MIN_DETECTABLE_LEN`] are not searched for: they would
    /// mangle every name).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.0.values() {
            if v.expose().len() >= MIN_DETECTABLE_LEN {
                out = out.replace(v.expose(), "<secret>");
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secrets(BTreeMap::from([(
            "db".to_string(),
            SecretString::new("hunter22"),
        )]));
        assert!(!format!("{s:?}").contains("hunter22"));
        assert_eq!(SecretString::new("x").to_string(), "<secret>");
        assert!(s.appear_in("password=hunter22\n"));
        assert!(!s.appear_in("password=hunter2\n"));
    }
}
