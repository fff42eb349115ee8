//! The commands that talk to a server or converge: output and exit codes.

use cm_model::tell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cm_agent::apply::{LocalRun, apply, failed_before_start};
use cm_agent::config::Config;
use cm_agent::lock::RunLock;
use cm_agent::node::{Fatal, Node, RunOptions, gather_facts};
use cm_agent::{output, signals};
use cm_model::report::RunStatus;

use crate::cli::Format;
use crate::fatal;

pub async fn run_once(config: Config, opts: RunOptions, format: Format) -> ExitCode {
    signals::install();
    let human = format == Format::Human;
    let c = config.clone();
    let facts = tokio::task::spawn_blocking(move || gather_facts(&c))
        .await
        .unwrap_or_default();
    let mut node = match Node::connect(&config, &facts).await {
        Ok(n) => n,
        Err(cm_agent::remote::RemoteError::Refused(m)) => return fatal(&Fatal::Refused(m)),
        Err(cm_agent::remote::RemoteError::Revoked(m)) => return fatal(&Fatal::Revoked(m)),
        Err(cm_agent::remote::RemoteError::Local(m)) => return fatal(&Fatal::Setup(m)),
        Err(e) => {
            tell!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if human {
        let mode = if opts.why_run { " (why-run)" } else { "" };
        output::say(format_args!("Converging node {}{mode}", node.identity.name));
    }
    let why_run = opts.why_run;
    let observe = Box::new(move |r: &cm_model::report::ResourceReport| {
        if human {
            output::resource_line(&mut std::io::stdout(), r, why_run);
        }
    });
    let outcome = match node.run(&opts, &signals::STOP, observe).await {
        Ok(o) => o,
        Err(e) => return fatal(&e),
    };
    if human {
        if !outcome.online {
            // Which kind of "no answer" it was is in the log above.
            output::say(format_args!(
                "(no answer from the server: converged the cached plan)"
            ));
        }
        if let Some(e) = &outcome.report.plan_error {
            output::say(format_args!("plan error: {e}"));
            if outcome.plan_hash.is_some() {
                output::say(format_args!("(converged the last good plan)"));
            }
        }
        output::summary(&mut std::io::stdout(), &outcome.report);
    } else {
        let json = serde_json::json!({
            "node": node.identity.name,
            "plan_hash": outcome.plan_hash,
            "cause": outcome.cause,
            "online": outcome.online,
            "blobs_fetched": outcome.fetched.blobs,
            "bytes_fetched": outcome.fetched.bytes,
            "report": outcome.report,
        });
        output::say(format_args!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        ));
    }
    match outcome.report.status {
        RunStatus::Success => ExitCode::SUCCESS,
        RunStatus::Failed => ExitCode::FAILURE,
        RunStatus::Warning => ExitCode::from(WARNING),
    }
}

/// `run --once`'s exit status when it converged the last good plan because
/// the server has no valid plan for the node: not a failure (everything
/// converged), not plain success either (docs/agent.md).
const WARNING: u8 = 5;

pub fn run_apply(run: &LocalRun, format: Format, lock_path: PathBuf, lock_wait: u64) -> ExitCode {
    signals::install();
    let human = format == Format::Human;
    let report = match RunLock::acquire(&lock_path, Duration::from_secs(lock_wait))
        .map(RunLock::shared_with_commands)
    {
        Ok(_lock) => {
            if human {
                let list: Vec<String> = run.run_list.iter().map(ToString::to_string).collect();
                let mode = if run.why_run { " (why-run)" } else { "" };
                output::say(format_args!("Converging {}{mode}", list.join(", ")));
            }
            let mut stdout = std::io::stdout();
            let mut observe = |r: &cm_model::report::ResourceReport| {
                if human {
                    output::resource_line(&mut stdout, r, run.why_run);
                }
            };
            apply(run, &signals::STOP, &mut observe)
        }
        Err(e) => failed_before_start(run.why_run, e),
    };
    if human {
        output::summary(&mut std::io::stdout(), &report);
    } else {
        match serde_json::to_string_pretty(&report) {
            Ok(j) => output::say(format_args!("{j}")),
            Err(e) => tell!("error: cannot print the report: {e}"),
        }
    }
    if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
