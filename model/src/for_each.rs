//! `for_each`: one resource declared for many items. The items are a
//! literal list, a list attribute named by its path (looked up when a node
//! compiles), or a range of integers:
//!
//! ```yaml
//! - directory: "/srv/web-{{pad item 2}}"
//!   for_each: {range: [1, 50]}      # 1, 2, ... 50: both ends included
//! ```
//!
//! The range is new in cm-agent 0.2.0 (`crate::features`). Every form is
//! bounded by [`MAX_FOR_EACH_ITEMS`], checked when the cookbook loads for a
//! literal list and a range, when the node compiles for a path.

use serde_json::{Map, Value};

/// Most resources one `for_each` may expand to.
pub const MAX_FOR_EACH_ITEMS: usize = 10_000;

/// What `for_each` iterates over: a list attribute named by path, a literal
/// list, or a range of integers.
#[derive(Debug, Clone, PartialEq)]
pub enum ForEach {
    Path(String),
    Items(Vec<Value>),
    /// `{range: [FROM, TO]}`: FROM to TO, both included (new in cm-agent 0.2.0).
    Range {
        from: i64,
        to: i64,
    },
}

impl ForEach {
    /// The items of a literal list or a range; `None` for a path, which
    /// only the compile can look up.
    pub fn literal_items(&self) -> Option<Vec<Value>> {
        match self {
            ForEach::Path(_) => None,
            ForEach::Items(items) => Some(items.clone()),
            ForEach::Range { from, to } => Some((*from..=*to).map(Value::from).collect()),
        }
    }
}

pub(crate) fn parse_for_each(v: Value) -> Result<ForEach, String> {
    match v {
        Value::String(path) => {
            let root = path.split(['.', '[']).next().unwrap_or_default();
            if !["attrs", "node", "cluster", "cluster_nodes"].contains(&root) {
                return Err(format!(
                    "{path:?}: for_each takes a list or a path under attrs., node., cluster. or cluster_nodes"
                ));
            }
            Ok(ForEach::Path(path))
        }
        Value::Array(items) if items.len() > MAX_FOR_EACH_ITEMS => Err(format!(
            "{} items, over the limit of {MAX_FOR_EACH_ITEMS} for one resource",
            items.len()
        )),
        Value::Array(items) => Ok(ForEach::Items(items)),
        Value::Object(map) => parse_range(map),
        other => Err(format!(
            "expected a list, a path to a list attribute or {{range: [FROM, TO]}}, found {other}"
        )),
    }
}

/// `{range: [FROM, TO]}`: integers, FROM <= TO, both included, at most
/// [`MAX_FOR_EACH_ITEMS`] of them.
fn parse_range(map: Map<String, Value>) -> Result<ForEach, String> {
    const USAGE: &str = "write for_each: {range: [FROM, TO]} (integers, both included)";
    let mut entries = map.into_iter();
    let bounds = match (entries.next(), entries.next()) {
        (Some((key, Value::Array(bounds))), None) if key == "range" => bounds,
        (Some((key, _)), None) if key == "range" => {
            return Err(format!("range takes two integers: {USAGE}"));
        }
        _ => {
            return Err(format!(
                "the only key a for_each mapping takes is range: {USAGE}"
            ));
        }
    };
    let (from, to) = match bounds.as_slice() {
        [from, to] => match (from.as_i64(), to.as_i64()) {
            (Some(from), Some(to)) => (from, to),
            _ => {
                return Err(format!(
                    "range [{from}, {to}]: bounds must be integers: {USAGE}"
                ));
            }
        },
        _ => {
            return Err(format!(
                "range takes two integers, found {}: {USAGE}",
                bounds.len()
            ));
        }
    };
    if from > to {
        return Err(format!(
            "range [{from}, {to}]: FROM is above TO (write [{to}, {from}])"
        ));
    }
    let count = i128::from(to) - i128::from(from) + 1;
    if count > MAX_FOR_EACH_ITEMS as i128 {
        return Err(format!(
            "range [{from}, {to}] holds {count} items, over the limit of {MAX_FOR_EACH_ITEMS} for one resource"
        ));
    }
    Ok(ForEach::Range { from, to })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::error::LoadError;
    use crate::recipe::{RecipeEntry, ResourceDecl, parse_recipe};
    use crate::resources::CookbookRefs;

    struct NoRefs;
    impl CookbookRefs for NoRefs {
        fn has_template(&self, _: &str) -> bool {
            false
        }
        fn has_file(&self, _: &str) -> bool {
            false
        }
    }

    fn parse(text: &str) -> Result<Vec<RecipeEntry>, LoadError> {
        parse_recipe(Path::new("memcached/recipes/default.yaml"), text, &NoRefs)
    }

    fn resource(e: &RecipeEntry) -> &ResourceDecl {
        match e {
            RecipeEntry::Resource(r) => r,
            RecipeEntry::Include { .. } => panic!("expected a resource"),
        }
    }

    #[test]
    fn a_range_for_each_holds_both_ends() {
        let e = parse("- directory: '/srv/web-{{pad item 2}}'\n  for_each: {range: [1, 50]}\n")
            .unwrap();
        let d = resource(&e[0]);
        assert_eq!(d.for_each, Some(ForEach::Range { from: 1, to: 50 }));
        let items = d.for_each.as_ref().unwrap().literal_items().unwrap();
        assert_eq!(
            (items.len(), &items[0], &items[49]),
            (50, &1.into(), &50.into())
        );
        let one = parse("- directory: '/srv/{{item}}'\n  for_each: {range: [-1, -1]}\n").unwrap();
        assert_eq!(
            resource(&one[0]).for_each.as_ref().unwrap().literal_items(),
            Some(vec![Value::from(-1)])
        );
    }

    #[test]
    fn a_bad_range_is_refused_at_load_with_its_line() {
        for (range, words) in [
            ("{range: [5, 1]}", "FROM is above TO (write [1, 5])"),
            ("{range: [1, 10000]}", ""),
            (
                "{range: [0, 10000]}",
                "holds 10001 items, over the limit of 10000",
            ),
            ("{range: [1, 2, 3]}", "range takes two integers, found 3"),
            ("{range: [1, '5']}", "bounds must be integers"),
            ("{range: [1, 2.5]}", "bounds must be integers"),
            ("{range: 5}", "range takes two integers"),
            (
                "{rnage: [1, 5]}",
                "the only key a for_each mapping takes is range",
            ),
            ("{range: [1, 5], step: 2}", "the only key"),
            (
                "{range: [-9223372036854775808, 9223372036854775807]}",
                "over the limit",
            ),
        ] {
            let text = format!("- directory: '/srv/{{{{item}}}}'\n  for_each: {range}\n");
            match parse(&text) {
                Ok(_) => assert!(words.is_empty(), "{range} was accepted"),
                Err(err) => {
                    assert!(!words.is_empty(), "{range}: {err}");
                    assert_eq!(err.pos.line, 2, "{err}");
                    assert!(err.message.contains(words), "{range}: {err}");
                }
            }
        }
    }
}
