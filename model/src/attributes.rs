//! Attribute precedence, in one line: cookbook defaults < environment < roles
//! (in run-list order, the later role wins) < node. Maps merge key by key;
//! lists and scalars replace. Facts live apart under `node.` and secrets under
//! `secrets.`: neither is ever an attribute.
//!
//! Every layer is kept, so `explain` can say where a value came from.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a layer of attributes came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Source {
    /// A cookbook's `attributes.yaml`.
    Cookbook(String),
    Environment(String),
    Role(String),
    /// Set on the node by an admin (`cmctl node set`), or `--attributes` locally.
    Node(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Cookbook(n) => write!(f, "cookbook {n} (default)"),
            Source::Environment(n) => write!(f, "environment {n}"),
            Source::Role(n) => write!(f, "role {n}"),
            Source::Node(n) => write!(f, "node {n}"),
        }
    }
}

/// One layer of attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub source: Source,
    pub values: Map<String, Value>,
}

/// The layers in precedence order, lowest first, and their merge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attributes {
    pub layers: Vec<Layer>,
    pub merged: Map<String, Value>,
}

/// One layer's say on a key, for `explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub source: Source,
    pub value: Value,
    /// Whether this layer's value is (part of) the merged result.
    pub wins: bool,
}

impl Attributes {
    /// Merge `layers`, given lowest precedence first.
    pub fn merge(layers: Vec<Layer>) -> Attributes {
        let mut merged = Map::new();
        for layer in &layers {
            merge_into(&mut merged, &layer.values);
        }
        Attributes { layers, merged }
    }

    /// Look up a dotted key (`memcached.memory_mb`) in the merged result.
    pub fn get(&self, key: &str) -> Option<&Value> {
        lookup(&self.merged, key)
    }

    /// Every layer that sets `key`, lowest first, and which of them shows in the result.
    /// For a map, every layer that adds to it wins; for a list or scalar, the last one.
    pub fn explain(&self, key: &str) -> Vec<Contribution> {
        let mut out: Vec<Contribution> = self
            .layers
            .iter()
            .filter_map(|l| {
                lookup(&l.values, key).map(|v| Contribution {
                    source: l.source.clone(),
                    value: v.clone(),
                    wins: false,
                })
            })
            .collect();
        // Walking down from the top: maps keep merging until a non-map replaces all below.
        for c in out.iter_mut().rev() {
            c.wins = true;
            if !c.value.is_object() {
                break;
            }
        }
        // A lower map under a higher scalar does not win; a lower scalar under a map does not either.
        if let Some(top) = out.last()
            && top.value.is_object()
        {
            for c in out.iter_mut() {
                c.wins = c.value.is_object();
            }
        }
        out
    }
}

/// Deep-merge `top` onto `base`: maps key by key, everything else replaces.
pub fn merge_into(base: &mut Map<String, Value>, top: &Map<String, Value>) {
    for (k, v) in top {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(t)) => merge_into(b, t),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

fn lookup<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let first = map.get(parts.next()?)?;
    parts.try_fold(first, |v, p| v.as_object()?.get(p))
}

/// Set a dotted key in a map, creating maps on the way (`cmctl node set`).
pub fn set_path(map: &mut Map<String, Value>, key: &str, value: Value) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("{key:?} is not a dotted attribute key"));
    }
    let (last, parents) = parts.split_last().expect("split yields at least one part");
    let mut cur = map;
    for p in parents {
        let slot = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        cur = slot.as_object_mut().expect("slot was just made a map");
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn layer(source: Source, v: Value) -> Layer {
        Layer {
            source,
            values: v.as_object().cloned().unwrap(),
        }
    }

    fn stack() -> Attributes {
        Attributes::merge(vec![
            layer(
                Source::Cookbook("memcached".into()),
                json!({"memcached": {"port": 11211, "memory_mb": 64, "flags": ["-v"]}}),
            ),
            layer(
                Source::Environment("production".into()),
                json!({"memcached": {"memory_mb": 512}}),
            ),
            layer(
                Source::Role("cache".into()),
                json!({"memcached": {"flags": ["-t", "4"]}}),
            ),
            layer(
                Source::Role("big".into()),
                json!({"memcached": {"memory_mb": 2048}}),
            ),
            layer(
                Source::Node("n1".into()),
                json!({"memcached": {"port": 11311}}),
            ),
        ])
    }

    #[test]
    fn later_layers_win_maps_merge_lists_replace() {
        let a = stack();
        assert_eq!(a.get("memcached.port"), Some(&json!(11311)));
        assert_eq!(a.get("memcached.memory_mb"), Some(&json!(2048)));
        assert_eq!(a.get("memcached.flags"), Some(&json!(["-t", "4"])));
    }

    #[test]
    fn explain_names_every_layer_and_the_winner() {
        let e = stack().explain("memcached.memory_mb");
        let who: Vec<_> = e.iter().map(|c| (c.source.to_string(), c.wins)).collect();
        assert_eq!(
            who,
            [
                ("cookbook memcached (default)".to_string(), false),
                ("environment production".to_string(), false),
                ("role big".to_string(), true)
            ]
        );
        let maps = stack().explain("memcached");
        assert!(maps.iter().all(|c| c.wins));
    }

    #[test]
    fn set_path_creates_maps() {
        let mut m = Map::new();
        set_path(&mut m, "a.b.c", json!(1)).unwrap();
        assert_eq!(Value::Object(m), json!({"a": {"b": {"c": 1}}}));
        assert!(set_path(&mut Map::new(), "a..b", json!(1)).is_err());
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,3}".prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-c]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn map() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::btree_map("[a-c]", value(), 0..4).prop_map(|m| m.into_iter().collect())
    }

    fn merged(layers: &[&Map<String, Value>]) -> Map<String, Value> {
        let mut out = Map::new();
        for l in layers {
            merge_into(&mut out, l);
        }
        out
    }

    proptest! {
        // Not associative on purpose: a scalar in a middle layer cuts off the maps below it.
        #[test]
        fn keys_only_in_lower_layers_survive(a in map(), b in map()) {
            let m = merged(&[&a, &b]);
            for (k, v) in &a {
                if !b.contains_key(k) {
                    prop_assert_eq!(m.get(k), Some(v));
                }
            }
            for k in b.keys() {
                prop_assert!(m.contains_key(k));
            }
        }

        #[test]
        fn top_layer_leaves_always_win(a in map(), b in map()) {
            let m = merged(&[&a, &b]);
            for (k, v) in &b {
                if !v.is_object() {
                    prop_assert_eq!(m.get(k), Some(v));
                }
            }
        }

        #[test]
        fn merging_a_layer_twice_changes_nothing(a in map(), b in map()) {
            prop_assert_eq!(merged(&[&a, &b, &b]), merged(&[&a, &b]));
        }
    }
}
