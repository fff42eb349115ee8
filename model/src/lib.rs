//! cm-model: the cookbook format and everything the server, cmctl and the agent
//! must agree on: loading and validating cookbooks, resource specs, attribute
//! precedence, templates, `when` conditions, content manifests and run reports,
//! and the one way the programs write a file atomically ([`atomic_file`]).

// A failure is an error the caller can act on, never a panic; tests may
// unwrap (docs/decisions.md, "Lints").
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod atomic_file;
pub mod attributes;
pub mod checks;
pub mod cluster_nodes;
pub mod condition;
pub mod cookbook;
pub mod cookbooks;
pub mod credential;
pub mod error;
pub mod features;
pub mod for_each;
#[doc(hidden)]
pub mod fuzzing;
pub mod log_writer;
pub mod manifest;
pub mod metadata;
pub mod paths;
pub mod recipe;
pub mod report;
pub mod resources;
pub mod role;
pub mod runlist;
pub mod secrets;
pub mod server_url;
pub mod solver;
pub mod template;
#[doc(hidden)]
pub mod testing;
pub mod time;
pub mod yaml;

pub use error::{LoadError, Pos};
/// Re-exported so users of the model (and its fuzz targets) share one version.
pub use serde_json;
