//! Getting and keeping an identity: enrollment with the token, retried
//! while the server is unreachable ([`connect_with_backoff`], what both the
//! daemon and `cm-agent start` call), and asking the server whether a
//! stored identity still holds.

use std::future::Future;
use std::time::Duration;

use cm_model::secrets::SecretString;
use cm_proto::v1::FactsRequest;
use cm_proto::v1::agent_client::AgentClient;

use super::{Fatal, Node, gather_facts, node_name};
use crate::config::{Config, forget_token};
use crate::facts::Facts;
use crate::remote::RemoteError;
use crate::remote::backoff::Backoff;
use crate::remote::identity::{self, Enrollment, Identity};

/// How [`connect_with_backoff`] ended without a fatal refusal.
pub enum Connected {
    Node(Box<Node>),
    /// `until` completed while the server was still unreachable: the last
    /// attempt's error.
    GaveUp(RemoteError),
}

/// Load the identity or enroll ([`Node::connect`], with fresh facts each
/// time), retrying an unreachable server with [`Backoff`] until it answers
/// or `until` completes (a stop signal, a deadline). A refused token, a
/// revoked or expired certificate and a local problem are fatal at once:
/// trying again would only storm the server. `waiting` hears each failed
/// attempt and how long until the next.
pub async fn connect_with_backoff(
    config: &Config,
    until: impl Future<Output = ()>,
    mut waiting: impl FnMut(&RemoteError, Duration),
) -> Result<Connected, Fatal> {
    let mut until = std::pin::pin!(until);
    let mut backoff = Backoff::new();
    loop {
        let c = config.clone();
        let facts = tokio::task::spawn_blocking(move || gather_facts(&c))
            .await
            .unwrap_or_default();
        let e = match Node::connect(config, &facts).await {
            Ok(node) => return Ok(Connected::Node(Box::new(node))),
            Err(RemoteError::Refused(m)) => return Err(Fatal::Refused(m)),
            Err(RemoteError::Revoked(m)) => return Err(Fatal::Revoked(m)),
            Err(RemoteError::Local(m)) => return Err(Fatal::Setup(m)),
            Err(e) => e,
        };
        // A deadline that passed during the attempt ends it here, before
        // a wait is announced.
        tokio::select! {
            biased;
            () = &mut until => return Ok(Connected::GaveUp(e)),
            () = std::future::ready(()) => {}
        }
        let wait = backoff.next_delay();
        waiting(&e, wait);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut until => return Ok(Connected::GaveUp(e)),
        }
    }
}

pub(super) fn expired(id: &Identity, config: &Config) -> String {
    format!(
        "the certificate of node {} expired {}; it must enroll again: \
         put a new token in {} (`cmctl token create`) and run `cm-agent start`",
        id.name,
        cm_model::time::utc_and_relative(id.expires_at, cm_model::time::now()),
        config.file.display()
    )
}

/// Ask the server whether it still takes `id` (reporting facts on the way).
pub(super) async fn revoked_on_server(id: &Identity, facts: &Facts) -> Result<bool, RemoteError> {
    let channel = id.channel().map_err(RemoteError::Refused)?;
    let facts_json = serde_json::to_string(facts).unwrap_or_default();
    let mut request = tonic::Request::new(FactsRequest { facts_json });
    request.set_timeout(Duration::from_secs(30));
    match AgentClient::new(channel).report_facts(request).await {
        Ok(_) => Ok(false),
        Err(s) => match RemoteError::from(s) {
            RemoteError::Revoked(_) => Ok(true),
            RemoteError::Unreachable(m) => Err(RemoteError::Unreachable(m)),
            _ => Ok(false),
        },
    }
}

pub(super) fn revoked(m: String) -> Fatal {
    Fatal::Revoked(format!(
        "the server no longer accepts this node's certificate ({m}); \
         it was retired or its certificate expired: enroll again with a new token"
    ))
}

pub(super) async fn enroll(config: &Config, facts: &Facts) -> Result<Identity, RemoteError> {
    // Missing settings are a usage error (exit 2), not a refusal (exit 3):
    // no server has been asked anything.
    let missing = |what: &str| {
        RemoteError::Local(format!(
            "this node is not enrolled and has no {what}: set `{what}:` in {} \
             (`cmctl userdata` writes a complete file)",
            config.file.display()
        ))
    };
    let server = config.server_url().map_err(RemoteError::Local)?;
    let pin = config
        .ca_fingerprint
        .as_deref()
        .ok_or_else(|| missing("ca_fingerprint"))?;
    let token = config
        .token
        .as_ref()
        .map(SecretString::expose)
        .ok_or_else(|| missing("token"))?;
    let name = node_name(config, facts);
    let identity = identity::enroll(Enrollment {
        server,
        ca_fingerprint: pin,
        token,
        name: &name,
        facts_json: serde_json::to_string(facts).unwrap_or_default(),
    })
    .await?;
    identity
        .save(&config.state_dir)
        .map_err(|e| RemoteError::Local(format!("cannot keep the identity: {e}")))?;
    if let Err(e) = forget_token(&config.file) {
        tracing::warn!(file = %config.file.display(), error = %e, "cannot remove the used token");
    }
    tracing::info!(node = %name, "enrolled");
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::config::Overrides;

    /// A node config in `dir` whose server is a closed loopback port.
    fn config(dir: &std::path::Path, token: Option<&str>) -> Config {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let token = token.map(|t| format!("token: {t}\n")).unwrap_or_default();
        let file = dir.join("agent.yaml");
        std::fs::write(
            &file,
            format!(
                "server: https://127.0.0.1:{port}\nca_fingerprint: {}\n{token}name: n1\ncloud: none\nstate_dir: {}\n",
                "ab".repeat(32),
                dir.join("state").display()
            ),
        )
        .unwrap();
        Config::load(&file, Overrides::default()).unwrap()
    }

    #[tokio::test]
    async fn an_unreachable_server_is_tried_again_until_told_to_stop() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), Some("t0k3n"));
        let failures = Cell::new(0);
        let stop = tokio::sync::Notify::new();
        let waiting = |e: &RemoteError, _: Duration| {
            assert!(matches!(e, RemoteError::Unreachable(_)), "{e:?}");
            failures.set(failures.get() + 1);
            if failures.get() == 2 {
                stop.notify_one();
            }
        };
        let ended = connect_with_backoff(&config, stop.notified(), waiting)
            .await
            .unwrap();
        assert!(matches!(
            ended,
            Connected::GaveUp(RemoteError::Unreachable(_))
        ));
        assert_eq!(failures.get(), 2, "a second attempt after the first wait");
    }

    #[tokio::test]
    async fn a_node_that_cannot_enroll_here_is_fatal_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let no_token = config(dir.path(), None);
        let never = std::future::pending();
        let waiting = |e: &RemoteError, _: Duration| panic!("retried {e}");
        match connect_with_backoff(&no_token, never, waiting).await {
            Err(Fatal::Setup(m)) => assert!(m.contains("has no token"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("connected without a token"),
        }
    }

    #[tokio::test]
    async fn an_expired_identity_is_fatal_and_says_when_in_utc_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let no_token = config(dir.path(), None);
        let two_days_ago = cm_model::time::now() - 2 * 86_400;
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        Identity {
            name: "n1".into(),
            server: "https://127.0.0.1:1".into(),
            key_pem: String::new(),
            cert_pem: String::new(),
            ca_pem: String::new(),
            issued_at: two_days_ago - 90 * 86_400,
            expires_at: two_days_ago,
        }
        .save(&dir.path().join("state"))
        .unwrap();
        let never = std::future::pending();
        let waiting = |e: &RemoteError, _: Duration| panic!("retried {e}");
        match connect_with_backoff(&no_token, never, waiting).await {
            Err(Fatal::Revoked(m)) => {
                let date = cm_model::time::utc(two_days_ago);
                assert!(
                    m.contains(&format!("node n1 expired {date} UTC (2 days ago)")),
                    "{m}"
                );
                assert!(
                    m.contains("cmctl token create") && m.contains("agent.yaml"),
                    "{m}"
                );
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("connected with an expired certificate"),
        }
    }

    #[tokio::test]
    async fn a_deadline_passed_ends_the_retries_without_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), Some("t0k3n"));
        let passed = std::future::ready(());
        let waiting =
            |e: &RemoteError, _: Duration| panic!("a wait announced after the deadline: {e}");
        let ended = connect_with_backoff(&config, passed, waiting)
            .await
            .unwrap();
        assert!(matches!(
            ended,
            Connected::GaveUp(RemoteError::Unreachable(_))
        ));
    }
}
