//! `cluster_nodes`: every member of the cluster view once, with the roles
//! it is a member of, for cookbooks that declare `cluster: all` (a
//! monitoring host lists each node once, however many roles it has). Built
//! from `cluster.<role>` the same way on the server and in `cm-agent apply
//! --cluster FILE`, so both give the same shape.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Each member of `cluster` (role → list of members) once, by name, with
/// `roles` (sorted) and without `ordinal` (an ordinal is per role: read it
/// from `cluster.<role>`). Members without a string `name` are left out.
pub fn of(cluster: &Map<String, Value>) -> Value {
    let mut nodes: BTreeMap<&str, (Map<String, Value>, Vec<&str>)> = BTreeMap::new();
    for (role, members) in cluster {
        for member in members.as_array().into_iter().flatten() {
            let Some(fields) = member.as_object() else {
                continue;
            };
            let Some(name) = fields.get("name").and_then(Value::as_str) else {
                continue;
            };
            let entry = nodes.entry(name).or_insert_with(|| {
                let mut first = fields.clone();
                first.remove("ordinal");
                (first, Vec::new())
            });
            entry.1.push(role);
        }
    }
    Value::Array(
        nodes
            .into_values()
            .map(|(mut fields, mut roles)| {
                roles.sort();
                fields.insert("roles".into(), Value::from(roles));
                Value::Object(fields)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_node_in_two_roles_is_listed_once_with_both() {
        let cluster = json!({
            "web": [{"name": "b", "ordinal": 0, "address": "10.0.0.2"},
                    {"name": "a", "ordinal": 1, "address": "10.0.0.1"}],
            "cache": [{"name": "a", "ordinal": 0, "address": "10.0.0.1"}, {"ordinal": 1}],
            "empty": [],
        });
        let nodes = of(cluster.as_object().unwrap());
        assert_eq!(
            nodes,
            json!([
                {"name": "a", "address": "10.0.0.1", "roles": ["cache", "web"]},
                {"name": "b", "address": "10.0.0.2", "roles": ["web"]},
            ])
        );
    }
}
