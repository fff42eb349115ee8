//! cm-server: the gRPC services admins and agents talk to, the storage behind
//! them (SQLite or PostgreSQL, a local directory or S3 for blobs), the CA that
//! identifies every caller, and plan resolution.

// A failure is an error the caller can act on, never a panic; tests may
// unwrap (docs/decisions.md, "Lints").
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod api;
pub mod blobs;
pub mod cluster_view;
pub mod dashboard;
pub mod data_dir;
pub mod enroll_refusals;
pub mod facts;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod ops;
pub mod pki;
pub mod plan;
pub mod recompute;
pub mod replication;
pub mod reports;
pub mod secretbox;
pub mod serve;
pub mod settings_file;
pub mod state;
pub mod store;
pub mod systemd;
pub mod version;
pub mod watch;
pub mod wire;
