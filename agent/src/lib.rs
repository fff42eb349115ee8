//! cm-agent: gathers facts, compiles cookbooks into resources and converges them.

pub mod apply;
pub mod command;
pub mod engine;
pub mod facts;
pub mod fsutil;
pub mod lock;
pub mod output;
pub mod resources;
pub mod signals;
