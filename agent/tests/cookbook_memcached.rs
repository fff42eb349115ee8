//! Golden tests of the memcached cookbook's rendered configuration, with fixed
//! facts so the output is the same on every machine.

use std::path::{Path, PathBuf};

use cm_agent::apply::{LocalRun, prepare};
use cm_model::runlist::parse_run_list;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rendered_conf(attributes: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let attrs = attributes.map(|a| {
        let p = dir.path().join("attrs.yaml");
        std::fs::write(&p, a).unwrap();
        p
    });
    let run = LocalRun {
        cookbooks: repo().join("cookbooks"),
        run_list: parse_run_list("memcached").unwrap(),
        attributes: attrs,
        node: Some(repo().join("agent/tests/fixtures/node-4g.yaml")),
        cluster: None,
        member: None,
        secrets: None,
        why_run: true,
        backup_dir: dir.path().join("backup"),
    };
    let prepared = prepare(&run).unwrap_or_else(|e| panic!("{e}"));
    let conf = prepared
        .resources
        .iter()
        .find(|r| r.name == "/etc/memcached.conf")
        .expect("the template resource");
    String::from_utf8(conf.content.clone().unwrap()).unwrap()
}

#[test]
fn memory_defaults_to_a_quarter_of_ram() {
    insta::assert_snapshot!(rendered_conf(None));
}

#[test]
fn explicit_memory_port_and_options() {
    let conf = rendered_conf(Some(
        "memcached:\n  memory_mb: 1500\n  port: 11311\n  listen: 127.0.0.1\n  extra_options: ['-v']\n",
    ));
    insta::assert_snapshot!(conf);
}

#[test]
fn share_of_ram_never_goes_below_the_minimum() {
    let conf = rendered_conf(Some("memcached:\n  memory_percent: 1\n"));
    assert!(conf.contains("\n-m 64\n"), "{conf}");
}
