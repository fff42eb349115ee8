//! cm's API, package `cm.v1`: generated from cm.proto, nothing else lives here.

#![allow(clippy::all, clippy::pedantic)]

pub mod v1 {
    tonic::include_proto!("cm.v1");
}

/// The version every binary tells its peer; agents one minor version behind are served.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Metadata key on an UNAVAILABLE status saying what is unavailable
/// (`database`): the server answered, so the network is fine, and agents
/// say "server unavailable" rather than "server unreachable".
pub const UNAVAILABLE_CAUSE: &str = "cm-unavailable";
