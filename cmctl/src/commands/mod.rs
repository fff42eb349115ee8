//! One file per group of nouns; each command is a function over a channel.

pub mod access;
pub mod cluster;
pub mod cookbook;
pub mod docs;
pub mod history;
pub mod node;
pub mod userdata;
