//! Plans after admin changes: a change is acknowledged before any node's
//! plan is recomputed, GetPlan answers with the new plan at once, and a
//! burst of changes is merged into one background pass whose Watch event
//! carries the final plan hash.

use std::time::Duration;

use cm_e2e::{TestServer, enroll, full_plan, push_cookbook, repo, watch};
use cm_proto::v1::agent_client::AgentClient;
use cm_proto::v1::nodes_client::NodesClient;
use cm_proto::v1::roles_client::RolesClient;
use cm_proto::v1::{Document, GetPlanRequest, SetAttributeRequest};
use tokio_stream::StreamExt;

/// A bound against a hang only (the machine runs other builds), not a
/// measurement.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

fn memcached_role(memory_percent: usize) -> Document {
    let yaml = std::fs::read_to_string(repo().join("roles/memcached.yaml"))
        .unwrap()
        .replace(
            "memory_percent: 50",
            &format!("memory_percent: {memory_percent}"),
        );
    assert!(yaml.contains(&format!("memory_percent: {memory_percent}")));
    Document {
        yaml,
        ..Default::default()
    }
}

fn memory_percent(plan: &cm_proto::v1::Plan) -> serde_json::Value {
    let attrs: serde_json::Value = serde_json::from_str(&plan.attributes_json).unwrap();
    attrs["memcached"]["memory_percent"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_changes_is_acknowledged_first_and_watchers_hear_the_final_plan() {
    const CHANGES: usize = 5;
    let s = TestServer::start().await;
    let state = s.running.state.clone();
    push_cookbook(&s, &repo().join("cookbooks/memcached")).await;
    let mut roles = RolesClient::new(s.admin().await);
    roles.set(memcached_role(50)).await.unwrap();
    let token = s.token("memcached", 1).await;
    let (cert, key) = enroll(&s, &token, "node-1").await.unwrap();
    let mut agent = AgentClient::new(s.channel(Some((&cert, &key))).await);
    let first = full_plan(&mut agent).await;
    // Whatever the set-up queued (the enrollment is a change: the node
    // joined its role) has been recomputed before the stream opens, so
    // its first event is the burst's.
    state.recompute.settled().await;
    let mut events = watch(&mut agent, &first.hash).await;
    let passes = state.recompute.passes();
    let mut hub = state.hub.subscribe("node-1");
    let published = state.hub.published();

    // While passes are held back, every change is acknowledged: none waits
    // for a recomputation.
    let paused = state.recompute.pause();
    for i in 1..=CHANGES {
        roles.set(memcached_role(50 + i)).await.unwrap();
    }
    assert_eq!(state.recompute.passes(), passes, "no pass ran");
    assert!(!hub.has_changed().unwrap());
    // GetPlan does not wait for the pass either: the final plan already.
    let current = agent
        .get_plan(GetPlanRequest {
            since: first.hash.clone(),
            agent_version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .plan
        .expect("the plan changed");
    assert_eq!(memory_percent(&current), 50 + CHANGES);
    assert_ne!(current.hash, first.hash);

    drop(paused);
    let event = tokio::time::timeout(EVENT_TIMEOUT, events.next())
        .await
        .expect("an event")
        .expect("the stream is open")
        .unwrap();
    assert_eq!(event.plan_hash, current.hash);
    assert!(
        event.reason.contains("and 4 more changes"),
        "{}",
        event.reason
    );
    state.recompute.settled().await;
    assert_eq!(
        state.recompute.passes(),
        passes + 1,
        "one pass for the burst"
    );
    let told = hub.borrow_and_update().clone().unwrap();
    assert_eq!(
        (told.node.as_str(), told.plan_hash.as_str()),
        ("node-1", current.hash.as_str())
    );
    assert_eq!(state.hub.published(), published + 1, "one event");
    assert_eq!(
        state.store.node("node-1").await.unwrap().plan_hash,
        current.hash
    );

    // A change that alters no plan makes a pass that wakes nobody.
    state.changed("a change that alters no plan").await;
    state.recompute.settled().await;
    assert_eq!(state.recompute.passes(), passes + 2);
    assert!(!hub.has_changed().unwrap());
    assert_eq!(state.hub.published(), published + 1, "no event");
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_of_one_role_share_their_plan_body_and_each_is_served_its_own_hash() {
    let s = TestServer::start().await;
    let state = s.running.state.clone();
    push_cookbook(&s, &repo().join("cookbooks/memcached")).await;
    RolesClient::new(s.admin().await)
        .set(memcached_role(50))
        .await
        .unwrap();
    let token = s.token("memcached", 3).await;
    let mut agents = Vec::new();
    for name in ["node-1", "node-2", "node-3"] {
        let (cert, key) = enroll(&s, &token, name).await.unwrap();
        agents.push(AgentClient::new(s.channel(Some((&cert, &key))).await));
    }
    state.recompute.settled().await;
    let plans = [
        state.plan_for("node-1").await.unwrap(),
        state.plan_for("node-2").await.unwrap(),
        state.plan_for("node-3").await.unwrap(),
    ];
    assert!(std::sync::Arc::ptr_eq(&plans[0].body, &plans[1].body));
    assert!(std::sync::Arc::ptr_eq(&plans[0].body, &plans[2].body));
    // Each has its own place in the role, so its own hash, and GetPlan
    // serves each node that hash with its own ordinal.
    for (plan, agent) in plans.iter().zip(agents.iter_mut()) {
        let served = full_plan(agent).await;
        assert_eq!(served.hash, plan.hash);
        let member: serde_json::Value = serde_json::from_str(&served.member_json).unwrap();
        assert_eq!(member, serde_json::Value::Object(plan.member.clone()));
    }
    assert_ne!(plans[0].hash, plans[1].hash);

    // A node with an attribute of its own is a group of its own; the
    // others still share theirs.
    NodesClient::new(s.admin().await)
        .set_attribute(SetAttributeRequest {
            node: "node-3".into(),
            key: "memcached.memory_percent".into(),
            value_json: "10".into(),
        })
        .await
        .unwrap();
    state.recompute.settled().await;
    let (one, two, three) = (
        state.plan_for("node-1").await.unwrap(),
        state.plan_for("node-2").await.unwrap(),
        state.plan_for("node-3").await.unwrap(),
    );
    assert!(std::sync::Arc::ptr_eq(&one.body, &two.body));
    assert!(!std::sync::Arc::ptr_eq(&one.body, &three.body));
    assert_eq!(memory_percent(&full_plan(&mut agents[2]).await), 10);
    assert_eq!(memory_percent(&full_plan(&mut agents[0]).await), 50);
}
