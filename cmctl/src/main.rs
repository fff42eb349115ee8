//! cmctl: the admin CLI. Exit status 0 ok, 1 error, 2 usage.

// A failure is an error the caller can act on, never a panic; tests may
// unwrap (docs/decisions.md, "Lints").
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod cli;
mod client;
mod commands;
mod output;

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser};
use cli::{
    AdminCommand, Cli, ClusterCommand, Command, CookbookCommand, DocCommand, NodeCommand, PushWhat,
    SecretCommand, TokenCommand,
};
use cm_proto::v1::{AdminLevel, AssignRequest};
use commands::docs::Kind;
use output::Format;

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
        Command::Cluster { command } => match command {
            ClusterCommand::Show { env, role } => commands::cluster::show(ch, env, role, f).await,
        },
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
                let value = commands::node::attribute_value(&key, &value, string)?;
                commands::node::set(ch, node, key, Some(value), f).await
            }
            NodeCommand::Unset { node, key } => commands::node::set(ch, node, key, None, f).await,
            NodeCommand::Move { node, env, force } => {
                commands::node::move_to(ch, node, env, force, f).await
            }
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
            AdminCommand::Add {
                name,
                level,
                environments,
                out,
            } => {
                let wanted = AdminLevel {
                    name,
                    level,
                    environments,
                };
                commands::access::admin_add(ch, &conn.credential, wanted, &out).await
            }
            AdminCommand::Set {
                name,
                level,
                environments,
            } => {
                let wanted = AdminLevel {
                    name,
                    level,
                    environments,
                };
                commands::access::admin_set(ch, wanted, f).await
            }
            AdminCommand::List => commands::access::admin_list(ch, f).await,
            AdminCommand::Remove { name } => commands::access::admin_remove(ch, name).await,
        },
        Command::Runs {
            node,
            limit,
            all_identities,
        } => commands::history::runs(ch, node, limit, all_identities, f).await,
        Command::Audit { who, limit } => commands::history::audit(ch, who, limit, f).await,
        Command::Dashboard => commands::access::dashboard(ch, f).await,
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
        DocCommand::Delete { name } => commands::docs::delete(ch, kind, name, f).await,
    }
}
