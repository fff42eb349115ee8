//! Shared by the agent's integration tests: temp cookbooks, local runs, and
//! [`require`] for tests that need something of the machine (root, an init
//! system, a tmpfs mount).
#![allow(dead_code)]

pub mod golden;
pub mod http;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use cm_agent::apply::{LocalRun, apply};
use cm_model::report::RunReport;
use cm_model::runlist::parse_run_list;

pub mod system;

pub use cm_model::testing::require;

/// [`require`] root.
pub fn require_root(what: &str) -> bool {
    require(
        nix::unistd::geteuid().is_root(),
        &format!("{what} needs root (run the tests as root; CI does)"),
    )
}

/// A temp dir holding `cookbooks/` and a `root/` the cookbooks write into.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn cookbooks(&self) -> PathBuf {
        self.dir.path().join("cookbooks")
    }

    /// Where resources write: passed to the cookbook as `attrs.root`.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Write files of cookbook `name` (relative path, content).
    pub fn cookbook(&self, name: &str, files: &[(&str, &str)]) -> &Self {
        let base = self.cookbooks().join(name);
        let has_meta = files.iter().any(|(p, _)| *p == "metadata.yaml");
        if !has_meta {
            write(
                &base.join("metadata.yaml"),
                &format!("name: {name}\nversion: 1.0.0\n"),
            );
        }
        for (rel, text) in files {
            write(&base.join(rel), text);
        }
        std::fs::create_dir_all(self.root()).unwrap();
        self
    }

    /// A local run with `attrs.root` pointing at the sandbox root.
    pub fn run_opts(&self, run_list: &str, why_run: bool) -> LocalRun {
        let attrs = self.dir.path().join("attrs.yaml");
        if !attrs.exists() {
            write(&attrs, &format!("root: {}\n", self.root().display()));
        }
        LocalRun {
            cookbooks: self.cookbooks(),
            run_list: parse_run_list(run_list).unwrap(),
            attributes: Some(attrs),
            node: None,
            cluster: None,
            member: None,
            secrets: None,
            why_run,
            full_diff: false,
            backup_dir: self.dir.path().join("backup"),
        }
    }

    /// Extra attributes (YAML) on top of `root`.
    pub fn attributes(&self, yaml: &str) {
        write(
            &self.dir.path().join("attrs.yaml"),
            &format!("root: {}\n{yaml}", self.root().display()),
        );
    }

    pub fn apply(&self, run_list: &str) -> RunReport {
        run(&self.run_opts(run_list, false))
    }

    pub fn why_run(&self, run_list: &str) -> RunReport {
        run(&self.run_opts(run_list, true))
    }
}

pub fn run(opts: &LocalRun) -> RunReport {
    let stop = AtomicBool::new(false);
    apply(opts, &stop, &mut |_| {})
}

pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The changed resources of a report, as `type[name]`.
pub fn changed(r: &RunReport) -> Vec<String> {
    r.resources
        .iter()
        .filter(|x| x.changed)
        .map(|x| format!("{}[{}]", x.kind, x.name))
        .collect()
}

/// Assert the run succeeded, showing the report if not.
pub fn ok(r: &RunReport) -> &RunReport {
    assert!(
        r.succeeded(),
        "run failed: {}",
        serde_json::to_string_pretty(r).unwrap()
    );
    r
}
