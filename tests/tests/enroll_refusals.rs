//! Refused enrollments over real TLS: each (unknown, used-up, expired and
//! revoked token, a name a live node holds) is an audit row with the source
//! address and the reason, and a count on /metrics; never the token.

use cm_e2e::{TestServer, enroll};
use cm_proto::v1::Name;
use cm_proto::v1::tokens_client::TokensClient;
use cm_server::store::{NewToken, unix_now};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

/// The token's id: `cmt_ID_SECRET`.
fn token_id(token: &str) -> String {
    token.split('_').nth(1).unwrap().to_string()
}

async fn metrics(s: &TestServer) -> String {
    let mut tcp = tokio::net::TcpStream::connect(s.running.http_addr)
        .await
        .unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_enrollments_are_audited_with_the_source_and_counted_without_the_token() {
    let s = TestServer::start().await;
    let used = s.token("memcached", 1).await;
    enroll(&s, &used, "web-1").await.unwrap();
    let revoked = s.token("memcached", 5).await;
    TokensClient::new(s.admin().await)
        .revoke(Name {
            name: token_id(&revoked),
        })
        .await
        .unwrap();
    let expired = "cmt_0ld70ken_5ecre7".to_string();
    s.running
        .state
        .store
        .create_token(
            &NewToken {
                id: token_id(&expired),
                secret_hash: cm_server::blobs::sha256_hex(expired.as_bytes()),
                roles: vec!["memcached".into()],
                environment: "production".into(),
                expires_at: unix_now() - 60,
                uses: 5,
            },
            "test",
        )
        .await
        .unwrap();
    let fresh = s.token("memcached", 5).await;
    let unknown = "cmt_deadbeef_0123456789abcdef".to_string();

    let attempts = [
        (&unknown, "web-2", "unknown_token"),
        (&used, "web-3", "used_up_token"),
        (&expired, "web-4", "expired_token"),
        (&revoked, "web-5", "revoked_token"),
        (&fresh, "web-1", "name_held"),
    ];
    for (token, node, _) in &attempts {
        let status = enroll(&s, token, node).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{node}: {status:?}");
    }

    let events = s
        .running
        .state
        .store
        .audit(100, Some("enrollment"))
        .await
        .unwrap();
    assert_eq!(events.len(), attempts.len(), "{events:?}");
    for (event, (token, node, reason)) in events.iter().rev().zip(&attempts) {
        assert_eq!(event.what, format!("node.enroll.refused {node}"));
        let details: serde_json::Value =
            serde_json::from_str(event.after_json.as_deref().unwrap()).unwrap();
        assert_eq!(details["reason"], *reason, "{details}");
        assert_eq!(details["node"], *node);
        let source = details["source"].as_str().unwrap();
        assert!(source.starts_with("127.0.0.1:"), "{details}");
        let secret = token.rsplit('_').next().unwrap();
        let row = format!("{event:?}");
        assert!(!row.contains(secret), "the token's secret is in {row}");
        if *reason != "unknown_token" && *reason != "name_held" {
            assert_eq!(details["token"], token_id(token), "{details}");
        }
    }

    let text = metrics(&s).await;
    for (_, _, reason) in &attempts {
        let line = format!("cm_enrollments_refused_total{{reason=\"{reason}\"}} 1");
        assert!(text.contains(&line), "no {line:?} in:\n{text}");
    }
    s.running.stop().await;
}
