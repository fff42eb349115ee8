//! A cookbook reads only the roles of the cluster view its metadata
//! declares (`cluster:`): plans carry exactly those, so reading another is
//! refused when the cookbook is loaded (and so when it is pushed), naming
//! the file and the role, instead of failing on nodes.
//!
//! Reads are found where the view can be read: inside `{{…}}` in templates
//! and in recipe strings, in `when:` conditions and `for_each:` paths. A
//! lookup by a computed name (`lookup cluster attrs.role`) cannot be told
//! before the run and is left to it.

use std::collections::BTreeSet;
use std::path::Path;

use crate::error::{LoadError, Pos};
use crate::metadata::ClusterRoles;
use crate::recipe::{ForEach, RecipeEntry};

use super::Cookbook;

/// `cluster_nodes` (every member, any role) stands for this role name in
/// what [`roles_read`] returns: only `cluster: all` allows it.
const EVERY_ROLE: &str = "*";

/// The role names `cluster.NAME` reads in `text` (anywhere in it), and
/// [`EVERY_ROLE`] for a read of `cluster_nodes`.
fn roles_read(text: &str) -> BTreeSet<&str> {
    let mut roles = BTreeSet::new();
    for (at, _) in text.match_indices("cluster_nodes") {
        let before = text[..at].chars().next_back();
        let after = text[at + "cluster_nodes".len()..].chars().next();
        let word = |c: Option<char>| {
            c.is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        };
        if !word(before) && before != Some('.') && !word(after) {
            roles.insert(EVERY_ROLE);
        }
    }
    for (at, _) in text.match_indices("cluster.") {
        // `cluster` must be a whole name: not `mycluster.x` or `a.cluster.x`.
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            continue;
        }
        let rest = &text[at + "cluster.".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
            .unwrap_or(rest.len());
        if end > 0 {
            roles.insert(&rest[..end]);
        }
    }
    roles
}

/// Where `cluster.ROLE` first stands in `text` (1-based line and column).
fn line_of(text: &str, role: &str) -> Pos {
    let needle = match role {
        EVERY_ROLE => "cluster_nodes".to_string(),
        role => format!("cluster.{role}"),
    };
    let Some(at) = text.find(&needle) else {
        return Pos::default();
    };
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
    Pos::new(line as u64, column as u64)
}

/// The parts of `text` inside `{{` … `}}`, comments (`{{! … }}`) left out.
fn mustaches(text: &str) -> impl Iterator<Item = &str> {
    text.split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}").map(|(inside, _)| inside))
        .filter(|inside| !inside.starts_with('!'))
}

fn in_mustaches(text: &str) -> BTreeSet<&str> {
    mustaches(text).flat_map(roles_read).collect()
}

fn strings<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        serde_json::Value::Object(m) => m.values().for_each(|i| strings(i, out)),
        _ => {}
    }
}

/// Refuse a read of a role `cookbook`'s metadata does not declare.
pub(super) fn check(
    cookbook: &Cookbook,
    at: impl Fn(&str) -> std::path::PathBuf,
) -> Result<(), LoadError> {
    let declared = &cookbook.metadata.cluster;
    if matches!(declared, ClusterRoles::All) {
        return Ok(());
    }
    let refuse = |file: &Path, pos: Pos, role: &str| {
        if role == EVERY_ROLE {
            return Err(LoadError::new(
                file,
                pos,
                "reads cluster_nodes, every member of every role: add `cluster: all` to metadata.yaml",
            ));
        }
        let hint = match declared {
            ClusterRoles::Roles(r) if !r.is_empty() => {
                format!("cluster: [{}, {role}]", r.join(", "))
            }
            _ => format!("cluster: [{role}]"),
        };
        Err(LoadError::new(
            file,
            pos,
            format!(
                "reads cluster.{role}, which metadata.yaml does not declare: plans carry only \
                 the declared roles (add `{hint}` to metadata.yaml)"
            ),
        ))
    };
    for (path, text) in &cookbook.templates {
        if let Some(role) = in_mustaches(text).into_iter().find(|r| !declared.reads(r)) {
            return refuse(&at(&format!("templates/{path}")), line_of(text, role), role);
        }
    }
    for (name, entries) in &cookbook.recipes {
        for entry in entries {
            let RecipeEntry::Resource(decl) = entry else {
                continue;
            };
            let mut texts = vec![decl.name.as_str()];
            texts.extend(
                [&decl.only_if, &decl.not_if, &decl.creates]
                    .into_iter()
                    .flatten()
                    .map(String::as_str),
            );
            for v in decl.properties.values() {
                strings(v, &mut texts);
            }
            let mut read: BTreeSet<&str> = texts.into_iter().flat_map(in_mustaches).collect();
            if let Some(when) = &decl.when {
                read.extend(roles_read(when.source()));
            }
            if let Some(ForEach::Path(p)) = &decl.for_each {
                read.extend(roles_read(p));
            }
            if let Some(role) = read.into_iter().find(|r| !declared.reads(r)) {
                return refuse(&at(&format!("recipes/{name}.yaml")), decl.at, role);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cookbook::CookbookFile;
    use crate::yaml::Reading;

    fn load(
        metadata: &str,
        rel: &str,
        text: &str,
        reading: Reading,
    ) -> Result<Cookbook, LoadError> {
        let file = |t: &str| CookbookFile {
            bytes: t.as_bytes().to_vec(),
            mode: 0o644,
        };
        let files = BTreeMap::from([
            ("metadata.yaml".to_string(), file(metadata)),
            (rel.to_string(), file(text)),
        ]);
        Cookbook::from_files_with(Path::new("web"), files, reading)
    }

    #[test]
    fn reading_an_undeclared_role_is_refused_naming_the_file_line_and_fix() {
        let plain = "name: web\nversion: 1.0.0\n";
        let all = "name: web\nversion: 1.0.0\ncluster: all\n";
        let template =
            "# cluster.name in text is no read\nservers {{addresses cluster.cache 11211 \",\"}}\n";
        let err = load(plain, "templates/app.conf.hbs", template, Reading::Strict).unwrap_err();
        assert_eq!(err.file, Path::new("web/templates/app.conf.hbs"));
        assert_eq!((err.pos.line, err.pos.column), (2, 21));
        assert!(err.message.contains("reads cluster.cache"), "{err}");
        assert!(err.message.contains("add `cluster: [cache]`"), "{err}");

        let recipe = "- file: /etc/x\n- file: /etc/peers\n  content: x\n  for_each: cluster.db\n";
        let some = "name: web\nversion: 1.0.0\ncluster: [cache]\n";
        let err = load(some, "recipes/default.yaml", recipe, Reading::Strict).unwrap_err();
        assert_eq!(err.pos.line, 2, "{err}");
        assert!(err.message.contains("add `cluster: [cache, db]`"), "{err}");
        let err = load(
            some,
            "recipes/default.yaml",
            "- file: /etc/x\n  when: cluster.db[0].reachable\n",
            Reading::Strict,
        )
        .unwrap_err();
        assert!(err.message.contains("reads cluster.db"), "{err}");

        // Every member of every role takes `all`.
        let hosts =
            "- file: \"/etc/nagios/{{item.name}}.cfg\"\n  content: x\n  for_each: cluster_nodes\n";
        let err = load(some, "recipes/default.yaml", hosts, Reading::Strict).unwrap_err();
        assert!(err.message.contains("add `cluster: all`"), "{err}");

        // Declared, or `all`, or a version pushed before 0.3.0: loads.
        assert!(load(all, "recipes/default.yaml", hosts, Reading::Strict).is_ok());
        assert!(load(some, "templates/app.conf.hbs", template, Reading::Strict).is_ok());
        assert!(load(all, "recipes/default.yaml", recipe, Reading::Strict).is_ok());
        assert!(load(plain, "templates/app.conf.hbs", template, Reading::AsBefore).is_ok());
    }

    #[test]
    fn reads_are_whole_names_after_cluster() {
        let found: Vec<_> =
            roles_read("cluster.web[0] mycluster.x a.cluster.y (first cluster.db-1 3)")
                .into_iter()
                .collect();
        assert_eq!(found, ["db-1", "web"]);
        let inside: Vec<_> = in_mustaches(
            "cluster.name: x\n{{! about cluster.web }}{{#each cluster.cache}}{{/each}}",
        )
        .into_iter()
        .collect();
        assert_eq!(inside, ["cache"], "literal text and comments are not reads");
    }
}
