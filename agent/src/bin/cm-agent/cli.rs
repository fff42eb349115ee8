//! The command line: subcommands, their flags, and the server settings
//! shared by `run`, `daemon` and `start`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use cm_agent::config::{self, Config, Overrides, Seconds};
use cm_agent::facts::Cloud;
use cm_model::runlist::{RecipeRef, parse_run_list};

/// cm's node agent: converges a node to its cookbooks.
#[derive(Parser)]
#[command(name = "cm-agent", version, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "CM_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Converge cookbooks from a local directory, without a server.
    ///
    /// Exit status: 0 when every resource converged, 1 when the run failed,
    /// 2 on a usage error.
    #[command(
        after_help = "Example:\n  cm-agent apply --cookbooks cookbooks --run-list memcached --attributes node.yaml --why-run"
    )]
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
        /// This node's place in its roles: role -> {ordinal: N}, YAML.
        #[arg(long, value_name = "FILE.yaml")]
        member: Option<PathBuf>,
        /// Secrets: name -> value, YAML. Never shown in output.
        #[arg(long, value_name = "FILE.yaml")]
        secrets: Option<PathBuf>,
        /// Show what would change, with diffs, and change nothing.
        #[arg(long)]
        why_run: bool,
        /// Show new files whole, not their first 10 lines, size and digest.
        #[arg(long)]
        full_diff: bool,
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
    /// 3 enrollment refused, 4 certificate revoked or expired, 5 converged
    /// the last good plan because the server has no valid plan for this
    /// node (plan error; the report's status is `warning`).
    #[command(
        after_help = "Examples:\n  cm-agent run --once\n  cm-agent run --once --why-run --format json"
    )]
    Run {
        /// One run, then exit (the only mode: `daemon` keeps converging).
        #[arg(long, required = true)]
        once: bool,
        #[command(flatten)]
        settings: Settings,
        /// Show what would change, with diffs, and change nothing (no report is sent).
        #[arg(long)]
        why_run: bool,
        /// Show new files whole, not their first 10 lines, size and digest.
        #[arg(long)]
        full_diff: bool,
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
    #[command(after_help = "Example:\n  cm-agent daemon --config /etc/cm/agent.yaml")]
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
    #[command(after_help = "Example (the last line of a user-data script):\n  cm-agent start")]
    Start {
        /// Settings file.
        #[arg(long, value_name = "FILE", default_value = config::DEFAULT_FILE, env = "CM_CONFIG")]
        config: PathBuf,
    },
    /// Run the checks of this node's roles (their `checks:`) and say which pass.
    ///
    /// Reads the plan the last run cached and changes nothing. Exit status:
    /// 0 every check passed (or the roles have none), 1 a check failed,
    /// 2 no plan cached yet or bad settings.
    #[command(after_help = "Examples:\n  cm-agent check\n  cm-agent check --wait 60 --format json")]
    Check {
        #[command(flatten)]
        settings: Settings,
        /// Run failing checks again, once a second, for up to this long: 30, 2m.
        #[arg(long, value_name = "DURATION", default_value = "0", value_parser = config::parse_duration)]
        wait: u64,
        /// Output: a line per check, or the results as JSON.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Stand in for a node that does not exist: enroll with facts from a
    /// file, then beat every minute until stopped, never converging.
    ///
    /// For trying a cookbook against peers (scripts/try-role.sh). Its
    /// identity and settings live in --state-dir only. Exit status: 0
    /// stopped by SIGTERM/SIGINT (or reported, with --once), 2 bad
    /// settings or facts, 3 enrollment refused, 4 certificate revoked.
    #[command(
        after_help = "Example (the token from the environment, never the command line):\n  CM_TOKEN=$(cat mc1.token) cm-agent pose --state-dir /tmp/peer-mc1 \\\n    --server https://cm:8443 --ca-fingerprint HEX --name mc1 --facts mc1.yaml"
    )]
    Pose {
        /// The posing node's own state dir (identity, settings).
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
        /// Server URL, `https://cm.example.com:8443`.
        #[arg(long, value_name = "URL")]
        server: String,
        /// SHA-256 of the server's CA certificate.
        #[arg(long, value_name = "HEX")]
        ca_fingerprint: String,
        /// Enrollment token for the peer's role and environment.
        #[arg(long, value_name = "TOKEN", env = "CM_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The node name it enrolls under.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Facts to report instead of this machine's, YAML (`ipaddress`
        /// is the address peers see).
        #[arg(long, value_name = "FILE.yaml")]
        facts: PathBuf,
        /// Enroll and report, then exit: without heartbeats the node is
        /// unreachable after the environment's unreachable_after_seconds.
        #[arg(long)]
        once: bool,
    },
    /// Write the systemd unit (/etc/systemd/system/cm-agent.service), unless
    /// the cm-agent package's unit already runs this binary with these settings.
    #[command(after_help = "Example:\n  cm-agent install-service --now")]
    InstallService {
        /// The settings file the unit's daemon reads.
        #[arg(long, value_name = "FILE", default_value = config::DEFAULT_FILE, env = "CM_CONFIG")]
        config: PathBuf,
        /// Also enable and start the unit (without waiting for it).
        #[arg(long)]
        now: bool,
    },
    /// Print shell completions.
    #[command(
        after_help = "Example:\n  cm-agent completions bash > /usr/share/bash-completion/completions/cm-agent"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// Where the agent finds its server and keeps its state: agent.yaml, under
/// these flags and their CM_* variables.
#[derive(Args, Clone)]
pub struct Settings {
    /// Settings file.
    #[arg(long, value_name = "FILE", default_value = config::DEFAULT_FILE, env = "CM_CONFIG")]
    pub config: PathBuf,
    /// Server URL, `https://cm.example.com:8443`.
    #[arg(long, value_name = "URL", env = "CM_SERVER")]
    pub server: Option<String>,
    /// SHA-256 of the server's CA certificate (cm-server prints it).
    #[arg(long, value_name = "HEX", env = "CM_CA_FINGERPRINT")]
    pub ca_fingerprint: Option<String>,
    /// Enrollment token (`cmctl token create`); removed from agent.yaml after use.
    #[arg(long, value_name = "TOKEN", env = "CM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Node name; default: the EC2 instance id, else the hostname.
    #[arg(long, value_name = "NAME", env = "CM_NAME")]
    pub name: Option<String>,
    /// Where to look for cloud metadata: auto reads DMI first and asks EC2 only there.
    #[arg(long, value_enum, env = "CM_CLOUD")]
    pub cloud: Option<Cloud>,
    /// EC2 metadata endpoint (tests and unusual setups).
    #[arg(long, value_name = "URL", env = "CM_IMDS_ENDPOINT")]
    pub imds_endpoint: Option<String>,
    /// Drift-repair interval: 900, 15m, 1h.
    #[arg(long, value_name = "DURATION", env = "CM_INTERVAL", value_parser = config::parse_duration)]
    pub interval: Option<u64>,
    /// Random delay added to each interval, so a fleet does not converge in step.
    #[arg(long, value_name = "DURATION", env = "CM_SPLAY", value_parser = config::parse_duration)]
    pub splay: Option<u64>,
    /// Identity, plan and cookbook cache.
    #[arg(long, value_name = "DIR", env = "CM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where previous versions of changed files are kept.
    #[arg(long, value_name = "DIR", env = "CM_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
}

impl Settings {
    /// A posing node's: everything given, its file in its own state dir.
    pub fn posing(
        state_dir: PathBuf,
        server: String,
        ca_fingerprint: String,
        token: Option<String>,
        name: String,
    ) -> Settings {
        Settings {
            server: Some(server),
            ca_fingerprint: Some(ca_fingerprint),
            token,
            name: Some(name),
            cloud: Some(Cloud::None),
            state_dir: Some(state_dir.clone()),
            ..Settings::file_only(state_dir.join("agent.yaml"))
        }
    }

    /// Only the file: what the daemon started at boot will read.
    pub fn file_only(config: PathBuf) -> Settings {
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

    pub fn load(self) -> Result<Config, String> {
        let over = Overrides {
            server: self.server,
            ca_fingerprint: self.ca_fingerprint,
            token: self.token.map(cm_model::secrets::SecretString::new),
            name: self.name,
            cloud: self.cloud,
            imds_endpoint: self.imds_endpoint,
            interval: self.interval.map(Seconds),
            splay: self.splay.map(Seconds),
            state_dir: self.state_dir,
            backup_dir: self.backup_dir,
        };
        Config::load(&self.config, over).map_err(|e| e.to_string())
    }
}

#[derive(Clone)]
pub struct RunList(pub Vec<RecipeRef>);

fn parse_run_list_arg(s: &str) -> Result<RunList, String> {
    parse_run_list(s).map(RunList)
}
