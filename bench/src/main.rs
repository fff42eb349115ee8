//! cm-bench: measurements of cm-server under load, for issue 3 ("Figures to
//! measure"), and of the cm-agent binary that ships to nodes. Not a test:
//! it prints figures and never fails on a slow machine, only on wrong
//! answers. Run it in release:
//!
//! ```text
//! cargo run --release -p cm-bench -- plans --nodes 10000 --clients 64 --seconds 20
//! cargo build --release -p cmctl && cargo run --release -p cm-bench -- push
//! cargo build --profile agent -p cm-agent && cargo build --release -p cm-bench \
//!     && target/release/cm-bench agent --agent target/agent/cm-agent
//! target/release/cm-bench cluster --agent target/agent/cm-agent
//! ```
//!
//! See bench/README.md for what each figure means and the figures measured.

mod agent;
mod cluster;
mod cpu;
mod daemons;
mod dashboard;
mod fleet;
mod idle;
mod node;
mod plans;
mod push;
mod server;
mod stats;
mod storm;
mod watchers;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Load generator and measurements for cm-server.
#[derive(Parser)]
#[command(name = "cm-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check-ins: GetPlan requests per second and their latency, unchanged
    /// and first-time, from many clients with their own TLS connections.
    Plans(plans::PlansArgs),
    /// Pushing a 1,000-file cookbook with cmctl: wall time and bytes, first
    /// push and unchanged re-push.
    Push(push::PushArgs),
    /// The agent: `run --once` time on a fresh node and unchanged, a
    /// daemon's idle memory, role-change latency, binary size.
    Agent(agent::AgentArgs),
    /// The cluster view: the background pass when a role's membership
    /// changes at 10,000 nodes, churn under 1,000 Watch streams, and real
    /// daemons rewriting a members file.
    Cluster(cluster::ClusterArgs),
    /// The dashboard at fleet size: each page's time over HTTPS with
    /// 10,000 nodes, each with a last run.
    Dashboard(dashboard::DashboardArgs),
    Idle(idle::IdleArgs),
    Storm(storm::StormArgs),
    /// The simulated agents of `idle`, in a process of their own.
    #[command(hide = true)]
    IdleAgents(idle::IdleAgentsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plans(args) => plans::run(args),
        Command::Push(args) => push::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Dashboard(args) => dashboard::run(args),
        Command::Idle(args) => idle::run(args),
        Command::Storm(args) => storm::run(args),
        Command::IdleAgents(args) => idle::run_agents(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cm-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
