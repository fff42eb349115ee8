//! What an operator reads in cmctl's tables when a run fails: `cmctl runs`
//! names the failed resource and its error, `cmctl node list` the plan's
//! state and age.

use cm_e2e::agent::{cmctl, demo_role, fleet, set_role};

#[tokio::test(flavor = "multi_thread")]
async fn runs_say_which_resource_failed_and_why_and_node_list_shows_the_plan() {
    let (server, agents, _books) = fleet(&["node-f"]).await;
    let agent = &agents[0];
    assert!(agent.run_once().await.status.success());
    // A directory under a regular file cannot be made.
    let blocker = agent.dir.path().join("blocker");
    std::fs::write(&blocker, "a file\n").unwrap();
    set_role(
        &server,
        &demo_role("role-node-f", &blocker.join("out"), "x"),
    )
    .await;
    let run = agent.run_once().await;
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);

    let table = cmctl(&server, &["runs", "node-f"]).await;
    let header = table.lines().next().unwrap();
    assert!(header.contains("WHY"), "{table}");
    let failed = table
        .lines()
        .find(|l| l.contains("failed"))
        .unwrap_or_else(|| panic!("{table}"));
    let out = blocker.join("out");
    assert!(
        failed.contains(&format!("directory[{}]: ", out.display())),
        "the failed resource is named: {table}"
    );
    assert!(failed.contains("is not a directory"), "and why: {failed}");
    let succeeded = table.lines().find(|l| l.contains("success")).unwrap();
    assert!(
        succeeded.trim_end().ends_with('-'),
        "nothing to explain: {succeeded}"
    );

    let list = cmctl(&server, &["node", "list"]).await;
    assert!(list.lines().next().unwrap().contains("PLAN AGE"), "{list}");
    let row = list.lines().find(|l| l.starts_with("node-f")).unwrap();
    assert!(
        row.contains("0 s") && row.trim_end().ends_with("ok"),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&cmctl(&server, &["--format", "json", "node", "list"]).await).unwrap();
    assert_eq!(json[0]["plan_state"], "ok");
    assert_eq!(json[0]["plan_age_seconds"], 0);
}
