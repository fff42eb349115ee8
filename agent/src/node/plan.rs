//! Compiling and converging a synced plan, from the cache alone.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use cm_model::report::{ResourceReport, RunReport};
use cm_model::runlist::RecipeRef;
use cm_model::secrets::{SecretString, Secrets};
use cm_proto::v1::Plan;
use serde_json::{Map, Value};

use crate::apply::failed_before_start;
use crate::engine::{self, Inputs, Options};
use crate::facts::Facts;
use crate::remote::sync::{self, Cache};

/// Compile and converge `plan` with cookbooks from the cache.
/// What a run was asked: change nothing, show new files whole.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mode {
    pub why_run: bool,
    pub full_diff: bool,
}

pub(super) fn converge_plan(
    plan: &Plan,
    facts: &Facts,
    cache: &Cache,
    mode: Mode,
    backup_dir: &Path,
    stop: &AtomicBool,
    observe: &mut dyn FnMut(&ResourceReport),
) -> RunReport {
    let why_run = mode.why_run;
    let mut notices = Vec::new();
    let prepared = (|| -> Result<_, String> {
        let sync::Assembled {
            set,
            notices: read_as_before,
        } = sync::assemble(plan, cache)?;
        notices = read_as_before;
        let run_list = plan
            .run_list
            .iter()
            .map(|r| RecipeRef::parse(r))
            .collect::<Result<Vec<_>, _>>()?;
        let attributes = json_map(&plan.attributes_json, "attributes")?;
        let cluster = Value::Object(json_map(&plan.cluster_json, "cluster")?);
        // Empty from a server older than 0.3.0.
        let member = match plan.member_json.as_str() {
            "" => Value::Object(Map::new()),
            json => Value::Object(json_map(json, "member")?),
        };
        let cluster_nodes = match plan.cluster_nodes_json.as_str() {
            "" => Value::Array(Vec::new()),
            json => serde_json::from_str::<Vec<Value>>(json)
                .map(Value::Array)
                .map_err(|e| format!("the plan's cluster_nodes is not a JSON list: {e}"))?,
        };
        let node = serde_json::to_value(facts).map_err(|e| e.to_string())?;
        let secrets = Secrets(
            plan.secrets
                .iter()
                .map(|(k, v)| (k.clone(), SecretString::new(v.clone())))
                .collect(),
        );
        let templates = set.templates().map_err(|e| e.to_string())?;
        let inputs = Inputs {
            cookbooks: &set,
            run_list: &run_list,
            attributes: &attributes,
            node: &node,
            secrets: &secrets,
            cluster: &cluster,
            cluster_nodes: &cluster_nodes,
            member: &member,
        };
        let resources = engine::compile(&inputs, &templates).map_err(|e| e.to_string())?;
        Ok((resources, secrets))
    })();
    let mut report = match prepared {
        Ok((resources, secrets)) => {
            let opts = Options {
                why_run,
                backup_dir,
                stop,
                secrets: &secrets,
                full_diff: mode.full_diff,
            };
            engine::converge(&resources, &opts, observe)
        }
        Err(e) => failed_before_start(why_run, e),
    };
    report.notices = notices;
    report
}

fn json_map(text: &str, what: &str) -> Result<Map<String, Value>, String> {
    if text.is_empty() {
        return Ok(Map::new());
    }
    serde_json::from_str(text).map_err(|e| format!("the plan's {what} are not a JSON object: {e}"))
}
