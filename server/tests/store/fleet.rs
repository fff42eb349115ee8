//! The dashboard's reads: the fleet's filters and pages answered by each
//! database the same way, and the login links and sessions.

use cm_server::store::{FleetFilter, NodeState, RunRow, unix_now};

use crate::Db;
use crate::fixtures::{ALICE, enrollment, strings};

on_both_engines!(
    the_fleet_is_filtered_the_same_on_both_engines,
    a_link_starts_one_session_that_ends_when_it_expires,
);

async fn the_fleet_is_filtered_the_same_on_both_engines(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    for (name, roles) in [
        ("a-1", "web_a"),
        ("a-2", "webxa"),
        ("a-3", "Web_a"),
        ("a-4", "db"),
    ] {
        s.enroll_node(
            &enrollment(name, &format!("s-{name}"), now),
            "production",
            &strings(&[roles]),
            ALICE,
        )
        .await
        .unwrap();
    }
    for (node, status) in [("a-1", "failed"), ("a-2", "success")] {
        let run = RunRow {
            node: node.into(),
            at: now,
            status: status.into(),
            report_json: "{}".into(),
            ..RunRow::default()
        };
        s.insert_run(&run).await.unwrap();
    }
    let names = |filter: FleetFilter| async move {
        let (total, nodes) = s.fleet_page(&filter, 0, 50).await.unwrap();
        let names: Vec<String> = nodes.into_iter().map(|n| n.name).collect();
        assert_eq!(total, names.len() as u64);
        names
    };
    let role = |r: &str| FleetFilter {
        role: Some(r.into()),
        ..FleetFilter::default()
    };
    assert_eq!(
        names(role("web_a")).await,
        ["a-1"],
        "exact, case and `_` included"
    );
    assert_eq!(
        names(role("web")).await,
        Vec::<String>::new(),
        "whole names only"
    );
    let run = |r: &str| FleetFilter {
        run: Some(r.into()),
        ..FleetFilter::default()
    };
    assert_eq!(names(run("failed")).await, ["a-1"]);
    assert_eq!(names(run("success")).await, ["a-2"]);
    assert_eq!(names(run("none")).await, ["a-3", "a-4"]);
    let search = FleetFilter {
        search: Some("A-_".into()),
        ..FleetFilter::default()
    };
    assert_eq!(
        names(search).await,
        Vec::<String>::new(),
        "`_` is no wildcard"
    );
    let search = FleetFilter {
        search: Some("A-".into()),
        ..FleetFilter::default()
    };
    assert_eq!(names(search).await.len(), 4, "any case");
    let active = FleetFilter {
        state: Some(NodeState::Active),
        plan: Some("none".into()),
        environment: Some("production".into()),
        ..FleetFilter::default()
    };
    assert_eq!(names(active).await.len(), 4);
    let (total, page) = s.fleet_page(&FleetFilter::default(), 3, 50).await.unwrap();
    assert_eq!(
        (total, page.len()),
        (4, 1),
        "the count is of all, the page from the offset"
    );
}

async fn a_link_starts_one_session_that_ends_when_it_expires(db: &mut Db) {
    let s = &db.store;
    let admin = s.admins().await.unwrap().into_iter().next();
    let admin = match admin {
        Some(a) => a,
        None => s
            .add_admin(
                "root",
                "serial-r",
                cm_server::store::Level::Owner,
                &[],
                ALICE,
            )
            .await
            .unwrap(),
    };
    let now = unix_now();
    s.add_dashboard_link("link-1", &admin, now + 300)
        .await
        .unwrap();
    assert_eq!(
        s.dashboard_link_admin("link-1").await.unwrap(),
        Some(admin.name.clone())
    );
    let started = s
        .start_dashboard_session("link-1", "session-1", 3600, "192.0.2.1")
        .await
        .unwrap()
        .expect("a session");
    assert_eq!(started.admin, admin.name);
    assert!(s.dashboard_session("session-1").await.unwrap().is_some());
    assert!(
        s.start_dashboard_session("link-1", "session-2", 3600, "192.0.2.1")
            .await
            .unwrap()
            .is_none(),
        "a link starts one session"
    );
    assert_eq!(s.dashboard_link_admin("link-1").await.unwrap(), None);

    // A session past its end is no session, and is gone.
    s.add_dashboard_link("link-2", &admin, now + 300)
        .await
        .unwrap();
    s.start_dashboard_session("link-2", "session-3", -1, "192.0.2.1")
        .await
        .unwrap()
        .expect("started");
    assert!(s.dashboard_session("session-3").await.unwrap().is_none());
    // So is a link past its end.
    s.add_dashboard_link("link-3", &admin, now - 1)
        .await
        .unwrap();
    assert_eq!(s.dashboard_link_admin("link-3").await.unwrap(), None);
    assert!(
        s.start_dashboard_session("link-3", "session-4", 3600, "192.0.2.1")
            .await
            .unwrap()
            .is_none()
    );
}
