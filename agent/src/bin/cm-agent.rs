//! The cm agent. `apply` converges local cookbooks without a server;
//! `run --once`, `daemon` and `start` work with a cm server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use cm_agent::apply::{LocalRun, apply, failed_before_start};
use cm_agent::config::{self, Config, Overrides};
use cm_agent::facts::Cloud;
use cm_agent::lock::{self, RunLock};
use cm_agent::node::{Fatal, Node, RunOptions, gather_facts};
use cm_agent::service::{self, Started};
use cm_agent::{daemon, output, signals};
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
    /// Enroll if needed, sync the plan from the server, converge it, report.
    ///
    /// Exit status: 0 converged, 1 the run failed, 2 bad settings,
    /// 3 enrollment refused, 4 certificate revoked or expired.
    Run {
        /// One run, then exit (the only mode: `daemon` keeps converging).
        #[arg(long, required = true)]
        once: bool,
        #[command(flatten)]
        settings: Settings,
        /// Show what would change, with diffs, and change nothing (no report is sent).
        #[arg(long)]
        why_run: bool,
        /// Output: a converge log for people, or the run report as JSON.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Lock file that keeps two runs from overlapping.
        #[arg(long, value_name = "FILE", env = "CM_LOCK_FILE")]
        lock_file: Option<PathBuf>,
        /// Seconds to wait for another run to finish before giving up.
        #[arg(long, value_name = "SECONDS", default_value_t = 600)]
        lock_wait: u64,
    },
    /// Keep the node converged: every interval, and within seconds of a plan change.
    ///
    /// Runs in the foreground (systemd's unit runs it; so can any
    /// supervisor). Exit status: 0 stopped by SIGTERM/SIGINT, 2 bad
    /// settings or another daemon running, 3 enrollment refused,
    /// 4 certificate revoked or expired.
    Daemon {
        #[command(flatten)]
        settings: Settings,
        /// Lock file that keeps two runs from overlapping.
        #[arg(long, value_name = "FILE", env = "CM_LOCK_FILE")]
        lock_file: Option<PathBuf>,
    },
    /// Enroll in the foreground, then start the daemon (what user-data runs).
    ///
    /// Waits up to a minute for the server, then starts the daemon anyway
    /// (it keeps trying). Under systemd it installs and starts the unit
    /// without blocking; elsewhere it installs /etc/init.d/cm-agent and
    /// starts that (logging to /var/log/cm-agent.log). A refused token
    /// starts nothing. Exit status:
    /// 0 started, 2 bad settings, 3 enrollment refused, 4 revoked.
    ///
    /// Everything comes from the settings file, so the daemon started at
    /// boot later reads exactly what this enrollment used.
    Start {
        /// Settings file.
        #[arg(long, value_name = "FILE", default_value = config::DEFAULT_FILE, env = "CM_CONFIG")]
        config: PathBuf,
    },
    /// Write the systemd unit (/etc/systemd/system/cm-agent.service).
    InstallService {
        /// The settings file the unit's daemon reads.
        #[arg(long, value_name = "FILE", default_value = config::DEFAULT_FILE, env = "CM_CONFIG")]
        config: PathBuf,
        /// Also enable and start the unit (without waiting for it).
        #[arg(long)]
        now: bool,
    },
}

/// Where the agent finds its server and keeps its state: agent.yaml, under
/// these flags and their CM_* variables.
#[derive(Args, Clone)]
struct Settings {
    /// Settings file.
    #[arg(long, value_name = "FILE", default_value = config::DEFAULT_FILE, env = "CM_CONFIG")]
    config: PathBuf,
    /// Server URL, `https://cm.example.com:8443`.
    #[arg(long, value_name = "URL", env = "CM_SERVER")]
    server: Option<String>,
    /// SHA-256 of the server's CA certificate (cm-server prints it).
    #[arg(long, value_name = "HEX", env = "CM_CA_FINGERPRINT")]
    ca_fingerprint: Option<String>,
    /// Enrollment token (`cmctl token create`); removed from agent.yaml after use.
    #[arg(long, value_name = "TOKEN", env = "CM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Node name; default: the EC2 instance id, else the hostname.
    #[arg(long, value_name = "NAME", env = "CM_NAME")]
    name: Option<String>,
    /// Where to look for cloud metadata: auto reads DMI first and asks EC2 only there.
    #[arg(long, value_enum, env = "CM_CLOUD")]
    cloud: Option<Cloud>,
    /// EC2 metadata endpoint (tests and unusual setups).
    #[arg(long, value_name = "URL", env = "CM_IMDS_ENDPOINT")]
    imds_endpoint: Option<String>,
    /// Drift-repair interval: 900, 15m, 1h.
    #[arg(long, value_name = "DURATION", env = "CM_INTERVAL", value_parser = config::parse_duration)]
    interval: Option<u64>,
    /// Random delay added to each interval, so a fleet does not converge in step.
    #[arg(long, value_name = "DURATION", env = "CM_SPLAY", value_parser = config::parse_duration)]
    splay: Option<u64>,
    /// Identity, plan and cookbook cache.
    #[arg(long, value_name = "DIR", env = "CM_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Where previous versions of changed files are kept.
    #[arg(long, value_name = "DIR", env = "CM_BACKUP_DIR")]
    backup_dir: Option<PathBuf>,
}

impl Settings {
    /// Only the file: what the daemon started at boot will read.
    fn file_only(config: PathBuf) -> Settings {
        Settings {
            config,
            server: None,
            ca_fingerprint: None,
            token: None,
            name: None,
            cloud: None,
            imds_endpoint: None,
            interval: None,
            splay: None,
            state_dir: None,
            backup_dir: None,
        }
    }

    fn load(self) -> Result<Config, String> {
        let over = Overrides {
            server: self.server,
            ca_fingerprint: self.ca_fingerprint,
            token: self.token.map(cm_model::secrets::SecretString::new),
            name: self.name,
            cloud: self.cloud,
            imds_endpoint: self.imds_endpoint,
            interval: self.interval,
            splay: self.splay,
            state_dir: self.state_dir,
            backup_dir: self.backup_dir,
        };
        Config::load(&self.config, over).map_err(|e| e.to_string())
    }
}

#[derive(Clone)]
struct RunList(Vec<RecipeRef>);

fn parse_run_list_arg(s: &str) -> Result<RunList, String> {
    parse_run_list(s).map(RunList)
}

fn init_logs(format: LogFormat, default: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("CM_LOG").unwrap_or_else(|_| default.into());
    // Colour only on a terminal: journald, the console and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
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
        Command::Run {
            once: _,
            settings,
            why_run,
            format,
            lock_file,
            lock_wait,
        } => with_config(settings, |config| {
            let opts = RunOptions {
                why_run,
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
                lock_file: lock_file.unwrap_or_else(lock::default_path),
                lock_wait: Duration::from_secs(600),
            };
            match runtime().block_on(daemon::run(config, opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fatal(&e),
            }
        }),
        Command::Start { config } => with_config(Settings::file_only(config), |config| {
            match runtime().block_on(service::start(&config)) {
                Ok(Started::Systemd) => {
                    eprintln!("cm-agent: started as the systemd unit cm-agent.service");
                    ExitCode::SUCCESS
                }
                Ok(Started::InitScript { log }) => {
                    eprintln!(
                        "cm-agent: started by {} (starts at boot too), logging to {}",
                        service::INIT_SCRIPT,
                        log.display()
                    );
                    ExitCode::SUCCESS
                }
                Ok(Started::Detached { pid, log }) => {
                    eprintln!(
                        "cm-agent: daemon started (pid {pid}), logging to {}",
                        log.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fatal(&e),
            }
        }),
        Command::InstallService { config, now } => match service::install_service(&config, now) {
            Ok(()) => {
                eprintln!("wrote {}", service::UNIT_PATH);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
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
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Refusals stop the agent with their own exit status (and no restart).
fn fatal(e: &Fatal) -> ExitCode {
    eprintln!("error: {e}");
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

async fn run_once(config: Config, opts: RunOptions, format: Format) -> ExitCode {
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
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if human {
        let mode = if opts.why_run { " (why-run)" } else { "" };
        println!("Converging node {}{mode}", node.identity.name);
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
            println!("(server unreachable: converged the cached plan)");
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
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    }
    if outcome.report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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
