//! The cm agent. `apply` converges local cookbooks without a server;
//! `run --once`, `daemon` and `start` work with a cm server.

// A failure is an error the caller can act on, never a panic; tests may
// unwrap (docs/decisions.md, "Lints").
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use cm_model::tell;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cm_agent::apply::LocalRun;
use cm_agent::boot::{self, Started};
use cm_agent::config::Config;
use cm_agent::daemon;
use cm_agent::lock;
use cm_agent::node::{Fatal, RunOptions};

use cli::{Cli, Command, LogFormat, Settings};
use commands::{run_apply, run_once};

mod cli;
mod commands;
mod testing;

fn init_logs(format: LogFormat, default: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("CM_LOG").unwrap_or_else(|_| default.into());
    // Colour only on a terminal: journald, the console and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(cm_model::log_writer::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A daemon's log is its output; a one-off run prints its own.
    let level = match cli.command {
        Command::Daemon { .. } | Command::Start { .. } => "info",
        _ => "warn",
    };
    init_logs(cli.log_format, level);
    cm_agent::remote::tls::install_crypto_provider();
    match cli.command {
        Command::Apply {
            cookbooks,
            run_list,
            attributes,
            node,
            cluster,
            member,
            secrets,
            why_run,
            full_diff,
            format,
            backup_dir,
            lock_file,
            lock_wait,
        } => {
            let run = LocalRun {
                cookbooks,
                run_list: run_list.0,
                attributes,
                node,
                cluster,
                member,
                secrets,
                why_run,
                full_diff,
                backup_dir,
            };
            run_apply(
                &run,
                format,
                lock_file.unwrap_or_else(lock::default_path),
                lock_wait,
            )
        }
        Command::Run {
            once: _,
            settings,
            why_run,
            full_diff,
            format,
            lock_file,
            lock_wait,
        } => with_config(settings, |config| {
            let opts = RunOptions {
                why_run,
                full_diff,
                lock_file: lock_file.unwrap_or_else(lock::default_path),
                lock_wait: Duration::from_secs(lock_wait),
            };
            runtime().block_on(run_once(config, opts, format))
        }),
        Command::Daemon {
            settings,
            lock_file,
        } => with_config(settings, |config| {
            let opts = RunOptions {
                why_run: false,
                full_diff: false,
                lock_file: lock_file.unwrap_or_else(lock::default_path),
                lock_wait: Duration::from_secs(600),
            };
            match runtime().block_on(daemon::run(config, opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fatal(&e),
            }
        }),
        // What user-data runs: without its file there is nothing to start
        // from, and nothing may be created on the machine.
        Command::Start { config } if !config.exists() => {
            tell!(
                "error: {} does not exist: `cmctl userdata` writes it before `cm-agent start`",
                config.display()
            );
            ExitCode::from(2)
        }
        Command::Start { config } => with_config(Settings::file_only(config), |config| {
            match runtime().block_on(boot::start(&config)) {
                Ok(Started::Systemd) => {
                    tell!("cm-agent: started as the systemd unit cm-agent.service");
                    ExitCode::SUCCESS
                }
                Ok(Started::InitScript { log }) => {
                    tell!(
                        "cm-agent: started by {} (starts at boot too), logging to {}",
                        boot::INIT_SCRIPT,
                        log.display()
                    );
                    ExitCode::SUCCESS
                }
                Ok(Started::Detached { pid, log }) => {
                    tell!(
                        "cm-agent: daemon started (pid {pid}), logging to {}",
                        log.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fatal(&e),
            }
        }),
        Command::Check {
            settings,
            wait,
            format,
        } => with_config(settings, |config| testing::check(&config, wait, format)),
        Command::Pose {
            state_dir,
            server,
            ca_fingerprint,
            token,
            name,
            facts,
            once,
        } => {
            let settings = Settings::posing(state_dir, server, ca_fingerprint, token, name);
            with_config(settings, |config| {
                runtime().block_on(testing::pose(config, &facts, once))
            })
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "cm-agent",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::InstallService { config, now } => match boot::install_service(&config, now) {
            Ok(unit) => {
                tell!("unit: {unit}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tell!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Exit status 2 when the settings are wrong, else what `f` says.
fn with_config(settings: Settings, f: impl FnOnce(Config) -> ExitCode) -> ExitCode {
    match settings.load() {
        Ok(config) => f(config),
        Err(e) => {
            tell!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Refusals stop the agent with their own exit status (and no restart).
fn fatal(e: &Fatal) -> ExitCode {
    tell!("error: {e}");
    match e {
        Fatal::Refused(_) => ExitCode::from(3),
        Fatal::Revoked(_) => ExitCode::from(4),
        Fatal::Setup(_) => ExitCode::from(2),
    }
}

/// One thread is plenty for one node's calls; converges run on a blocking thread.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
