//! The cm agent. `apply` converges local cookbooks without a server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use cm_agent::apply::{LocalRun, apply, failed_before_start};
use cm_agent::lock::{self, RunLock};
use cm_agent::{output, signals};
use cm_model::runlist::{RecipeRef, parse_run_list};

/// cm's node agent: converges a node to its cookbooks.
#[derive(Parser)]
#[command(name = "cm-agent", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "CM_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Converge cookbooks from a local directory, without a server.
    ///
    /// Exit status: 0 when every resource converged, 1 when the run failed,
    /// 2 on a usage error.
    Apply {
        /// Directory holding one cookbook per subdirectory.
        #[arg(long, value_name = "DIR")]
        cookbooks: PathBuf,
        /// Recipes to run, comma-separated: `memcached,apache_php::sessions`.
        #[arg(long, value_name = "LIST", value_parser = parse_run_list_arg)]
        run_list: RunList,
        /// Attributes over the cookbook defaults (the node layer), YAML.
        #[arg(long, value_name = "FILE.yaml")]
        attributes: Option<PathBuf>,
        /// Facts to use instead of gathering this machine's, YAML.
        #[arg(long, value_name = "FILE.yaml")]
        node: Option<PathBuf>,
        /// Cluster view: role -> list of members, YAML.
        #[arg(long, value_name = "FILE.yaml")]
        cluster: Option<PathBuf>,
        /// Secrets: name -> value, YAML. Never shown in output.
        #[arg(long, value_name = "FILE.yaml")]
        secrets: Option<PathBuf>,
        /// Show what would change, with diffs, and change nothing.
        #[arg(long)]
        why_run: bool,
        /// Output: a converge log for people, or the run report as JSON.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Where previous versions of changed files are kept.
        #[arg(
            long,
            value_name = "DIR",
            default_value = "/var/lib/cm/backup",
            env = "CM_BACKUP_DIR"
        )]
        backup_dir: PathBuf,
        /// Lock file that keeps two runs from overlapping.
        #[arg(long, value_name = "FILE", env = "CM_LOCK_FILE")]
        lock_file: Option<PathBuf>,
        /// Seconds to wait for another run to finish before giving up.
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        lock_wait: u64,
    },
}

#[derive(Clone)]
struct RunList(Vec<RecipeRef>);

fn parse_run_list_arg(s: &str) -> Result<RunList, String> {
    parse_run_list(s).map(RunList)
}

fn init_logs(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("CM_LOG").unwrap_or_else(|_| "warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    match cli.command {
        Command::Apply {
            cookbooks,
            run_list,
            attributes,
            node,
            cluster,
            secrets,
            why_run,
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
                secrets,
                why_run,
                backup_dir,
            };
            run_apply(
                &run,
                format,
                lock_file.unwrap_or_else(lock::default_path),
                lock_wait,
            )
        }
    }
}

fn run_apply(run: &LocalRun, format: Format, lock_path: PathBuf, lock_wait: u64) -> ExitCode {
    signals::install();
    let human = format == Format::Human;
    let report = match RunLock::acquire(&lock_path, Duration::from_secs(lock_wait)) {
        Ok(_lock) => {
            if human {
                let list: Vec<String> = run.run_list.iter().map(ToString::to_string).collect();
                let mode = if run.why_run { " (why-run)" } else { "" };
                println!("Converging {}{mode}", list.join(", "));
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
            Ok(j) => println!("{j}"),
            Err(e) => eprintln!("error: cannot print the report: {e}"),
        }
    }
    if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
