//! Run lists: `memcached, apache_php::sessions`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::metadata::check_name;

/// A recipe named as `cookbook` (its `default` recipe) or `cookbook::recipe`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecipeRef {
    pub cookbook: String,
    pub recipe: String,
}

impl RecipeRef {
    pub fn parse(s: &str) -> Result<RecipeRef, String> {
        let s = s.trim();
        let (cookbook, recipe) = match s.split_once("::") {
            Some((c, r)) => (c, r),
            None => (s, "default"),
        };
        check_name(cookbook).map_err(|e| format!("run list entry {s:?}: cookbook {e}"))?;
        check_name(recipe).map_err(|e| format!("run list entry {s:?}: recipe {e}"))?;
        Ok(RecipeRef {
            cookbook: cookbook.to_string(),
            recipe: recipe.to_string(),
        })
    }
}

impl fmt::Display for RecipeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}", self.cookbook, self.recipe)
    }
}

impl TryFrom<String> for RecipeRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        RecipeRef::parse(&s)
    }
}

impl From<RecipeRef> for String {
    fn from(r: RecipeRef) -> String {
        r.to_string()
    }
}

/// Parse a comma-separated run list; empty entries are refused.
pub fn parse_run_list(s: &str) -> Result<Vec<RecipeRef>, String> {
    s.split(',').map(RecipeRef::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cookbook_and_recipe() {
        let list = parse_run_list("memcached, apache_php::sessions").unwrap();
        assert_eq!(list[0].to_string(), "memcached::default");
        assert_eq!(list[1].recipe, "sessions");
        assert!(parse_run_list("memcached,,x").is_err());
        assert!(parse_run_list("../etc").is_err());
    }
}
