//! The command line: every command, its flags, its help and an example.
//! `main.rs` dispatches; a test below checks that every leaf command has a
//! description and an example, so `--help` always shows how to use it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::output::Format;

/// Admin CLI for cm: push cookbooks, set roles and environments, manage nodes, tokens and secrets.
#[derive(Parser)]
#[command(
    name = "cmctl",
    version,
    about,
    after_help = "Exit status: 0 ok, 1 error, 2 usage.\n\nExample:\n  cmctl push cookbook cookbooks/memcached && cmctl role set roles/memcached.yaml"
)]
pub struct Cli {
    /// Admin credential file (default: ~/.config/cm/credential.json, then /var/lib/cm/server/admin.credential).
    #[arg(long, global = true, env = "CM_CREDENTIAL")]
    pub credential: Option<PathBuf>,
    /// Server URL, overriding the credential's.
    #[arg(long, global = true, env = "CM_SERVER")]
    pub server: Option<String>,
    /// Output for people (tables) or scripts (JSON).
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub format: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Nodes: inventory, roles, environments, attributes, retirement.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// The cluster view: each role's members, their ordinals and state.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
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
    ///
    /// A node's are its current identity's; runs of an identity that held
    /// the name before it was enrolled again are marked `retired` in the
    /// IDENTITY column.
    #[command(
        after_help = "Examples:\n  cmctl runs\n  cmctl runs web-1 --limit 5\n  cmctl runs web-1 --all-identities --format json"
    )]
    Runs {
        /// Only this node's runs.
        node: Option<String>,
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// With NODE: also the runs of identities that held its name before.
        #[arg(long)]
        all_identities: bool,
    },
    /// Print a one-time login link to the web dashboard (docs/dashboard.md).
    ///
    /// The link works once, within five minutes, and starts a session of
    /// eight hours as this credential's admin. Treat it like a password.
    #[command(after_help = "Examples:\n  cmctl dashboard\n  cmctl dashboard --format json")]
    Dashboard,
    /// Who changed what, newest first.
    #[command(after_help = "Examples:\n  cmctl audit\n  cmctl audit --who alice --limit 10")]
    Audit {
        /// Only this admin's changes.
        #[arg(long)]
        who: Option<String>,
        /// How many events to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Print the user-data script that makes a booting node join: settings and `cm-agent start`.
    ///
    /// Creates a token scoped to the roles and environment unless --token is
    /// given. Put the output in an autoscaling group's launch template.
    #[command(
        after_help = "Example:\n  cmctl userdata --role memcached --env production > user-data"
    )]
    Userdata {
        /// A role the nodes get (repeat for several).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// The environment the nodes join.
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
    #[command(after_help = "Example:\n  cmctl completions bash > /etc/bash_completion.d/cmctl")]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
pub enum PushWhat {
    /// A cookbook directory (with metadata.yaml): validated here exactly as
    /// nodes compile it, then only the files the server lacks are uploaded.
    #[command(after_help = "Example:\n  cmctl push cookbook cookbooks/memcached")]
    Cookbook {
        /// The cookbook's directory.
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum CookbookCommand {
    /// Cookbook versions, newest first.
    #[command(after_help = "Examples:\n  cmctl cookbook list\n  cmctl cookbook list memcached")]
    List {
        /// Only this cookbook's versions.
        name: Option<String>,
    },
    /// One version: its files, dependencies and who pushed it.
    #[command(after_help = "Example:\n  cmctl cookbook show memcached 1.0.0")]
    Show { name: String, version: String },
    /// Delete a version no environment pins.
    #[command(after_help = "Example:\n  cmctl cookbook delete memcached 0.9.0")]
    Delete {
        name: String,
        version: String,
        /// Delete even if nodes that have a plan would have none (audited).
        #[arg(long)]
        force: bool,
    },
}

/// The commands roles and environments share; `Kind` says which.
#[derive(Subcommand)]
pub enum DocCommand {
    /// Create or update from a YAML file.
    ///
    /// Refused, naming the nodes, when nodes that have a plan would have none.
    #[command(
        after_help = "Examples:\n  cmctl role set roles/memcached.yaml\n  cmctl env set environments/production.yaml"
    )]
    Set {
        /// The YAML file (`roles/NAME.yaml`, `environments/NAME.yaml`).
        file: PathBuf,
        /// Store it even if nodes would be left without a plan (audited).
        #[arg(long)]
        force: bool,
    },
    /// The current revision as YAML.
    #[command(after_help = "Examples:\n  cmctl role show memcached\n  cmctl env show production")]
    Show { name: String },
    /// Every one, with its revision.
    #[command(after_help = "Examples:\n  cmctl role list\n  cmctl env list --format json")]
    List,
    /// Every revision, newest first, with who set it.
    #[command(
        after_help = "Examples:\n  cmctl role history memcached\n  cmctl env history production"
    )]
    History { name: String },
    /// Delete one that no node, live token or (for a role) secret uses, with its history.
    ///
    /// Refused, naming the users, while anything still uses it; the audit
    /// keeps its last revision.
    #[command(after_help = "Examples:\n  cmctl role delete old-web\n  cmctl env delete staging")]
    Delete {
        /// The role's or environment's name.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Members of each role, by environment and ordinal: node, state, address, last check-in.
    ///
    /// Members are the active and unreachable nodes of a role; plans carry
    /// the same lists to the cookbooks that declare the role.
    #[command(
        after_help = "Examples:\n  cmctl cluster show\n  cmctl cluster show --env production --role cassandra --format json"
    )]
    Show {
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
        /// Only this role.
        #[arg(long)]
        role: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Every node: environment, roles, state, last check-in, last run, plan.
    #[command(
        after_help = "Examples:\n  cmctl node list\n  cmctl node list --role memcached --env production --format json"
    )]
    List {
        /// Only nodes with this role.
        #[arg(long)]
        role: Option<String>,
        /// Only nodes in this environment.
        #[arg(long)]
        env: Option<String>,
    },
    /// One node: facts, roles, identity, last run and plan.
    #[command(after_help = "Example:\n  cmctl node show i-0abc123")]
    Show { node: String },
    /// Give a node a role; refused when the node would be left without a plan.
    #[command(after_help = "Example:\n  cmctl node assign web-1 memcached")]
    Assign {
        node: String,
        role: String,
        /// Assign even if the node would have no valid plan (audited).
        #[arg(long)]
        force: bool,
    },
    /// Take a role from a node; refused when the node would be left without a plan.
    #[command(after_help = "Example:\n  cmctl node unassign web-1 memcached")]
    Unassign {
        node: String,
        role: String,
        /// Unassign even if the node would have no valid plan (audited).
        #[arg(long)]
        force: bool,
    },
    /// Set an attribute on the node (the highest layer).
    ///
    /// VALUE is JSON (`128`, `true`, `"text"`, `["a","b"]`); with --string it
    /// is taken as text.
    #[command(
        after_help = "Examples:\n  cmctl node set web-1 memcached.memory_mb 512\n  cmctl node set web-1 app.banner --string 'Hello'"
    )]
    Set {
        node: String,
        /// A dotted attribute path.
        key: String,
        value: String,
        /// Store VALUE as a string, as written, instead of reading it as JSON.
        #[arg(long)]
        string: bool,
    },
    /// Remove an attribute the node layer set.
    #[command(after_help = "Example:\n  cmctl node unset web-1 memcached.memory_mb")]
    Unset {
        node: String,
        /// A dotted attribute path.
        key: String,
    },
    /// Move a node to another environment; refused when it would be left without a plan.
    ///
    /// The node leaves its roles' membership in the old environment and
    /// joins them in the new one with the lowest free ordinals; its agent
    /// gets the new plan within seconds.
    #[command(after_help = "Example:\n  cmctl node move web-1 staging")]
    Move {
        /// The node's name.
        node: String,
        /// The environment to move it to; it must exist.
        env: String,
        /// Move even if the node would have no valid plan there (audited).
        #[arg(long)]
        force: bool,
    },
    /// Retire a node: its certificate is revoked at once.
    #[command(after_help = "Example:\n  cmctl node retire i-0abc123")]
    Retire { node: String },
    /// Where a node's attribute value comes from, layer by layer.
    #[command(after_help = "Example:\n  cmctl node explain web-1 memcached.memory_mb")]
    Explain {
        node: String,
        /// A dotted attribute path.
        key: String,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an enrollment token scoped to roles and an environment; prints the token.
    #[command(
        after_help = "Example:\n  cmctl token create --role memcached --env production --ttl 7d --uses 100"
    )]
    Create {
        /// A role the nodes get (repeat for several); it must exist.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// The environment the nodes join; it must exist.
        #[arg(long = "env", default_value = "production")]
        env: String,
        /// How long it is valid: 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = cm_model::time::parse_duration)]
        ttl: u64,
        /// How many nodes may enroll with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
    },
    /// Every token: scope, expiry, uses left (never the secret).
    #[command(after_help = "Example:\n  cmctl token list --format json")]
    List,
    /// Revoke a token at once; nodes already enrolled keep working.
    #[command(after_help = "Example:\n  cmctl token revoke 7d5472b0")]
    Revoke {
        /// The token's id (`cmt_ID_...`, or the ID column of `token list`).
        id: String,
    },
}

#[derive(Subcommand)]
pub enum SecretCommand {
    /// Set a secret; the value is read from --file or stdin, never the command line.
    #[command(
        after_help = "Examples:\n  cmctl secret set db_password --role web --file ./db_password\n  printf %s \"$PASS\" | cmctl secret set db_password --role web"
    )]
    Set {
        name: String,
        /// A role whose nodes may read it (repeat for several).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Read the value from this file instead of stdin.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Every secret's name and readers (never a value).
    #[command(after_help = "Example:\n  cmctl secret list")]
    List,
    /// Delete a secret; nodes no longer get it in their plans.
    #[command(after_help = "Example:\n  cmctl secret delete db_password")]
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Add an admin and write their credential to --out.
    ///
    /// viewer: reads only; operator: also nodes, tokens, roles,
    /// environments and pushes; owner: also admins and secrets. With
    /// --env, changes are limited to those environments (their documents,
    /// nodes and tokens); roles, cookbooks and secrets need an admin of all.
    #[command(
        after_help = "Example:\n  cmctl admin add alice --level operator --env staging --out alice.credential"
    )]
    Add {
        name: String,
        /// viewer, operator or owner.
        #[arg(long, value_parser = ["viewer", "operator", "owner"])]
        level: String,
        /// An environment the admin may change (repeat for several; none: all).
        #[arg(long = "env", value_name = "ENV")]
        environments: Vec<String>,
        /// Where to write the new admin's credential (created 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Change an admin's level and environments, from their next call.
    #[command(after_help = "Example:\n  cmctl admin set alice --level viewer")]
    Set {
        name: String,
        /// viewer, operator or owner.
        #[arg(long, value_parser = ["viewer", "operator", "owner"])]
        level: String,
        /// An environment the admin may change (repeat for several; none: all).
        #[arg(long = "env", value_name = "ENV")]
        environments: Vec<String>,
    },
    /// Every admin, their level and environments, and when they were added.
    #[command(after_help = "Example:\n  cmctl admin list")]
    List,
    /// Remove an admin; their credential stops working at once.
    #[command(after_help = "Example:\n  cmctl admin remove alice")]
    Remove { name: String },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Help and examples of every command: tests/tests/help.rs.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
