//! Operating a server: backup and restore of the embedded default, blob
//! garbage collection, and run report retention. The commands
//! (`cm-server backup`, `cm-server restore`) and the background
//! housekeeping call into here; the gRPC services do not, except for the
//! commit's half of the collector's race ([`gc::ensure_stored`]).
//!
//! What is not here: backing up PostgreSQL or S3 (their own tooling does
//! that; docs/operations.md says how).

pub mod backup;
mod files;
pub mod gc;
pub mod maintenance;
pub mod manifest;
pub mod restore;
pub mod snapshot;
mod summary;

pub use summary::BackupSummary;
