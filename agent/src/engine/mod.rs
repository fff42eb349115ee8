//! The converge engine: compile cookbooks into resources, then converge them.
//! It knows nothing of servers: the agent's local `apply` and its daemon both
//! hand it cookbooks, a run list, attributes, facts, secrets and a cluster view.

mod compile;
mod converge;

pub use compile::{CompiledResource, Inputs, compile, cookbooks_needed, expand_run_list};
pub use converge::{Options, SECRET_NOTE, converge};
