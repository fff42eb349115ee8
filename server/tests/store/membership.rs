//! The cluster view's membership: ordinals (lowest free, reused), the
//! liveness verdicts at an injected time (unreachable, expired, back), the
//! server's own downtime not counted, and joins and verdicts racing through
//! two stores on one database.

use cm_server::store::{MemberRow, NodeState, Store, Timers, Verdicts, unix_now};

use crate::Db;
use crate::fixtures::{ALICE, documents_exist, enrolled, enrollment, token};

on_both_engines!(
    ordinals_are_the_lowest_free_and_freed_by_leaving,
    silence_makes_a_node_unreachable_then_expired_and_a_check_in_brings_it_back,
    the_servers_own_downtime_is_not_counted_against_nodes,
    joins_and_verdicts_racing_through_two_stores_are_taken_once,
    nodes_without_their_rows_rejoin_oldest_first,
    nodes_whose_agent_predates_heartbeats_are_not_judged,
);

const TIMERS: Timers = Timers {
    unreachable_after: 180,
    expire_after: 900,
};

/// A role's members in production.
async fn rows(s: &Store, role: &str) -> Vec<MemberRow> {
    s.members(Some("production"), Some(role)).await.unwrap()
}

/// `(node, ordinal)` of a role's members.
async fn members(s: &Store, role: &str) -> Vec<(String, i64)> {
    let rows = rows(s, role).await;
    rows.into_iter().map(|m| (m.node, m.ordinal)).collect()
}

/// `(node, replaces)` of a role's members: whom each one replaced.
async fn replacing(s: &Store, role: &str) -> Vec<(String, String)> {
    let rows = rows(s, role).await;
    rows.into_iter().map(|m| (m.node, m.replaces)).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn of(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(n, o)| (n.to_string(), *o)).collect()
}

/// Pass verdicts every 30 s from `from` to `to` (a server that runs),
/// with `alive` checking in before each; what all the passes changed.
async fn run_server(s: &Store, from: i64, to: i64, alive: &[&str]) -> Verdicts {
    let mut all = Verdicts::default();
    let mut t = from;
    while t <= to {
        let batch: Vec<(String, i64)> = alive.iter().map(|n| (n.to_string(), t)).collect();
        s.record_last_seen(&batch).await.unwrap();
        let v = s.pass_verdicts(t, |_| TIMERS).await.unwrap();
        assert_eq!(v.credited, 0, "a server passing every 30 s was never down");
        all.unreachable.extend(v.unreachable);
        all.expired.extend(v.expired);
        t += 30;
    }
    all
}

async fn ordinals_are_the_lowest_free_and_freed_by_leaving(db: &mut Db) {
    let s = &db.store;
    for n in ["c1", "c2", "c3"] {
        enrolled(s, n, &["cache"]).await;
    }
    assert_eq!(
        members(s, "cache").await,
        of(&[("c1", 0), ("c2", 1), ("c3", 2)])
    );

    // A retired node leaves; its replacement inherits its ordinal (and so
    // a Cassandra node's token).
    s.retire_node("c2", ALICE).await.unwrap();
    assert_eq!(members(s, "cache").await, of(&[("c1", 0), ("c3", 2)]));
    enrolled(s, "c4", &["cache"]).await;
    assert_eq!(
        members(s, "cache").await,
        of(&[("c1", 0), ("c4", 1), ("c3", 2)])
    );
    // ... and replaces it (a Cassandra node boots with its address).
    assert_eq!(
        replacing(s, "cache").await,
        pairs(&[("c1", ""), ("c4", "c2"), ("c3", "")])
    );

    // Leaving a role frees the ordinal; joining one takes that role's lowest.
    s.unassign_role("c1", "cache", ALICE).await.unwrap();
    s.assign_role("c3", "web", ALICE).await.unwrap();
    assert_eq!(members(s, "cache").await, of(&[("c4", 1), ("c3", 2)]));
    assert_eq!(members(s, "web").await, of(&[("c3", 0)]));
    s.assign_role("c1", "cache", ALICE).await.unwrap();
    assert_eq!(
        members(s, "cache").await,
        of(&[("c1", 0), ("c4", 1), ("c3", 2)])
    );
    // A node unassigned left on purpose: whoever takes its ordinal replaces
    // nobody, and neither does a node taking back its own.
    assert_eq!(
        replacing(s, "cache").await,
        pairs(&[("c1", ""), ("c4", "c2"), ("c3", "")])
    );
    s.unassign_role("c3", "cache", ALICE).await.unwrap();
    enrolled(s, "c5", &["cache"]).await;
    assert_eq!(
        replacing(s, "cache").await,
        pairs(&[("c1", ""), ("c4", "c2"), ("c5", "")])
    );

    // A role every member left starts over: the ordinals its gone members
    // held are free of them.
    s.retire_node("c1", ALICE).await.unwrap();
    s.retire_node("c4", ALICE).await.unwrap();
    s.unassign_role("c5", "cache", ALICE).await.unwrap();
    enrolled(s, "c7", &["cache"]).await;
    enrolled(s, "c8", &["cache"]).await;
    assert_eq!(
        replacing(s, "cache").await,
        pairs(&[("c7", ""), ("c8", "")])
    );
}

async fn silence_makes_a_node_unreachable_then_expired_and_a_check_in_brings_it_back(db: &mut Db) {
    let s = &db.store;
    enrolled(s, "quiet", &["cache"]).await;
    enrolled(s, "chatty", &["cache"]).await;
    let t0 = unix_now();

    let v = run_server(s, t0, t0 + 210, &["chatty"]).await;
    assert_eq!(v.unreachable, ["quiet"]);
    assert!(v.expired.is_empty());
    assert_eq!(s.node("quiet").await.unwrap().state, NodeState::Unreachable);
    assert_eq!(s.node("chatty").await.unwrap().state, NodeState::Active);
    // Still listed, so a seed list does not flap.
    assert_eq!(
        members(s, "cache").await,
        of(&[("quiet", 0), ("chatty", 1)])
    );

    let v = run_server(s, t0 + 240, t0 + 930, &["chatty"]).await;
    assert_eq!(
        (v.unreachable.len(), v.expired.as_slice()),
        (0, &["quiet".to_string()][..])
    );
    let quiet = s.node("quiet").await.unwrap();
    assert_eq!(quiet.state, NodeState::Expired);
    assert_eq!(members(s, "cache").await, of(&[("chatty", 1)]));
    // Its name stays taken until an admin retires it.
    let hash = token(s, "t-again", &["cache"], 1, t0 + 3600).await;
    let taken = s
        .enroll_with_token(&hash, &enrollment("quiet", "serial-new", t0 + 940))
        .await
        .unwrap_err();
    assert!(
        taken.to_string().contains("held by an expired node"),
        "{taken}"
    );

    // Its certificate still works: a check-in brings it back, with the
    // lowest free ordinal.
    let back = s
        .record_last_seen(&[("quiet".into(), t0 + 950)])
        .await
        .unwrap();
    assert_eq!(back, ["quiet"]);
    assert_eq!(s.node("quiet").await.unwrap().state, NodeState::Active);
    assert_eq!(
        members(s, "cache").await,
        of(&[("quiet", 0), ("chatty", 1)])
    );
    assert_eq!(
        replacing(s, "cache").await,
        pairs(&[("quiet", ""), ("chatty", "")]),
        "back in its own place, it replaces nobody"
    );
}

async fn the_servers_own_downtime_is_not_counted_against_nodes(db: &mut Db) {
    let s = &db.store;
    enrolled(s, "n1", &["cache"]).await;
    // The first pass ever (a new database, an upgrade from a server that
    // never judged) does not know how long nodes were silent before it:
    // their clocks start at it.
    let t0 = unix_now() + 10_000;
    let v = s.pass_verdicts(t0, |_| TIMERS).await.unwrap();
    assert!(v.is_empty() && v.credited == 0, "{v:?}");
    run_server(s, t0, t0 + 60, &["n1"]).await;

    // The server is down for an hour; the node is not blamed for it.
    let v = s.pass_verdicts(t0 + 3660, |_| TIMERS).await.unwrap();
    assert_eq!(v.credited, 3600);
    assert!(v.is_empty(), "{v:?}");
    let v = run_server(s, t0 + 3690, t0 + 3660 + 150, &[]).await;
    assert!(v.is_empty(), "{v:?}");
    assert_eq!(s.node("n1").await.unwrap().state, NodeState::Active);

    // Silence after the restart counts as usual.
    let v = run_server(s, t0 + 3660 + 180, t0 + 3660 + 240, &[]).await;
    assert_eq!(v.unreachable, ["n1"]);
}

async fn joins_and_verdicts_racing_through_two_stores_are_taken_once(db: &mut Db) {
    let other = Store::open(&db.url).await.unwrap();
    let stores = [db.store.clone(), other.clone()];
    let now = unix_now();
    // Stored first: the token fixtures run at once.
    documents_exist(&db.store, &["ring"], "production").await;
    let mut joins = Vec::new();
    for i in 0..16 {
        let s = stores[i % 2].clone();
        joins.push(tokio::spawn(async move {
            let name = format!("n{i:02}");
            let hash = token(&s, &format!("t-{name}"), &["ring"], 1, now + 3600).await;
            s.enroll_with_token(&hash, &enrollment(&name, &format!("serial-{name}"), now))
                .await
                .unwrap();
        }));
    }
    for j in joins {
        j.await.unwrap();
    }
    let mut ordinals: Vec<i64> = members(&db.store, "ring")
        .await
        .iter()
        .map(|m| m.1)
        .collect();
    ordinals.sort();
    assert_eq!(ordinals, (0..16).collect::<Vec<_>>(), "each ordinal once");

    // Both replicas pass the same verdicts at once: each is taken once.
    assert!(run_server(&db.store, now, now + 180, &[]).await.is_empty());
    let (a, b) = tokio::join!(
        db.store.pass_verdicts(now + 210, |_| TIMERS),
        other.pass_verdicts(now + 210, |_| TIMERS),
    );
    let mut unreachable = a.unwrap().unreachable;
    unreachable.extend(b.unwrap().unreachable);
    unreachable.sort();
    assert_eq!(unreachable.len(), 16, "{unreachable:?}");
    unreachable.dedup();
    assert_eq!(unreachable.len(), 16, "no node judged twice");
    other.close().await;
}

async fn nodes_without_their_rows_rejoin_oldest_first(db: &mut Db) {
    let s = &db.store;
    // Enrolled in this order (in the same second: then by name).
    for n in ["n1-old", "n2-mid", "n3-new"] {
        enrolled(s, n, &["cache"]).await;
    }
    // As after the upgrade from a server that kept no memberships.
    sqlx::query("DELETE FROM memberships WHERE node <> 'n3-new'")
        .execute(s.pool())
        .await
        .unwrap();
    assert_eq!(members(s, "cache").await, of(&[("n3-new", 2)]));
    assert_eq!(s.reconcile_members(unix_now()).await.unwrap(), 2);
    assert_eq!(
        members(s, "cache").await,
        of(&[("n1-old", 0), ("n2-mid", 1), ("n3-new", 2)])
    );
    assert_eq!(
        s.reconcile_members(unix_now()).await.unwrap(),
        0,
        "nothing left"
    );
}

async fn nodes_whose_agent_predates_heartbeats_are_not_judged(db: &mut Db) {
    let s = &db.store;
    enrolled(s, "legacy", &["cache"]).await;
    enrolled(s, "current", &["cache"]).await;
    s.set_agent_version("legacy", "0.2.4").await.unwrap();
    s.set_agent_version("current", "0.3.0").await.unwrap();
    let t0 = unix_now();
    let v = run_server(s, t0, t0 + 210, &[]).await;
    assert_eq!(
        v.unreachable,
        ["current"],
        "0.2 agents check in once per converge"
    );
}
