//! Run reports: listing newest first, pruning, and the runs of a retired
//! identity kept apart from the new one's.

use cm_server::store::{RunRow, StoreError, unix_now};

use crate::Db;
use crate::fixtures::{ALICE, enrolled, enrollment, run};

on_both_engines!(
    runs_are_listed_newest_first_and_pruned,
    runs_of_a_retired_identity_are_kept_marked_and_not_the_new_ones,
);

async fn runs_are_listed_newest_first_and_pruned(db: &mut Db) {
    let s = &db.store;
    enrolled(s, "n1", &["web"]).await;
    enrolled(s, "n2", &["web"]).await;
    assert!(matches!(
        s.insert_run(&run("ghost", 1, "ok")).await,
        Err(StoreError::NotFound(_))
    ));
    let first = s.insert_run(&run("n1", 1000, "ok")).await.unwrap();
    let second = s.insert_run(&run("n1", 2000, "failed")).await.unwrap();
    assert!(second > first);
    s.insert_run(&run("n2", 1500, "ok")).await.unwrap();

    let n1 = s.runs(Some("n1"), 10).await.unwrap();
    assert_eq!(n1.iter().map(|r| r.at).collect::<Vec<_>>(), [2000, 1000]);
    assert_eq!(n1[0].id, second);
    assert_eq!(n1[0].report_json, r#"{"resources": []}"#);
    assert_eq!(n1[0].resources_failed, 1);
    assert_eq!(
        s.runs(None, 2)
            .await
            .unwrap()
            .iter()
            .map(|r| r.at)
            .collect::<Vec<_>>(),
        [2000, 1500]
    );

    let last = s.node("n1").await.unwrap().last_run.unwrap();
    assert_eq!(
        (last.at, last.status.as_str(), last.report_json.as_str()),
        (2000, "failed", "")
    );

    assert_eq!(s.prune_runs(1600).await.unwrap(), 2);
    assert_eq!(s.runs(None, 10).await.unwrap().len(), 1);
    assert_eq!(
        s.node("n2").await.unwrap().last_run.unwrap().at,
        1500,
        "nodes keep their last run"
    );
}

async fn runs_of_a_retired_identity_are_kept_marked_and_not_the_new_ones(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    s.enroll_node(
        &enrollment("n1", "serial-old", now),
        "production",
        &[],
        ALICE,
    )
    .await
    .unwrap();
    let old = RunRow {
        received_at: 5000,
        ..run("n1", 1000, "ok")
    };
    s.insert_run(&old).await.unwrap();
    // A renewal keeps the identity.
    s.set_node_cert("n1", "serial-renewed", now + 90 * 86400)
        .await
        .unwrap();
    s.insert_run(&run("n1", 1100, "ok")).await.unwrap();
    s.retire_node("n1", ALICE).await.unwrap();
    s.enroll_node(
        &enrollment("n1", "serial-new", now),
        "production",
        &[],
        ALICE,
    )
    .await
    .unwrap();
    s.insert_run(&run("n1", 2000, "ok")).await.unwrap();

    let current = s.current_runs("n1", 10).await.unwrap();
    assert_eq!(current.iter().map(|r| r.at).collect::<Vec<_>>(), [2000]);
    assert_eq!(current[0].identity, "serial-new");
    assert!(!current[0].retired_identity);

    let all = s.runs(Some("n1"), 10).await.unwrap();
    let seen: Vec<_> = all
        .iter()
        .map(|r| (r.at, r.identity.as_str(), r.retired_identity))
        .collect();
    assert_eq!(
        seen,
        [
            (2000, "serial-new", false),
            (1100, "serial-old", true),
            (1000, "serial-old", true),
        ]
    );
    assert_eq!(all[2].received_at, 5000, "the receipt time is kept beside");
    assert_eq!(
        s.runs(None, 10).await.unwrap(),
        all,
        "listing every node marks them too"
    );
}
