//! cm's API, package `cm.v1`: the code generated from cm.proto ([`v1`]),
//! the metadata keys both ends read, and the conversions between cm-model's
//! types and the wire's ([`convert`]).

// A failure is an error the caller can act on, never a panic; tests may
// unwrap (docs/decisions.md, "Lints").
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("cm.v1");
}

pub mod codec;
pub mod convert;

/// The version every binary tells its peer; agents one minor version behind are served.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Response metadata key on a GetPlan (or Watch) refused with
/// FAILED_PRECONDITION because the server has no valid plan for the node
/// (value `1`): the agent converges its last good plan and reports the
/// message as its plan error, rather than treating it as any refusal.
pub const PLAN_ERROR_METADATA: &str = "cm-plan-error";

/// Metadata key on a status that is about the server's state rather than
/// the call: `database` on UNAVAILABLE (the server answered, its database
/// did not), `busy` on RESOURCE_EXHAUSTED (too many connections in the TLS
/// handshake). Agents retry both, and say which it was.
pub const STATUS_CAUSE: &str = "cm-cause";
