//! The server's URL as admins and nodes write it (`https://cm.example:8443`):
//! parsed once, with the `url` crate, by cmctl, the agent and `cmctl
//! userdata`, so all three accept and refuse the same addresses.
//!
//! cm speaks gRPC over TLS only, so `http://` is refused with a message that
//! says so; left to the gRPC client it fails much later as an obscure
//! "h2 protocol error".

use std::fmt;

/// cm-server's gRPC port by default, suggested when an `http://` URL names none.
pub const DEFAULT_PORT: u16 = 8443;

/// A parsed `https://HOST[:PORT]` server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    host: String,
    port: u16,
}

/// Why a server URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerUrlError {
    #[error("{url:?} is not a URL ({reason}): write it as https://HOST:8443")]
    Syntax { url: String, reason: String },
    #[error(
        "{url:?}: cm speaks TLS only; use https://{host_port} (the server's gRPC port, 8443 by default)"
    )]
    PlainHttp { url: String, host_port: String },
    #[error("{url:?}: the scheme must be https, not {scheme}")]
    Scheme { url: String, scheme: String },
    #[error("{url:?} names no host")]
    NoHost { url: String },
    #[error("{url:?}: a server URL has no user, path, query or fragment")]
    Extra { url: String },
}

impl ServerUrl {
    pub fn parse(text: &str) -> Result<ServerUrl, ServerUrlError> {
        let url = url::Url::parse(text.trim()).map_err(|e| ServerUrlError::Syntax {
            url: text.to_string(),
            reason: e.to_string(),
        })?;
        let host = url.host_str().unwrap_or_default();
        match url.scheme() {
            "https" => {}
            "http" => {
                let port = url.port().unwrap_or(DEFAULT_PORT);
                return Err(ServerUrlError::PlainHttp {
                    url: text.to_string(),
                    host_port: format!("{host}:{port}"),
                });
            }
            other => {
                return Err(ServerUrlError::Scheme {
                    url: text.to_string(),
                    scheme: other.to_string(),
                });
            }
        }
        if host.is_empty() {
            return Err(ServerUrlError::NoHost {
                url: text.to_string(),
            });
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || !matches!(url.path(), "" | "/")
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(ServerUrlError::Extra {
                url: text.to_string(),
            });
        }
        // `host_str` keeps the brackets of an IPv6 literal; TLS names do not.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(ServerUrl {
            host: host.to_string(),
            // The url crate drops a port equal to the scheme's default (443).
            port: url.port_or_known_default().unwrap_or(443),
        })
    }

    /// The host as the server's certificate must name it (no brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "https://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "https://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports_are_read_as_tls_needs_them() {
        let u = ServerUrl::parse("https://cm-server:8443").unwrap();
        assert_eq!((u.host(), u.port()), ("cm-server", 8443));
        let u = ServerUrl::parse("https://[::1]:9000/").unwrap();
        assert_eq!((u.host(), u.port()), ("::1", 9000));
        assert_eq!(u.to_string(), "https://[::1]:9000");
        let u = ServerUrl::parse("https://10.0.0.1").unwrap();
        assert_eq!((u.host(), u.port()), ("10.0.0.1", 443));
    }

    #[test]
    fn plain_http_says_that_cm_speaks_tls() {
        let e = ServerUrl::parse("http://cm:8443").unwrap_err().to_string();
        assert!(e.contains("cm speaks TLS only"), "{e}");
        assert!(e.contains("https://cm:8443"), "{e}");
    }

    #[test]
    fn what_is_not_a_server_url_is_refused() {
        for bad in [
            "cm:8443",
            "https://:8443",
            "ftp://cm",
            "https://u:p@cm:8443",
            "https://cm:8443/x",
            "https://cm:8443?a",
            "https://cm:99999",
            "",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
