//! cm-agent: gathers facts, compiles cookbooks into resources and converges them.

// A failure is an error the caller can act on, never a panic; tests may
// unwrap (docs/decisions.md, "Lints").
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod apply;
pub mod boot;
pub mod checks;
pub mod command;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod facts;
pub mod fsutil;
pub mod lock;
pub mod node;
pub mod output;
pub mod remote;
pub mod resources;
pub mod restart;
pub mod safe_path;
pub mod signals;
