//! The agent API over real TLS: enrollment, plans, blobs, watch, and every
//! refusal: no certificate, a node calling admin APIs, another node's blobs,
//! used-up tokens, a retired node.

use std::time::Duration;

use cm_e2e::{TestServer, enroll, full_plan, push_cookbook, repo, watch};
use cm_proto::v1::agent_client::AgentClient;
use cm_proto::v1::nodes_client::NodesClient;
use cm_proto::v1::roles_client::RolesClient;
use cm_proto::v1::tokens_client::TokensClient;
use cm_proto::v1::{Document, Empty, FetchBlobRequest, GetPlanRequest, Name};
use tokio_stream::StreamExt;
use tonic::Code;

/// A server with the memcached cookbook, role and environment, and a token.
async fn fleet() -> (TestServer, String) {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    push_cookbook(&s, &repo().join("cookbooks/memcached")).await;
    let mut roles = RolesClient::new(admin.clone());
    roles
        .set(Document {
            yaml: std::fs::read_to_string(repo().join("roles/memcached.yaml")).unwrap(),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = s.token("memcached", 2).await;
    (s, token)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_enrolls_gets_its_plan_and_its_blobs() {
    let (s, token) = fleet().await;
    let (cert, key) = enroll(&s, &token, "node-1").await.unwrap();
    let mut agent = AgentClient::new(s.channel(Some((&cert, &key))).await);
    let plan = agent
        .get_plan(GetPlanRequest {
            since: String::new(),
            agent_version: cm_proto::VERSION.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let plan = plan.plan.expect("a plan");
    assert_eq!(plan.run_list, ["memcached::default"]);
    assert_eq!(plan.cookbooks[0].name, "memcached");
    let attrs: serde_json::Value = serde_json::from_str(&plan.attributes_json).unwrap();
    assert_eq!(
        attrs["memcached"]["memory_percent"], 50,
        "the role's attribute"
    );
    // Asking again with the hash: unchanged, no plan sent.
    let again = agent
        .get_plan(GetPlanRequest {
            since: plan.hash.clone(),
            agent_version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(again.unchanged && again.plan.is_none());
    // A blob of the plan streams; one that is not in it is refused.
    let digest = plan.cookbooks[0].manifest[0].sha256.clone();
    let mut stream = agent
        .fetch_blob(FetchBlobRequest { sha256: digest })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.next().await.unwrap().is_ok());
    let err = agent
        .fetch_blob(FetchBlobRequest {
            sha256: "0".repeat(64),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_without_certificate_for_nodes_on_admin_apis_and_for_used_tokens() {
    let (s, token) = fleet().await;
    let anonymous = s.channel(None).await;
    let err = AgentClient::new(anonymous.clone())
        .get_plan(GetPlanRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(
        NodesClient::new(anonymous)
            .list(cm_proto::v1::ListNodesRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let (cert, key) = enroll(&s, &token, "node-1").await.unwrap();
    let node = s.channel(Some((&cert, &key))).await;
    let err = TokensClient::new(node.clone())
        .list(Empty {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // The name is held by an active node: the token holder cannot take it over.
    let err = enroll(&s, &token, "node-1").await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    enroll(&s, &token, "node-2").await.unwrap();
    // Two uses, both gone (the refused take-over did not consume one... or did; either way none is left now).
    let err = enroll(&s, &token, "node-3").await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("used up") || err.message().contains("no token"),
        "{}",
        err.message()
    );
    let err = enroll(&s, "cmt_nope_nope", "node-4").await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retired_node_is_refused_at_once() {
    let (s, token) = fleet().await;
    let (cert, key) = enroll(&s, &token, "node-1").await.unwrap();
    let mut agent = AgentClient::new(s.channel(Some((&cert, &key))).await);
    agent.get_plan(GetPlanRequest::default()).await.unwrap();
    NodesClient::new(s.admin().await)
        .retire(Name {
            name: "node-1".into(),
        })
        .await
        .unwrap();
    let err = agent.get_plan(GetPlanRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_change_reaches_the_watch_stream() {
    let (s, token) = fleet().await;
    let (cert, key) = enroll(&s, &token, "node-1").await.unwrap();
    let mut agent = AgentClient::new(s.channel(Some((&cert, &key))).await);
    let plan = full_plan(&mut agent).await;
    let mut events = watch(&mut agent, &plan.hash).await;
    let yaml = std::fs::read_to_string(repo().join("roles/memcached.yaml"))
        .unwrap()
        .replace("memory_percent: 50", "memory_percent: 60");
    RolesClient::new(s.admin().await)
        .set(Document {
            yaml,
            ..Default::default()
        })
        .await
        .unwrap();
    // A pass still settling the fleet's enrollment may repeat the hash the
    // node has (agents ignore such an event): the change's comes next.
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap();
        if event.plan_hash != plan.hash {
            break;
        }
    }
    let new = agent
        .get_plan(GetPlanRequest {
            since: plan.hash,
            agent_version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let attrs: serde_json::Value =
        serde_json::from_str(&new.plan.unwrap().attributes_json).unwrap();
    assert_eq!(attrs["memcached"]["memory_percent"], 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn renewal_issues_a_new_certificate_and_revokes_the_old_one() {
    let (s, token) = fleet().await;
    let (cert, key) = enroll(&s, &token, "node-1").await.unwrap();
    let mut old = AgentClient::new(s.channel(Some((&cert, &key))).await);
    let (new_key, csr) = cm_server::pki::new_key_and_csr("node-1").unwrap();
    let renewed = old
        .renew(cm_proto::v1::RenewRequest { csr_pem: csr })
        .await
        .unwrap()
        .into_inner();
    let mut new = AgentClient::new(s.channel(Some((&renewed.certificate_pem, &new_key))).await);
    new.get_plan(GetPlanRequest::default()).await.unwrap();
    let err = old.get_plan(GetPlanRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_whose_certificate_expired_is_retired_when_its_name_enrolls_again() {
    let (s, token) = fleet().await;
    let (cert, key) = enroll(&s, &token, "node-1").await.unwrap();
    let mut old_agent = AgentClient::new(s.channel(Some((&cert, &key))).await);
    old_agent.get_plan(GetPlanRequest::default()).await.unwrap();
    // The server's record says the certificate ran out a minute ago (the
    // certificate itself still passes TLS, so the revocation is visible).
    let store = &s.running.state.store;
    let old = store.node("node-1").await.unwrap();
    store
        .set_node_cert("node-1", &old.cert_serial, cm_server::state::now() - 60)
        .await
        .unwrap();

    let (new_cert, new_key) = enroll(&s, &token, "node-1").await.unwrap();
    let err = old_agent
        .get_plan(GetPlanRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let mut new_agent = AgentClient::new(s.channel(Some((&new_cert, &new_key))).await);
    new_agent.get_plan(GetPlanRequest::default()).await.unwrap();
    let node = store.node("node-1").await.unwrap();
    assert_eq!(node.state, cm_server::store::NodeState::Active);
    assert_ne!(node.cert_serial, old.cert_serial);
    assert!(store.is_revoked(&old.cert_serial).await.unwrap());

    // The new certificate is live: the name cannot be taken over.
    let another = s.token("memcached", 1).await;
    let err = enroll(&s, &another, "node-1").await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("has not expired"),
        "{}",
        err.message()
    );
}
