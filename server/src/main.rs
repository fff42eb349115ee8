//! cm-server: `serve` (the default), `backup DIR` and `restore DIR`.

// A failure is an error the caller can act on, never a panic; tests may
// unwrap (docs/decisions.md, "Lints").
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use cm_model::tell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use cm_server::dashboard::DashboardConfig;
use cm_server::ops::{self, BackupSummary};
use cm_server::serve::{self, Config};
use cm_server::state::Settings;

/// cm's server: versioned cookbooks, roles, environments, secrets and the node inventory.
#[derive(Parser)]
#[command(name = "cm-server", version, about)]
struct Cli {
    /// Settings file: its keys are these flags in snake_case (`listen`,
    /// `data_dir`, `tls_name: [..]`); flags and variables win over it. Read
    /// when present.
    #[arg(
        long,
        env = "CM_SERVER_CONFIG",
        default_value = cm_server::settings_file::DEFAULT_FILE,
        global = true
    )]
    config: PathBuf,
    #[command(flatten)]
    opts: ServeOpts,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args, Clone)]
struct ServeOpts {
    /// Where the embedded default keeps its database, blobs, CA and keys.
    #[arg(
        long,
        env = "CM_DATA_DIR",
        default_value = "/var/lib/cm/server",
        global = true
    )]
    data_dir: PathBuf,
    /// gRPC over TLS.
    #[arg(long, env = "CM_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// /healthz and /metrics over plain HTTP.
    #[arg(long, env = "CM_HTTP_LISTEN", default_value = "0.0.0.0:8080")]
    http_listen: SocketAddr,
    /// The dashboard over TLS (docs/dashboard.md), or `off`.
    #[arg(long, env = "CM_DASHBOARD_LISTEN", default_value = "0.0.0.0:8444", value_parser = listen_or_off)]
    dashboard_listen: Listen,
    /// The URL admins open the dashboard at (login links start with it); default
    /// https://HOST:PORT with the public URL's host and the dashboard's port.
    #[arg(long, env = "CM_DASHBOARD_URL")]
    dashboard_url: Option<String>,
    /// The dashboard's certificate chain (PEM), e.g. one browsers trust; with
    /// --dashboard-key. Default: a certificate from cm's CA.
    #[arg(long, env = "CM_DASHBOARD_CERT")]
    dashboard_cert: Option<PathBuf>,
    #[arg(long, env = "CM_DASHBOARD_KEY")]
    dashboard_key: Option<PathBuf>,
    /// A name in the server certificate (repeatable); default: hostname, localhost, 127.0.0.1.
    #[arg(long = "tls-name", env = "CM_TLS_NAMES", value_delimiter = ',')]
    tls_names: Vec<String>,
    /// postgres://USER:PASS@HOST/DB to share state between replicas; default: SQLite in the data dir.
    #[arg(long, env = "CM_DATABASE")]
    database: Option<String>,
    /// s3://BUCKET for blobs shared between replicas; default: the data dir.
    #[arg(long, env = "CM_BLOBS")]
    blobs: Option<String>,
    /// S3 endpoint URL (for S3-compatible stores); credentials from the usual AWS variables.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    s3_endpoint: Option<String>,
    #[arg(long, env = "AWS_REGION")]
    s3_region: Option<String>,
    /// The CA every replica shares (PEM); with --ca-key.
    #[arg(long, env = "CM_CA_CERT")]
    ca_cert: Option<PathBuf>,
    #[arg(long, env = "CM_CA_KEY")]
    ca_key: Option<PathBuf>,
    /// The secrets key file every replica shares (or CM_SECRETS_KEY: the key itself, hex or
    /// base64); default: DATA_DIR/secrets.key, created on first start.
    #[arg(long, env = "CM_SECRETS_KEY_FILE")]
    secrets_key: Option<PathBuf>,
    /// URL admins and nodes use to reach this server (written into the admin credential).
    #[arg(long, env = "CM_PUBLIC_URL")]
    public_url: Option<String>,
    /// Days a node certificate lives.
    #[arg(long, default_value_t = 90)]
    node_cert_days: u32,
    /// Days run reports are kept; older ones are pruned hourly.
    #[arg(
        long,
        env = "CM_KEEP_RUNS_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    keep_runs_days: u32,
    /// Connections allowed in the TLS handshake at once; more are answered
    /// RESOURCE_EXHAUSTED (agents retry with jitter).
    #[arg(
        long,
        env = "CM_MAX_TLS_HANDSHAKES",
        default_value_t = 2048,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    max_tls_handshakes: u32,
}

/// An address to listen on, or none.
#[derive(Clone, Copy)]
enum Listen {
    On(SocketAddr),
    Off,
}

fn listen_or_off(text: &str) -> Result<Listen, String> {
    match text {
        "off" => Ok(Listen::Off),
        addr => addr
            .parse()
            .map(Listen::On)
            .map_err(|e| format!("{e}: give ADDRESS:PORT or off")),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    #[command(
        after_help = "Example:\n  cm-server serve --data-dir /var/lib/cm/server --listen 0.0.0.0:8443"
    )]
    Serve,
    /// Back up the embedded default (database, blobs, CA, keys) into DIR, a
    /// new or empty directory; safe while the server is serving.
    #[command(after_help = "Example:\n  cm-server backup /var/backups/cm-$(date +%F)")]
    Backup {
        /// Where to write the backup: a new or empty directory.
        dir: PathBuf,
        /// Lines for people, or one JSON object for scripts.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Restore the backup in DIR into the data dir, which must be empty or
    /// absent; every file is verified first.
    #[command(
        after_help = "Examples:\n  cm-server restore --check /var/backups/cm-2026-12-01\n  cm-server restore /var/backups/cm-2026-12-01"
    )]
    Restore {
        /// A directory `cm-server backup` wrote.
        dir: PathBuf,
        /// Only verify the backup; write nothing.
        #[arg(long)]
        check: bool,
        /// Lines for people, or one JSON object for scripts.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Print shell completions.
    #[command(
        after_help = "Example:\n  cm-server completions bash > /usr/share/bash-completion/completions/cm-server"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Human,
    Json,
}

fn config(o: ServeOpts) -> Config {
    let mut c = Config::embedded(&o.data_dir);
    c.listen = o.listen;
    c.http_listen = o.http_listen;
    c.dashboard = match o.dashboard_listen {
        Listen::On(listen) => Some(DashboardConfig {
            listen,
            url: o.dashboard_url,
            cert: o.dashboard_cert,
            key: o.dashboard_key,
        }),
        Listen::Off => None,
    };
    if !o.tls_names.is_empty() {
        c.tls_names = o.tls_names;
    }
    c.database = o.database;
    c.blobs = o.blobs;
    c.s3_endpoint = o.s3_endpoint;
    c.s3_region = o.s3_region;
    c.ca_cert = o.ca_cert;
    c.ca_key = o.ca_key;
    c.secrets_key = o.secrets_key;
    c.public_url = o.public_url;
    c.settings = Settings {
        node_cert_days: o.node_cert_days,
        ..Settings::default()
    };
    c.maintenance.keep_runs = Duration::from_secs(u64::from(o.keep_runs_days) * 86400);
    c.wire.max_handshakes = o.max_tls_handshakes as usize;
    c
}

fn main() -> ExitCode {
    let cli = match parse_with_settings_file() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Some(Command::Completions { shell }) = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "cm-server",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("CM_LOG").unwrap_or_else(|_| "info".into());
    // Colour only on a terminal: journald and `docker logs` get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(cm_model::log_writer::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            tell!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => runtime.block_on(serve_until_signal(config(cli.opts))),
        Command::Backup { dir, format } => runtime.block_on(async {
            let manifest = ops::backup::backup(&config(cli.opts), &dir).await?;
            print(BackupSummary::new("backup", &dir, None, &manifest), format)
        }),
        Command::Restore { dir, check, format } => runtime.block_on(async {
            let summary = if check {
                BackupSummary::new("check", &dir, None, &ops::restore::check(&dir).await?)
            } else {
                let data_dir = cli.opts.data_dir;
                let manifest = ops::restore::restore(&dir, &data_dir).await?;
                BackupSummary::new("restore", &dir, Some(&data_dir), &manifest)
            };
            print(summary, format)
        }),
        Command::Completions { .. } => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tell!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The command line over the settings file over the defaults.
fn parse_with_settings_file() -> Result<Cli, ExitCode> {
    let argv = std::env::args_os().collect();
    let (argv, file) = cm_server::settings_file::merge(Cli::command(), argv).map_err(|e| {
        tell!("error: {e}");
        ExitCode::from(2)
    })?;
    Cli::try_parse_from(argv).map_err(|e| {
        let _ = e.print();
        if e.use_stderr()
            && let Some(file) = file
        {
            tell!(
                "(settings not on the command line came from {})",
                file.display()
            );
        }
        ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
    })
}

/// The summary on stdout. The work is done by now, so a closed pipe
/// (`cm-server backup DIR | head -1`) is not an error worth a panic.
fn print(summary: BackupSummary, format: Format) -> Result<()> {
    let text = match format {
        Format::Human => summary.human(),
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&summary)?),
    };
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    Ok(())
}

async fn serve_until_signal(config: Config) -> Result<()> {
    match cm_server::wire::raise_open_files_limit() {
        Ok(limit) if limit < 65_536 => tracing::warn!(
            limit,
            "the open files limit is low for a large fleet (one connection per node): \
             raise LimitNOFILE / ulimit -n"
        ),
        Ok(limit) => tracing::info!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open files limit"),
    }
    let data_dir = config.data_dir.clone();
    let running = serve::start(config).await?;
    tell!(
        "cm-server {} serving gRPC on {} and HTTP on {}",
        cm_proto::VERSION,
        running.grpc_addr,
        running.http_addr
    );
    if let (Some(addr), Some(url)) = (running.dashboard_addr, running.state.dashboard_url.get()) {
        tell!("dashboard on {addr}, at {url} (`cmctl dashboard` prints a login link)");
    }
    tell!("data dir: {}", data_dir.display());
    tell!(
        "CA fingerprint (sha256): {}",
        running.state.pki.ca().fingerprint()
    );
    if let Some(path) = &running.credential {
        tell!(
            "admin credential written to {} (cmctl finds it there, or set CM_CREDENTIAL)",
            path.display()
        );
    }
    cm_server::systemd::notify("READY=1");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tell!("stopping");
    cm_server::systemd::notify("STOPPING=1");
    running.stop().await;
    Ok(())
}
