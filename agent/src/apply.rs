//! `cm-agent apply`: converge cookbooks from a local directory, no server.
//! The same compile and converge the daemon uses, with every input given on
//! the command line so a cookbook can be tested exactly as a fleet renders it.

use std::path::{Path, PathBuf};

use cm_model::LoadError;
use cm_model::attributes::{Attributes, Layer, Source};
use cm_model::cookbooks::CookbookSet;
use cm_model::metadata::ClusterRoles;
use cm_model::report::{ResourceReport, RunReport, RunStatus};
use cm_model::runlist::RecipeRef;
use cm_model::secrets::Secrets;
use serde_json::{Map, Value};

use crate::engine::{self, Inputs, Options};

/// What a local apply needs.
pub struct LocalRun {
    pub cookbooks: PathBuf,
    pub run_list: Vec<RecipeRef>,
    /// Highest-precedence attributes (the node layer).
    pub attributes: Option<PathBuf>,
    /// Facts to use instead of gathering them.
    pub node: Option<PathBuf>,
    pub cluster: Option<PathBuf>,
    /// `member.<role>.ordinal`, as the server sends it.
    pub member: Option<PathBuf>,
    pub secrets: Option<PathBuf>,
    pub why_run: bool,
    /// New files whole in the report, not their first lines.
    pub full_diff: bool,
    pub backup_dir: PathBuf,
}

/// Everything read before converging; any error here touches nothing.
pub struct Prepared {
    pub resources: Vec<engine::CompiledResource>,
    pub secrets: Secrets,
}

fn yaml_map(path: &Path, what: &str) -> Result<Map<String, Value>, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError::in_file(path, format!("cannot read {what}: {e}")))?;
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    cm_model::yaml::parse(path, &text)
}

/// Load, merge and compile. The error names the file and line at fault.
pub fn prepare(run: &LocalRun) -> Result<Prepared, LoadError> {
    let wanted: Vec<String> = run.run_list.iter().map(|r| r.cookbook.clone()).collect();
    let set = CookbookSet::load_needed(&run.cookbooks, &wanted)?;
    let recipes = engine::expand_run_list(&set, &run.run_list)
        .map_err(|m| LoadError::in_file("--run-list", m))?;
    let mut layers: Vec<Layer> = engine::cookbooks_needed(&set, &recipes)
        .into_iter()
        .filter_map(|name| {
            set.get(&name).map(|c| Layer {
                source: Source::Cookbook(name.clone()),
                values: c.attributes.clone(),
            })
        })
        .collect();
    if let Some(p) = &run.attributes {
        layers.push(Layer {
            source: Source::Node(p.display().to_string()),
            values: yaml_map(p, "attributes")?,
        });
    }
    let attributes = Attributes::merge(layers);
    let node = match &run.node {
        Some(p) => Value::Object(yaml_map(p, "node facts")?),
        None => serde_json::to_value(crate::facts::gather())
            .map_err(|e| LoadError::in_file("facts", e.to_string()))?,
    };
    let cluster = match &run.cluster {
        Some(p) => {
            let map = yaml_map(p, "cluster view")?;
            if let Some((role, _)) = map.iter().find(|(_, v)| !v.is_array()) {
                return Err(LoadError::in_file(
                    p,
                    format!("cluster.{role} must be a list of members"),
                ));
            }
            Value::Object(map)
        }
        None => Value::Object(Map::new()),
    };
    // As the server sends it: a role a cookbook of the run declares is an
    // empty list when the file does not list it.
    let cluster = match cluster {
        Value::Object(mut map) => {
            for name in engine::cookbooks_needed(&set, &recipes) {
                if let Some(ClusterRoles::Roles(roles)) =
                    set.get(&name).map(|c| &c.metadata.cluster)
                {
                    for role in roles {
                        map.entry(role.clone())
                            .or_insert_with(|| Value::Array(Vec::new()));
                    }
                }
            }
            Value::Object(map)
        }
        other => other,
    };
    // As the server builds it from the whole view.
    let cluster_nodes = match &cluster {
        Value::Object(map) => cm_model::cluster_nodes::of(map),
        _ => Value::Array(Vec::new()),
    };
    let member = match &run.member {
        Some(p) => Value::Object(yaml_map(p, "member ordinals")?),
        None => Value::Object(Map::new()),
    };
    let secrets = match &run.secrets {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| LoadError::in_file(p, format!("cannot read secrets: {e}")))?;
            cm_model::yaml::parse::<Secrets>(p, &text)?
        }
        None => Secrets::default(),
    };
    let templates = set.templates()?;
    let inputs = Inputs {
        cookbooks: &set,
        run_list: &run.run_list,
        attributes: &attributes.merged,
        node: &node,
        secrets: &secrets,
        cluster: &cluster,
        cluster_nodes: &cluster_nodes,
        member: &member,
    };
    let resources = engine::compile(&inputs, &templates)?;
    Ok(Prepared { resources, secrets })
}

/// Prepare and converge; a preparation error becomes a failed report with no resources.
pub fn apply(
    run: &LocalRun,
    stop: &std::sync::atomic::AtomicBool,
    observe: &mut dyn FnMut(&ResourceReport),
) -> RunReport {
    match prepare(run) {
        Ok(p) => {
            let opts = Options {
                why_run: run.why_run,
                backup_dir: &run.backup_dir,
                stop,
                secrets: &p.secrets,
                full_diff: run.full_diff,
            };
            engine::converge(&p.resources, &opts, observe)
        }
        Err(e) => failed_before_start(run.why_run, e.to_string()),
    }
}

/// The report of a run that failed before its first resource.
pub fn failed_before_start(why_run: bool, error: String) -> RunReport {
    RunReport {
        status: RunStatus::Failed,
        why_run,
        started_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        resources_total: 0,
        resources_changed: 0,
        resources_failed: 0,
        duration_ms: 0,
        error: Some(error),
        plan_error: None,
        notices: Vec::new(),
        resources: Vec::new(),
    }
}
