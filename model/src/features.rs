//! Which cm-agent a cookbook needs: the cookbook format's features newer
//! than the first agent, each with the agent version that first compiles it.
//!
//! The server computes [`required_agent`] when a version is pushed, stores
//! it with the version and carries it in plans, so it never hands a plan to
//! an agent too old to compile it (the node keeps its last good plan and
//! says why), and an agent refuses to compile a cookbook that needs a newer
//! one. A change that adds to the format adds one line to [`FEATURES`]
//! (and, for a new kind of use, one arm to [`Usage`]).

use std::collections::BTreeSet;
use std::fmt;

use semver::Version;

use crate::cookbook::Cookbook;
use crate::recipe::{ForEach, RecipeEntry, ResourceDecl};

/// The agent every cookbook can be compiled by, at the least.
pub const FIRST_AGENT: &str = "0.1.0";

/// How a cookbook uses a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A template or a `{{…}}` string calls this helper.
    Helper(&'static str),
    /// A resource of this type.
    ResourceType(&'static str),
    /// A resource sets this key (a meta key or a property).
    ResourceKey(&'static str),
    /// `for_each: {range: [FROM, TO]}`.
    ForEachRange,
    /// `cluster:` in `metadata.yaml` (older agents refuse the key).
    MetadataCluster,
}

/// A feature of the cookbook format and the agent that first compiles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// What it is, for messages: `for_each: {range: [FROM, TO]}`.
    pub what: &'static str,
    /// The first cm-agent version that compiles it (semver).
    pub since: &'static str,
    pub usage: Usage,
}

/// Every feature newer than [`FIRST_AGENT`]. One line per feature.
pub const FEATURES: &[Feature] = &[
    Feature {
        what: "for_each: {range: [FROM, TO]}",
        since: "0.2.0",
        usage: Usage::ForEachRange,
    },
    Feature {
        what: "the pad helper",
        since: "0.2.0",
        usage: Usage::Helper("pad"),
    },
    Feature {
        what: "the first helper",
        since: "0.3.0",
        usage: Usage::Helper("first"),
    },
    Feature {
        what: "the addresses helper",
        since: "0.3.0",
        usage: Usage::Helper("addresses"),
    },
    Feature {
        what: "the cassandra_token helper",
        since: "0.3.0",
        usage: Usage::Helper("cassandra_token"),
    },
    Feature {
        what: "cluster: in metadata.yaml",
        since: "0.3.0",
        usage: Usage::MetadataCluster,
    },
    Feature {
        what: "the htdigest helper",
        since: "0.4.0",
        usage: Usage::Helper("htdigest"),
    },
    Feature {
        what: "the deploy resource type",
        since: "0.4.0",
        usage: Usage::ResourceType("deploy"),
    },
];

/// The lowest agent that compiles a cookbook, and the features that say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub agent: Version,
    /// The features that need exactly [`Requirement::agent`] (empty when it
    /// is [`FIRST_AGENT`]).
    pub because: Vec<&'static Feature>,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cm-agent >= {}", self.agent)?;
        if !self.because.is_empty() {
            let what: Vec<&str> = self.because.iter().map(|f| f.what).collect();
            write!(f, " (for {})", what.join(", "))?;
        }
        Ok(())
    }
}

fn since(feature: &Feature) -> Version {
    Version::parse(feature.since).expect("FEATURES hold semver versions (a unit test checks)")
}

/// The lowest cm-agent version that compiles `cookbook`.
pub fn required_agent(cookbook: &Cookbook) -> Requirement {
    let used = Used::of(cookbook);
    let mut req = Requirement {
        agent: Version::parse(FIRST_AGENT).expect("FIRST_AGENT is semver"),
        because: Vec::new(),
    };
    for feature in FEATURES.iter().filter(|f| used.uses(f.usage)) {
        let v = since(feature);
        if v > req.agent {
            req = Requirement {
                agent: v,
                because: vec![feature],
            };
        } else if v == req.agent {
            req.because.push(feature);
        }
    }
    req
}

/// What a cookbook uses, gathered once.
#[derive(Default)]
struct Used {
    helpers: BTreeSet<&'static str>,
    types: BTreeSet<&'static str>,
    keys: BTreeSet<String>,
    for_each_range: bool,
    metadata_cluster: bool,
}

impl Used {
    fn of(cookbook: &Cookbook) -> Used {
        let mut used = Used {
            metadata_cluster: !cookbook.metadata.cluster.is_none(),
            ..Used::default()
        };
        for text in cookbook.templates.values() {
            used.helpers.extend(crate::template::helpers_called(text));
        }
        let decls = cookbook.recipes.values().flatten().filter_map(|e| match e {
            RecipeEntry::Resource(d) => Some(d.as_ref()),
            RecipeEntry::Include { .. } => None,
        });
        for decl in decls {
            used.resource(decl);
        }
        used
    }

    fn resource(&mut self, decl: &ResourceDecl) {
        self.types.insert(decl.kind.name);
        self.keys
            .extend(decl.key_pos.iter().map(|(k, _)| k.clone()));
        self.for_each_range |= matches!(decl.for_each, Some(ForEach::Range { .. }));
        let mut strings: Vec<&str> = vec![decl.name.as_str()];
        strings.extend(
            [&decl.only_if, &decl.not_if, &decl.creates]
                .into_iter()
                .flatten()
                .map(String::as_str),
        );
        strings.extend(
            decl.notifies
                .iter()
                .chain(&decl.subscribes)
                .map(|n| n.target_name.as_str()),
        );
        for text in strings {
            self.helpers.extend(crate::template::helpers_called(text));
        }
        for value in decl.properties.values() {
            self.value_helpers(value);
        }
    }

    fn value_helpers(&mut self, v: &serde_json::Value) {
        match v {
            serde_json::Value::String(s) => {
                self.helpers.extend(crate::template::helpers_called(s));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| self.value_helpers(i)),
            serde_json::Value::Object(m) => m.values().for_each(|i| self.value_helpers(i)),
            _ => {}
        }
    }

    fn uses(&self, usage: Usage) -> bool {
        match usage {
            Usage::Helper(name) => self.helpers.contains(name),
            Usage::ResourceType(name) => self.types.contains(name),
            Usage::ResourceKey(key) => self.keys.contains(key),
            Usage::ForEachRange => self.for_each_range,
            Usage::MetadataCluster => self.metadata_cluster,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::cookbook::CookbookFile;

    fn cookbook(files: &[(&str, &str)]) -> Cookbook {
        let mut all = BTreeMap::from([(
            "metadata.yaml".to_string(),
            CookbookFile {
                bytes: b"name: c\nversion: 1.0.0\n".to_vec(),
                mode: 0o644,
            },
        )]);
        for (path, text) in files {
            all.insert(
                path.to_string(),
                CookbookFile {
                    bytes: text.as_bytes().to_vec(),
                    mode: 0o644,
                },
            );
        }
        Cookbook::from_files(Path::new("c"), all).unwrap()
    }

    /// What cm-agent 0.1.0 compiles; never grows.
    const FIRST_AGENT_TYPES: &[&str] = &[
        "file",
        "directory",
        "template",
        "link",
        "package",
        "service",
        "user",
        "group",
        "execute",
        "cron",
        "remote_file",
        "apt_repository",
    ];
    const FIRST_AGENT_HELPERS: &[&str] = &[
        "if",
        "unless",
        "each",
        "with",
        "lookup",
        "raw",
        "log",
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "and",
        "or",
        "not",
        "len",
        "join",
        "default",
        "json",
        "indent",
        "shell_quote",
        "add",
        "sub",
        "mul",
        "div",
        "mod",
        "min",
        "max",
        "upper",
        "lower",
        "replace",
    ];

    /// A type or helper added after the first agent without its line in
    /// FEATURES would reach older agents, which fail on it instead of
    /// keeping their last good plan.
    #[test]
    fn every_type_and_helper_newer_than_the_first_agent_is_a_feature() {
        let listed = |usage: Usage| FEATURES.iter().any(|f| f.usage == usage);
        for t in crate::resources::TYPES {
            assert!(
                FIRST_AGENT_TYPES.contains(&t.name) || listed(Usage::ResourceType(t.name)),
                "resource type {} is new: add it to FEATURES with the agent version that first has it",
                t.name
            );
        }
        for h in crate::template::helper_names() {
            assert!(
                FIRST_AGENT_HELPERS.contains(&h) || listed(Usage::Helper(h)),
                "helper {h} is new: add it to FEATURES with the agent version that first has it"
            );
        }
    }

    #[test]
    fn every_feature_names_a_semver_newer_than_the_first_agent() {
        let first = Version::parse(FIRST_AGENT).unwrap();
        for f in FEATURES {
            assert!(since(f) > first, "{}", f.what);
        }
    }

    /// An agent refuses a cookbook that needs a newer agent than itself: a
    /// feature marked newer than the version that ships it would make the
    /// agent refuse its own feature.
    #[test]
    fn every_feature_ships_in_this_version_or_before() {
        let this = Version::parse(env!("CARGO_PKG_VERSION")).unwrap();
        for f in FEATURES {
            assert!(
                since(f) <= this,
                "{} is marked new in {}, but this is {this}: bump the workspace version",
                f.what,
                f.since
            );
        }
    }

    #[test]
    fn a_cookbook_of_old_features_needs_the_first_agent() {
        let c = cookbook(&[(
            "recipes/default.yaml",
            "- directory: '/srv/{{item}}'\n  for_each: [a, b]\n  mode: '{{default attrs.m \"0755\"}}'\n",
        )]);
        let req = required_agent(&c);
        assert_eq!(req.agent.to_string(), FIRST_AGENT);
        assert!(req.because.is_empty());
        assert_eq!(req.to_string(), "cm-agent >= 0.1.0");
    }

    #[test]
    fn a_cluster_declaration_needs_0_3_0() {
        let declared = cookbook(&[(
            "metadata.yaml",
            "name: c\nversion: 1.0.0\ncluster: [memcached]\n",
        )]);
        let req = required_agent(&declared);
        assert_eq!(
            req.to_string(),
            "cm-agent >= 0.3.0 (for cluster: in metadata.yaml)"
        );
    }

    #[test]
    fn a_deploy_resource_needs_0_4_0() {
        let c = cookbook(&[
            (
                "recipes/default.yaml",
                "- deploy: /srv/app\n  file: app.tar.gz\n",
            ),
            ("files/app.tar.gz", "not read here"),
        ]);
        assert_eq!(
            required_agent(&c).to_string(),
            "cm-agent >= 0.4.0 (for the deploy resource type)"
        );
    }

    #[test]
    fn a_range_or_pad_anywhere_needs_0_2_0() {
        for files in [
            vec![(
                "recipes/default.yaml",
                "- directory: '/srv/{{item}}'\n  for_each: {range: [1, 3]}\n",
            )],
            vec![(
                "recipes/default.yaml",
                "- directory: '/srv/{{pad item 3}}'\n  for_each: [1, 2]\n",
            )],
            vec![(
                "recipes/other.yaml",
                "- file: /etc/x\n  content: \"{{#each attrs.l}}{{pad this 2}}{{/each}}\"\n",
            )],
            vec![(
                "recipes/default.yaml",
                "- execute: /bin/true\n  only_if: 'test {{pad 1 2}} = 01'\n",
            )],
            vec![("templates/t.hbs", "{{#if a}}{{pad attrs.n 4}}{{/if}}\n")],
        ] {
            let req = required_agent(&cookbook(&files));
            assert_eq!(req.agent.to_string(), "0.2.0", "{files:?}");
            assert_eq!(req.because.len(), 1, "{files:?}");
        }
        let both = cookbook(&[(
            "recipes/default.yaml",
            "- directory: '/srv/{{pad item 3}}'\n  for_each: {range: [1, 3]}\n",
        )]);
        assert_eq!(
            required_agent(&both).to_string(),
            "cm-agent >= 0.2.0 (for for_each: {range: [FROM, TO]}, the pad helper)"
        );
    }

    #[test]
    fn a_cluster_helper_anywhere_needs_0_3_0_whatever_older_features_it_also_uses() {
        // Reading the view needs declaring the roles read (itself 0.3.0).
        const DECLARES: &str = "name: c\nversion: 1.0.0\ncluster: all\n";
        for files in [
            vec![
                ("metadata.yaml", DECLARES),
                (
                    "templates/seeds.hbs",
                    "seeds: \"{{addresses (first cluster.cassandra 3) \"\" \",\"}}\"\n",
                ),
            ],
            vec![(
                "recipes/default.yaml",
                "- file: /etc/token\n  content: '{{cassandra_token 0 3 \"Murmur3Partitioner\"}}'\n",
            )],
            vec![
                ("metadata.yaml", DECLARES),
                (
                    "recipes/default.yaml",
                    "- directory: '/srv/{{pad item 2}}'\n  for_each: {range: [1, 3]}\n  only_if: 'test -n \"{{addresses cluster.m 11211 \",\" reachable=true}}\"'\n",
                ),
            ],
        ] {
            let req = required_agent(&cookbook(&files));
            assert_eq!(req.agent.to_string(), "0.3.0", "{files:?}");
        }
        let seeds = cookbook(&[
            ("metadata.yaml", DECLARES),
            (
                "templates/seeds.hbs",
                "{{#each (first cluster.cassandra 3)}}{{address}} {{/each}}{{addresses cluster.cassandra \"\" \",\"}}\n",
            ),
        ]);
        assert_eq!(
            required_agent(&seeds).to_string(),
            "cm-agent >= 0.3.0 (for the first helper, the addresses helper, cluster: in metadata.yaml)"
        );
    }
}
