//! cm-model: the cookbook format and everything the server, cmctl and the agent
//! must agree on: loading and validating cookbooks, resource specs, attribute
//! precedence, templates, `when` conditions, content manifests and run reports.

pub mod error;
pub mod yaml;

pub use error::{LoadError, Pos};
pub mod manifest;
pub mod metadata;
pub mod paths;
pub mod resources;
pub mod condition;
pub mod runlist;
pub mod recipe;
pub mod attributes;
