//! Run reports over real TLS: a node reports only its own runs, not from
//! the future; an old report (an agent's offline queue) is kept with the
//! server's receipt time; and a name enrolled again does not show the runs
//! of the identity that held it before as its own.

use cm_e2e::{TestServer, enroll};
use cm_proto::v1::agent_client::AgentClient;
use cm_proto::v1::nodes_client::NodesClient;
use cm_proto::v1::runs_client::RunsClient;
use cm_proto::v1::{ListRunsRequest, Name, RunSummary};
use tonic::Code;

fn now() -> i64 {
    cm_server::store::unix_now()
}

fn report(node: &str, at: i64) -> RunSummary {
    RunSummary {
        node: node.into(),
        at,
        status: "success".into(),
        cause: "drift_repair".into(),
        ..RunSummary::default()
    }
}

async fn runs(s: &TestServer, node: &str, all_identities: bool) -> Vec<RunSummary> {
    RunsClient::new(s.admin().await)
        .list(ListRunsRequest {
            node: node.into(),
            limit: 100,
            all_identities,
        })
        .await
        .unwrap()
        .into_inner()
        .runs
}

async fn node_agent(
    s: &TestServer,
    token: &str,
    name: &str,
) -> AgentClient<tonic::transport::Channel> {
    let (cert, key) = enroll(s, token, name).await.unwrap();
    AgentClient::new(s.channel(Some((&cert, &key))).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_naming_another_node_is_permission_denied() {
    let s = TestServer::start().await;
    let token = s.token("memcached", 2).await;
    let mut web1 = node_agent(&s, &token, "web-1").await;
    let _web2 = node_agent(&s, &token, "web-2").await;
    let err = web1.report_run(report("web-2", now())).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("web-2"), "{}", err.message());
    assert!(runs(&s, "web-1", true).await.is_empty());
    assert!(runs(&s, "web-2", true).await.is_empty());
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_from_the_future_is_refused_and_an_old_one_kept_with_its_receipt_time() {
    let s = TestServer::start().await;
    let token = s.token("memcached", 1).await;
    let mut web1 = node_agent(&s, &token, "web-1").await;
    let margin = cm_server::reports::CLOCK_SKEW_SECS;

    let ahead = now() + margin + 3600;
    let err = web1.report_run(report("web-1", ahead)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("clock"), "{}", err.message());

    // Queued while the server was away, a week ago.
    let week_ago = now() - 7 * 86400;
    let before = now();
    web1.report_run(report("web-1", week_ago)).await.unwrap();
    let stored = runs(&s, "web-1", false).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].at, week_ago);
    assert!(
        stored[0].received_at >= before && stored[0].received_at <= now(),
        "received at {} (the report says {week_ago})",
        stored[0].received_at
    );
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_re_enrolled_name_does_not_show_the_retired_identitys_runs_as_its_own() {
    let s = TestServer::start().await;
    let token = s.token("memcached", 2).await;
    let mut first = node_agent(&s, &token, "web-1").await;
    first.report_run(report("web-1", now() - 60)).await.unwrap();
    NodesClient::new(s.admin().await)
        .retire(Name {
            name: "web-1".into(),
        })
        .await
        .unwrap();
    let mut second = node_agent(&s, &token, "web-1").await;
    second.report_run(report("web-1", now())).await.unwrap();

    let own = runs(&s, "web-1", false).await;
    assert_eq!(own.len(), 1, "only the new identity's run: {own:?}");
    assert!(!own[0].retired_identity);

    let all = runs(&s, "web-1", true).await;
    assert_eq!(all.len(), 2, "the retired identity's run is kept: {all:?}");
    assert!(!all[0].retired_identity && all[1].retired_identity);
    assert_ne!(all[0].identity, all[1].identity);
    assert!(!all[1].identity.is_empty(), "marked with its identity");
    s.running.stop().await;
}
