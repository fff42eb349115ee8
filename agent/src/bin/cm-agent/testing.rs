//! The commands for trying cookbooks: `check` (the roles' checks against
//! this node) and `pose` (a stand-in peer).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use cm_agent::checks::{self, Outcome};
use cm_agent::config::Config;
use cm_agent::node::{gather_facts, pose};
use cm_agent::output;
use cm_agent::remote::sync::Cache;
use cm_model::tell;
use owo_colors::{OwoColorize, Stream};

use crate::cli::Format;
use crate::fatal;

pub fn check(config: &Config, wait: u64, format: Format) -> ExitCode {
    let Some(plan) = Cache::new(&config.state_dir).plan() else {
        tell!(
            "error: no plan in {}: this node has not run yet (`cm-agent run --once`)",
            config.state_dir.display()
        );
        return ExitCode::from(2);
    };
    let role_checks = match checks::from_plan(&plan.checks_json) {
        Ok(c) => c,
        Err(e) => {
            tell!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let address = checks::own_address(&gather_facts(config));
    let outcomes = checks::run_until_passed(&role_checks, &address, Duration::from_secs(wait));
    match format {
        Format::Json => output::say(format_args!(
            "{}",
            serde_json::to_string_pretty(&outcomes).unwrap_or_default()
        )),
        Format::Human => print_outcomes(&plan.roles, &outcomes),
    }
    match outcomes.iter().all(|o| o.ok) {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

fn print_outcomes(roles: &[String], outcomes: &[Outcome]) {
    if outcomes.is_empty() {
        output::say(format_args!(
            "no checks: roles {} have no `checks:`",
            roles.join(", ")
        ));
        return;
    }
    for o in outcomes {
        let verdict = match o.ok {
            true => "ok  "
                .if_supports_color(Stream::Stdout, |t| t.green())
                .to_string(),
            false => "FAIL"
                .if_supports_color(Stream::Stdout, |t| t.red())
                .to_string(),
        };
        output::say(format_args!(
            "{verdict}  {}: {} ({}): {} ({} ms)",
            o.role, o.name, o.probe, o.detail, o.duration_ms
        ));
    }
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    output::say(format_args!(
        "{} checks: {} passed, {failed} failed",
        outcomes.len(),
        outcomes.len() - failed
    ));
}

pub async fn pose(config: Config, facts: &Path, once: bool) -> ExitCode {
    let name = config.name.clone().unwrap_or_default();
    let facts = match pose::read_facts(facts, &name) {
        Ok(f) => f,
        Err(e) => {
            tell!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match pose::pose(&config, &facts, once).await {
        Ok(name) => {
            if once {
                tell!("cm-agent pose: {name} enrolled and reported its facts");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fatal(&e),
    }
}
