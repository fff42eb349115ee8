//! Whether a change leaves nodes without a plan: the pure half of the plan
//! check (the store's half, `store::plan_guard`, reads the rows inside the
//! change's transaction and refuses or audits).
//!
//! The rows as stored are the world before the change; the change applied
//! to them in memory is the world after it. Each group of nodes (one
//! distinct environment and role list) is resolved after the change, and,
//! only when that fails, before it: a group that resolved before and not
//! after is broken by the change; one that failed before too was already in
//! plan error and does not block. Resolution is [`super::resolve`] itself,
//! so the check and GetPlan cannot disagree. Template errors that need a
//! node's facts are not resolution errors: they stay the node's to report.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use cm_model::role::{Environment, Role};
use cm_model::yaml::Reading;
use semver::Version;
use serde_json::Map;

use super::{Catalog, CatalogEntry, NodeView, PlanError, PlanInputs, resolve};
use crate::store::{BrokenGroup, CookbookVersionRow, PlanRows};

/// A change that can alter plans, as the check applies it.
#[derive(Debug, Clone)]
pub enum PlanChange {
    /// `role set`: the role as it will be stored.
    SetRole(Role),
    /// `env set`: the environment as it will be stored.
    SetEnvironment(Environment),
    /// `cookbook delete`.
    DeleteCookbook { name: String, version: Version },
    /// `node assign`/`unassign`/`move`: the world stays, the node's roles
    /// or environment move (the store's group says from what to what).
    OneNode,
}

/// Why the rows could not be read as a world (a stored document that no
/// longer parses: edited by hand or by a newer server).
#[derive(Debug, thiserror::Error)]
#[error("{what} {name} as stored does not parse ({column}): {error}")]
pub struct UnreadableRow {
    pub what: &'static str,
    pub name: String,
    pub column: &'static str,
    pub error: String,
}

/// What resolution reads besides the node: roles, environments and the
/// cookbook versions (without attributes, which cannot make resolution
/// fail).
#[derive(Debug, Clone, Default)]
pub struct World {
    pub roles: BTreeMap<String, Role>,
    pub environments: BTreeMap<String, Environment>,
    pub catalog: Catalog,
}

impl World {
    /// The world the stored rows describe.
    pub fn from_rows(rows: &PlanRows) -> Result<World, UnreadableRow> {
        let unreadable = |what, name: &str, column, error: String| UnreadableRow {
            what,
            name: name.to_string(),
            column,
            error,
        };
        let mut world = World::default();
        // As GetPlan reads them: as stored (State::roles says why).
        for d in &rows.roles {
            let role = Role::parse_with(
                Path::new(&format!("roles/{}", d.name)),
                &d.yaml,
                Reading::AsBefore,
            )
            .map_err(|e| unreadable("role", &d.name, "yaml", e.to_string()))?;
            world.roles.insert(role.name.clone(), role);
        }
        for d in &rows.environments {
            let env = Environment::parse_with(
                Path::new(&format!("environments/{}", d.name)),
                &d.yaml,
                Reading::AsBefore,
            )
            .map_err(|e| unreadable("environment", &d.name, "yaml", e.to_string()))?;
            world.environments.insert(env.name.clone(), env);
        }
        for row in &rows.cookbooks {
            let key = format!("{}@{}", row.name, row.version);
            let entry = catalog_entry(row, Map::new())
                .map_err(|e| unreadable("cookbook version", &key, "depends_json", e))?;
            world
                .catalog
                .cookbooks
                .entry(row.name.clone())
                .or_default()
                .push(entry);
        }
        Ok(world)
    }

    /// This world with `change` made.
    pub fn with(&self, change: &PlanChange) -> World {
        let mut after = self.clone();
        match change {
            PlanChange::SetRole(role) => {
                after.roles.insert(role.name.clone(), role.clone());
            }
            PlanChange::SetEnvironment(env) => {
                after.environments.insert(env.name.clone(), env.clone());
            }
            PlanChange::DeleteCookbook { name, version } => {
                if let Some(versions) = after.catalog.cookbooks.get_mut(name) {
                    versions.retain(|e| &e.version != version);
                    if versions.is_empty() {
                        after.catalog.cookbooks.remove(name);
                    }
                }
            }
            PlanChange::OneNode => {}
        }
        after
    }

    /// Resolve a node of `environment` with `roles` (an environment nobody
    /// has set is empty, as for GetPlan).
    pub fn resolve(
        &self,
        node: &str,
        environment: &str,
        roles: &[String],
    ) -> Result<(), PlanError> {
        let default_env;
        let env = match self.environments.get(environment) {
            Some(e) => e,
            None => {
                default_env = Environment::default_named(environment);
                &default_env
            }
        };
        let view = NodeView {
            name: node.to_string(),
            environment: environment.to_string(),
            roles: roles.to_vec(),
            attributes: Map::new(),
            // A change is judged on what the server can resolve; a node's
            // agent being too old is its own plan error, not the change's.
            agent_version: None,
            member: Default::default(),
        };
        resolve(&PlanInputs {
            node: &view,
            environment: env,
            roles: &self.roles,
            catalog: &self.catalog,
            secrets: &[],
            // Resolution does not read the view.
            cluster: &crate::cluster_view::empty(std::iter::empty()),
        })
        .map(|_| ())
    }
}

/// A catalog entry for a stored version, with the given attributes.
pub fn catalog_entry(
    row: &CookbookVersionRow,
    attributes: Map<String, serde_json::Value>,
) -> Result<CatalogEntry, String> {
    let version = Version::parse(&row.version).map_err(|e| e.to_string())?;
    let depends = row
        .depends
        .iter()
        .map(|(k, v)| semver::VersionReq::parse(v).map(|r| (k.clone(), r)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("depends of {}@{}: {e}", row.name, row.version))?;
    Ok(CatalogEntry {
        version,
        description: row.description.clone(),
        depends,
        manifest: row.manifest.clone(),
        attributes,
        cluster: row.cluster.clone(),
        min_agent: match row.min_agent.as_str() {
            "" => None,
            v => {
                Some(Version::parse(v).map_err(|e| {
                    format!("min_agent of {}@{}: {v:?}: {e}", row.name, row.version)
                })?)
            }
        },
    })
}

/// The groups of `rows` that `change` breaks, with the reason for each.
/// `resolutions` counts every resolution made (the check's cost: at most
/// two per group, usually one, whatever the number of nodes).
pub fn broken_groups(
    rows: &PlanRows,
    change: &PlanChange,
    resolutions: &AtomicU64,
) -> Result<Vec<BrokenGroup>, UnreadableRow> {
    let before = World::from_rows(rows)?;
    let after = before.with(change);
    let mut outcomes = Outcomes {
        worlds: [before, after],
        memo: HashMap::new(),
        resolutions,
    };
    let mut broken = Vec::new();
    for (i, g) in rows.groups.iter().enumerate() {
        let Err(reason) = outcomes.get(AFTER, &g.environment, &g.roles_after) else {
            continue;
        };
        if outcomes
            .get(BEFORE, &g.environment_before, &g.roles_before)
            .is_ok()
        {
            broken.push(BrokenGroup { group: i, reason });
        }
    }
    Ok(broken)
}

const BEFORE: usize = 0;
const AFTER: usize = 1;

/// Resolution outcomes by world and (environment, roles): two groups may
/// share a pair on one side (a node moving into a group others hold), and
/// each pair is resolved once per world.
struct Outcomes<'r> {
    worlds: [World; 2],
    memo: HashMap<(usize, &'r str, &'r [String]), Result<(), String>>,
    resolutions: &'r AtomicU64,
}

impl<'r> Outcomes<'r> {
    fn get(
        &mut self,
        world: usize,
        environment: &'r str,
        roles: &'r [String],
    ) -> Result<(), String> {
        let key = (world, environment, roles);
        if let Some(r) = self.memo.get(&key) {
            return r.clone();
        }
        self.resolutions.fetch_add(1, Ordering::Relaxed);
        let r = self.worlds[world]
            .resolve("", environment, roles)
            .map_err(|e| e.reason());
        self.memo.insert(key, r.clone());
        r
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cm_model::manifest::Manifest;

    use super::*;
    use crate::store::{DocKind, Document, NodeGroup};

    fn doc(kind: DocKind, yaml: &str) -> Document {
        let name = yaml
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("name: "))
            .expect("the first line names it")
            .to_string();
        Document {
            kind,
            name,
            yaml: yaml.to_string(),
            revision: 1,
            updated_at: 0,
            updated_by: "test".into(),
        }
    }

    fn version(name: &str, v: &str) -> CookbookVersionRow {
        CookbookVersionRow {
            name: name.into(),
            version: v.into(),
            description: String::new(),
            depends: BTreeMap::new(),
            manifest: Manifest::default(),
            manifest_digest: String::new(),
            created_at: 0,
            pushed_by: "test".into(),
            min_agent: "0.1.0".into(),
            cluster: Default::default(),
        }
    }

    fn group(env: &str, before: &[&str], after: &[&str], nodes: i64) -> NodeGroup {
        let list = |r: &[&str]| r.iter().map(|s| s.to_string()).collect();
        NodeGroup {
            environment_before: env.into(),
            environment: env.into(),
            roles_before: list(before),
            roles_after: list(after),
            nodes,
        }
    }

    /// web runs demo (1.0.0 and 1.1.0 pushed); db's role pins demo to a
    /// version that does not exist, so db nodes are in plan error already.
    fn rows(groups: Vec<NodeGroup>) -> PlanRows {
        PlanRows {
            roles: vec![
                doc(DocKind::Role, "name: web\nrun_list: [demo]\n"),
                doc(
                    DocKind::Role,
                    "name: db\nrun_list: [demo]\ncookbooks: {demo: '>= 9'}\n",
                ),
            ],
            environments: vec![doc(DocKind::Environment, "name: production\n")],
            cookbooks: vec![version("demo", "1.0.0"), version("demo", "1.1.0")],
            groups,
        }
    }

    fn role(yaml: &str) -> Role {
        Role::parse(Path::new("role.yaml"), yaml).unwrap()
    }

    #[test]
    fn a_group_that_resolves_before_and_not_after_is_broken_with_the_reason() {
        let rows = rows(vec![group("production", &["web"], &["web"], 500)]);
        let count = AtomicU64::new(0);
        let change = PlanChange::SetRole(role(
            "name: web\nrun_list: [demo]\ncookbooks: {demo: '>= 2'}\n",
        ));
        let broken = broken_groups(&rows, &change, &count).unwrap();
        assert_eq!(broken.len(), 1);
        assert_eq!(broken[0].group, 0);
        assert!(broken[0].reason.contains(">= 2"), "{}", broken[0].reason);
        assert_eq!(count.load(Ordering::Relaxed), 2, "after, then before");
    }

    #[test]
    fn a_group_in_plan_error_before_the_change_does_not_block_it() {
        let rows = rows(vec![
            group("production", &["db"], &["db"], 3),
            group("production", &["web"], &["web"], 3),
        ]);
        let count = AtomicU64::new(0);
        let change = PlanChange::SetRole(role(
            "name: db\nrun_list: [demo]\ncookbooks: {demo: '>= 8'}\n",
        ));
        assert_eq!(broken_groups(&rows, &change, &count).unwrap(), vec![]);
        // db: after (fails) and before (fails); web: after only.
        assert_eq!(count.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn deleting_versions_breaks_only_when_none_fits_any_more() {
        let rows = rows(vec![group("production", &["web"], &["web"], 1)]);
        let count = AtomicU64::new(0);
        let delete = |v: &str| PlanChange::DeleteCookbook {
            name: "demo".into(),
            version: Version::parse(v).unwrap(),
        };
        assert!(
            broken_groups(&rows, &delete("1.1.0"), &count)
                .unwrap()
                .is_empty()
        );
        let mut only_one = rows.clone();
        only_one.cookbooks.pop();
        let broken = broken_groups(&only_one, &delete("1.0.0"), &count).unwrap();
        assert_eq!(broken.len(), 1, "{broken:?}");
    }

    #[test]
    fn a_node_moving_to_an_unknown_role_is_broken_and_pairs_resolve_once_per_world() {
        let rows = rows(vec![
            group("production", &["web"], &["web", "ghost"], 1),
            group("production", &["web"], &["web"], 40),
        ]);
        let count = AtomicU64::new(0);
        let broken = broken_groups(&rows, &PlanChange::OneNode, &count).unwrap();
        assert_eq!(broken.len(), 1);
        assert_eq!(broken[0].group, 0);
        assert!(broken[0].reason.contains("role ghost does not exist"));
        // [web, ghost] after; [web] before; [web] after for the second group.
        assert_eq!(count.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_node_moving_to_an_environment_that_breaks_its_plan_is_broken() {
        let mut rows = rows(vec![NodeGroup {
            environment_before: "production".into(),
            ..group("legacy", &["web"], &["web"], 1)
        }]);
        rows.environments.push(doc(
            DocKind::Environment,
            "name: legacy\ncookbooks: {demo: 0.5.0}\n",
        ));
        let count = AtomicU64::new(0);
        let broken = broken_groups(&rows, &PlanChange::OneNode, &count).unwrap();
        assert_eq!(broken.len(), 1, "resolves in production, not in legacy");
        assert!(broken[0].reason.contains("0.5.0"), "{}", broken[0].reason);
        let mut back = rows.clone();
        back.groups[0].environment = "production".into();
        back.groups[0].environment_before = "legacy".into();
        assert!(
            broken_groups(&back, &PlanChange::OneNode, &count)
                .unwrap()
                .is_empty(),
            "leaving a broken environment for a good one breaks nothing"
        );
    }

    #[test]
    fn an_environment_nobody_set_resolves_as_empty() {
        let rows = rows(vec![group("staging", &["web"], &["web"], 1)]);
        let count = AtomicU64::new(0);
        let pin = Environment::parse(
            Path::new("e.yaml"),
            "name: staging\ncookbooks: {demo: 3.0.0}\n",
        )
        .unwrap();
        let broken = broken_groups(&rows, &PlanChange::SetEnvironment(pin), &count).unwrap();
        assert_eq!(
            broken.len(),
            1,
            "unset before, so it resolved; pinned after"
        );
    }
}
