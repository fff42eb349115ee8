//! One file per gRPC service, each thin: authenticate ([`auth`], the
//! policy every RPC starts with), validate, call the store or the plan
//! cache, convert. gRPC statuses are made here, from the typed errors of
//! the state, the store and the plan, in one place ([`status`]).

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
pub mod status;
pub mod tokens;
