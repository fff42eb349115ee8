//! The gRPC port's wire: how many connections may be in the TLS handshake
//! at once and what an extra one gets ([`accept`]), the HTTP/2 limits
//! every connection is held to ([`WireLimits`]), and the rules every call
//! meets before tonic decodes it and after ([`calls`]: no client
//! certificate is UNAUTHENTICATED before a byte is decoded; an over-limit
//! message is RESOURCE_EXHAUSTED and an undecodable one INVALID_ARGUMENT,
//! as gRPC defines them).
//!
//! The defaults hold a boot storm of a thousand nodes enrolling at once
//! (each handshake is one of 2,048 allowed in progress) and a hundred
//! thousand idle Watch streams, one connection per node: a stream is
//! never closed for being idle, and the keepalive ping each connection
//! costs comes at most once a minute. The figures are in docs/server.md.
//!
//! What a call may do once it is decoded (identity, revocation, policy) is
//! [`crate::api::auth`]'s business, not this module's.

pub mod accept;
pub mod calls;

use std::time::Duration;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// How the gRPC port holds its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireLimits {
    /// Connections in the TLS handshake at once; more are answered
    /// RESOURCE_EXHAUSTED (or closed, see [`accept`]).
    pub max_handshakes: usize,
    /// Of the connections over `max_handshakes`, how many may be taken
    /// through a handshake at once only to be answered RESOURCE_EXHAUSTED;
    /// the rest are closed before any TLS work.
    pub max_busy_answers: usize,
    /// A handshake (or a busy answer) that takes longer is dropped.
    pub handshake_timeout: Duration,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS, per connection. An agent
    /// uses two or three at once (its Watch stream and a call or two).
    pub max_concurrent_streams: u32,
    /// HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE: the metadata of one call.
    pub max_header_list_size: u32,
    /// How often the server pings a connection to find a dead peer; a
    /// connection whose peer answers is never closed, however idle.
    pub keepalive_interval: Duration,
    /// How long an unanswered ping waits before the connection is closed.
    pub keepalive_timeout: Duration,
}

impl Default for WireLimits {
    fn default() -> Self {
        WireLimits {
            max_handshakes: 2048,
            max_busy_answers: 64,
            handshake_timeout: crate::pki::HANDSHAKE_TIMEOUT,
            max_concurrent_streams: 128,
            max_header_list_size: 16 << 10,
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

/// Raise this process's limit of open files to the most it may have (the
/// hard limit): every node's Watch stream is a connection, and the usual
/// soft limit (1,024) would refuse connections long before a fleet of
/// 100,000 nodes. Returns the limit now in force.
pub fn raise_open_files_limit() -> nix::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(getrlimit(Resource::RLIMIT_NOFILE)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, hard.min(1024), hard).unwrap();
        assert_eq!(raise_open_files_limit().unwrap(), hard);
    }
}
