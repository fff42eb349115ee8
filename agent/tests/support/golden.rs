//! Rendering the repository's cookbooks for golden tests: a why-run local
//! run with fixed facts (and a cluster view, attributes and secrets as
//! YAML text), and the content one resource would write.

use std::path::{Path, PathBuf};

use cm_agent::apply::{LocalRun, prepare};
use cm_agent::engine::CompiledResource;
use cm_model::runlist::parse_run_list;

/// What a golden render reads besides the cookbooks.
#[derive(Default)]
pub struct Inputs<'a> {
    pub attributes: Option<&'a str>,
    pub cluster: Option<&'a str>,
    pub member: Option<&'a str>,
    pub secrets: Option<&'a str>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("agent/ sits in the repository")
        .to_path_buf()
}

/// The content `run_list` would write at `path`, on the 4 GiB node of
/// agent/tests/fixtures/node-4g.yaml.
pub fn rendered(run_list: &str, inputs: &Inputs, path: &str) -> String {
    let resource = resource(run_list, inputs, path);
    String::from_utf8(resource.content.expect("content")).unwrap()
}

/// The resources `run_list` compiles to, on that node.
pub fn resources(run_list: &str, inputs: &Inputs) -> Vec<CompiledResource> {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: Option<&str>| {
        text.map(|t| {
            let p = dir.path().join(name);
            std::fs::write(&p, t).unwrap();
            p
        })
    };
    let run = LocalRun {
        cookbooks: repo().join("cookbooks"),
        run_list: parse_run_list(run_list).unwrap(),
        attributes: file("attributes.yaml", inputs.attributes),
        node: Some(repo().join("agent/tests/fixtures/node-4g.yaml")),
        cluster: file("cluster.yaml", inputs.cluster),
        member: file("member.yaml", inputs.member),
        secrets: file("secrets.yaml", inputs.secrets),
        why_run: true,
        full_diff: false,
        backup_dir: dir.path().join("backup"),
    };
    prepare(&run).unwrap_or_else(|e| panic!("{e}")).resources
}

/// The resource of `run_list` named `name`.
pub fn resource(run_list: &str, inputs: &Inputs, name: &str) -> CompiledResource {
    resources(run_list, inputs)
        .into_iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no resource {name}"))
}

/// A `cluster.<role>` list of `n` members `PREFIX-1`..., addresses
/// 10.0.2.1..., ordinals from 0; the members in `down` unreachable.
pub fn members(prefix: &str, n: usize, down: &[usize]) -> String {
    (0..n)
        .map(|i| {
            let reachable = !down.contains(&i);
            format!(
                "  - {{name: {prefix}-{}, ordinal: {i}, address: 10.0.2.{}, zone: eu-west-1a, reachable: {reachable}, state: {}}}\n",
                i + 1,
                i + 1,
                if reachable { "active" } else { "unreachable" }
            )
        })
        .collect()
}
