//! cmctl: the admin CLI. Exit status 0 ok, 1 error, 2 usage.

mod client;
mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use cm_proto::v1::AssignRequest;
use commands::docs::Kind;
use output::Format;

/// Admin CLI for cm: push cookbooks, set roles and environments, manage nodes, tokens and secrets.
#[derive(Parser)]
#[command(name = "cmctl", version, about)]
struct Cli {
    /// Admin credential file (default: ~/.config/cm/credential.json, then /var/lib/cm/server/admin.credential).
    #[arg(long, global = true, env = "CM_CREDENTIAL")]
    credential: Option<PathBuf>,
    /// Server URL, overriding the credential's.
    #[arg(long, global = true, env = "CM_SERVER")]
    server: Option<String>,
    /// Output for people (tables) or scripts (JSON).
    #[arg(long, global = true, value_enum, default_value = "human")]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Push a cookbook directory: validate locally, upload only missing files, commit.
    Push {
        #[command(subcommand)]
        what: PushWhat,
    },
    /// Cookbook versions on the server.
    Cookbook {
        #[command(subcommand)]
        command: CookbookCommand,
    },
    /// Roles: run lists and attributes.
    Role {
        #[command(subcommand)]
        command: DocCommand,
    },
    /// Environments: version pins, attributes, timing.
    Env {
        #[command(subcommand)]
        command: DocCommand,
    },
    /// Nodes: inventory, roles, attributes, retirement.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Enrollment tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Secrets, encrypted at rest, readable by nodes of the roles named.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Admins and their credentials.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Run reports, newest first.
    Runs {
        node: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Who changed what, newest first.
    Audit {
        #[arg(long)]
        who: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Print the user-data script that makes a booting node join: settings and `cm-agent start`.
    ///
    /// Creates a token scoped to the roles and environment unless --token is
    /// given. Put the output in an autoscaling group's launch template.
    Userdata {
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[arg(long = "env", default_value = "production")]
        env: String,
        /// Use this token instead of creating one.
        #[arg(long, hide_env_values = true, env = "CM_TOKEN")]
        token: Option<String>,
        /// Validity of the created token: 30m, 1h, 7d.
        #[arg(long, default_value = "7d", value_parser = cm_model::time::parse_duration)]
        ttl: u64,
        /// How many nodes may enroll with the created token.
        #[arg(long, default_value_t = 100)]
        uses: u32,
        /// The server URL as nodes reach it (default: --server, else the credential's).
        #[arg(long, value_name = "URL")]
        agent_server: Option<String>,
        /// The agents' `cloud` setting: auto, ec2 or none.
        #[arg(long, value_parser = ["auto", "ec2", "none"])]
        cloud: Option<String>,
        /// The agents' drift-repair interval: 900, 15m, 1h.
        #[arg(long)]
        interval: Option<String>,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum PushWhat {
    /// A cookbook directory (with metadata.yaml).
    Cookbook { dir: PathBuf },
}

#[derive(Subcommand)]
enum CookbookCommand {
    List {
        name: Option<String>,
    },
    Show {
        name: String,
        version: String,
    },
    /// Delete a version no environment pins.
    Delete {
        name: String,
        version: String,
        /// Delete even if nodes that have a plan would have none (audited).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum DocCommand {
    /// Create or update from a YAML file. Refused, naming the nodes, when
    /// nodes that have a plan would have none.
    Set {
        file: PathBuf,
        /// Store it even if nodes would be left without a plan (audited).
        #[arg(long)]
        force: bool,
    },
    Show {
        name: String,
    },
    List,
    /// Every revision.
    History {
        name: String,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    List {
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        env: Option<String>,
    },
    Show {
        node: String,
    },
    /// Give a node a role; refused when the node would be left without a plan.
    Assign {
        node: String,
        role: String,
        /// Assign even if the node would have no valid plan (audited).
        #[arg(long)]
        force: bool,
    },
    /// Take a role from a node; refused when the node would be left without a plan.
    Unassign {
        node: String,
        role: String,
        /// Unassign even if the node would have no valid plan (audited).
        #[arg(long)]
        force: bool,
    },
    /// Set an attribute on the node (the highest layer). VALUE is JSON
    /// (`128`, `true`, `"text"`, `["a","b"]`); with --string it is taken as text.
    Set {
        node: String,
        key: String,
        value: String,
        /// Store VALUE as a string, as written, instead of reading it as JSON.
        #[arg(long)]
        string: bool,
    },
    Unset {
        node: String,
        key: String,
    },
    /// Retire a node: its certificate is revoked at once.
    Retire {
        node: String,
    },
    /// Where a node's attribute value comes from.
    Explain {
        node: String,
        key: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an enrollment token scoped to roles and an environment; prints the token.
    Create {
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[arg(long = "env", default_value = "production")]
        env: String,
        /// How long it is valid: 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = cm_model::time::parse_duration)]
        ttl: u64,
        /// How many nodes may enroll with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
    },
    List,
    Revoke {
        id: String,
    },
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Set a secret; the value is read from --file or stdin, never the command line.
    Set {
        name: String,
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    List,
    Delete {
        name: String,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Add an admin and write their credential to --out.
    Add {
        name: String,
        #[arg(long)]
        out: PathBuf,
    },
    List,
    Remove {
        name: String,
    },
}

/// `cmctl ... | head`: a closed pipe ends cmctl quietly, as it ends any Unix
/// filter, instead of a panic from `println!` (Rust ignores SIGPIPE by
/// default). Sockets are unaffected: their writes use MSG_NOSIGNAL.
fn end_quietly_on_closed_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: the first thing main does, before any thread exists; SIG_DFL
    // installs no handler code.
    #[allow(unsafe_code)]
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

fn main() -> ExitCode {
    end_quietly_on_closed_pipe();
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "cmctl", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<tonic::Status>() {
                Some(s) => eprintln!("error: {}", s.message()),
                None => eprintln!("error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let path = client::credential_path(cli.credential)?;
    let conn = client::connect(&path, cli.server.as_deref()).await?;
    let ch = conn.channel.clone();
    let f = cli.format;
    match cli.command {
        Command::Push {
            what: PushWhat::Cookbook { dir },
        } => commands::cookbook::push(ch, &dir, f).await,
        Command::Cookbook { command } => match command {
            CookbookCommand::List { name } => commands::cookbook::list(ch, name, f).await,
            CookbookCommand::Show { name, version } => {
                commands::cookbook::show(ch, name, version, f).await
            }
            CookbookCommand::Delete {
                name,
                version,
                force,
            } => commands::cookbook::delete(ch, name, version, force).await,
        },
        Command::Role { command } => doc(ch, Kind::Role, command, f).await,
        Command::Env { command } => doc(ch, Kind::Environment, command, f).await,
        Command::Node { command } => match command {
            NodeCommand::List { role, env } => commands::node::list(ch, role, env, f).await,
            NodeCommand::Show { node } => commands::node::show(ch, node, f).await,
            NodeCommand::Assign { node, role, force } => {
                commands::node::assign(ch, AssignRequest { node, role, force }, true, f).await
            }
            NodeCommand::Unassign { node, role, force } => {
                commands::node::assign(ch, AssignRequest { node, role, force }, false, f).await
            }
            NodeCommand::Set {
                node,
                key,
                value,
                string,
            } => {
                let value = commands::node::attribute_value(&value, string)?;
                commands::node::set(ch, node, key, Some(value), f).await
            }
            NodeCommand::Unset { node, key } => commands::node::set(ch, node, key, None, f).await,
            NodeCommand::Retire { node } => commands::node::retire(ch, node, f).await,
            NodeCommand::Explain { node, key } => commands::node::explain(ch, node, key, f).await,
        },
        Command::Token { command } => match command {
            TokenCommand::Create {
                roles,
                env,
                ttl,
                uses,
            } => commands::access::token_create(ch, roles, env, ttl, uses, f).await,
            TokenCommand::List => commands::access::token_list(ch, f).await,
            TokenCommand::Revoke { id } => commands::access::token_revoke(ch, id).await,
        },
        Command::Userdata {
            roles,
            env,
            token,
            ttl,
            uses,
            agent_server,
            cloud,
            interval,
        } => {
            let server = agent_server
                .or(cli.server)
                .unwrap_or_else(|| conn.credential.server.clone());
            let u = commands::userdata::UserData {
                roles,
                env,
                token,
                ttl,
                uses,
                server,
                cloud,
                interval,
            };
            commands::userdata::userdata(ch, &conn.credential, u).await
        }
        Command::Secret { command } => match command {
            SecretCommand::Set { name, roles, file } => {
                commands::access::secret_set(ch, name, roles, file, f).await
            }
            SecretCommand::List => commands::access::secret_list(ch, f).await,
            SecretCommand::Delete { name } => commands::access::secret_delete(ch, name).await,
        },
        Command::Admin { command } => match command {
            AdminCommand::Add { name, out } => {
                commands::access::admin_add(ch, &conn.credential, name, &out).await
            }
            AdminCommand::List => commands::access::admin_list(ch, f).await,
            AdminCommand::Remove { name } => commands::access::admin_remove(ch, name).await,
        },
        Command::Runs { node, limit } => commands::history::runs(ch, node, limit, f).await,
        Command::Audit { who, limit } => commands::history::audit(ch, who, limit, f).await,
        Command::Completions { .. } => unreachable!("handled before connecting"),
    }
}

async fn doc(
    ch: tonic::transport::Channel,
    kind: Kind,
    command: DocCommand,
    f: Format,
) -> Result<()> {
    match command {
        DocCommand::Set { file, force } => commands::docs::set(ch, kind, &file, force, f).await,
        DocCommand::Show { name } => commands::docs::show(ch, kind, name, f).await,
        DocCommand::List => commands::docs::list(ch, kind, None, f).await,
        DocCommand::History { name } => commands::docs::list(ch, kind, Some(name), f).await,
    }
}
