//! One file per gRPC service, each thin: authenticate ([`auth`], the
//! policy every RPC starts with), validate, call the store or the plan
//! cache, convert.

pub mod admins;
pub mod agent;
pub mod audit;
pub mod auth;
pub mod convert;
pub mod cookbooks;
pub mod documents;
pub mod nodes;
pub mod runs;
pub mod secrets;
pub mod tokens;
