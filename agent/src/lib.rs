//! cm-agent: gathers facts, compiles cookbooks into resources and converges them.

pub mod facts;
