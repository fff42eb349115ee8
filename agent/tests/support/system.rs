//! What the provider tests that run on this machine share: a compiled
//! resource from a type and its properties, one provider converged by hand
//! with a fresh run context, commands run by hand, and cleanup that runs
//! even when a test fails.

use std::process::Command;

use cm_agent::engine::CompiledResource;
use cm_agent::resources::{Cx, Outcome};
use serde_json::Value;

pub fn resource(kind: &str, properties: Value) -> CompiledResource {
    CompiledResource::bare(
        cm_model::resources::lookup(kind).unwrap(),
        "test",
        properties.as_object().unwrap().clone(),
        "support/system.rs",
    )
}

/// Converge `r` to `action` with a fresh run context, which is returned too.
pub fn converge_cx(
    r: &CompiledResource,
    action: &str,
    why_run: bool,
) -> (Result<Outcome, String>, Cx) {
    let backup = std::env::temp_dir().join(format!("cm-test-backup-{}", std::process::id()));
    let mut cx = Cx::new(why_run, backup);
    let provider = cm_agent::resources::lookup(r.kind.name).unwrap();
    let mut p = (provider.build)(r).unwrap_or_else(|e| panic!("{}: {}", e.field, e.message));
    (p.converge(action, &mut cx).map_err(|e| e.to_string()), cx)
}

pub fn converge(r: &CompiledResource, action: &str) -> Vec<String> {
    converge_cx(r, action, false).0.unwrap().changes
}

pub fn why_run(r: &CompiledResource, action: &str) -> Vec<String> {
    converge_cx(r, action, true).0.unwrap().changes
}

/// Run a command by hand (drift, setup, cleanup); its failure is returned, not fatal.
pub fn sh(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs its commands when dropped, so a failing test still cleans up.
pub struct Cleanup(Vec<Vec<String>>);

impl Cleanup {
    /// Each command is a program and its arguments.
    pub fn new(commands: &[&[&str]]) -> Cleanup {
        Cleanup(
            commands
                .iter()
                .map(|c| c.iter().map(|s| s.to_string()).collect())
                .collect(),
        )
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for argv in &self.0 {
            let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
            sh(&argv[0], &args);
        }
    }
}
