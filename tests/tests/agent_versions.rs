//! The agent a cookbook needs, and what was pushed before cm refused YAML
//! values read two ways: each version records at push the lowest cm-agent
//! that compiles it (`cmctl cookbook show` says it); a plan is not handed
//! to an older agent, whose node shows the plan error; a version pushed
//! before is read as it was then by the real agent, whose report says so,
//! while new pushes and stored roles keep their own rules.

use std::path::{Path, PathBuf};

use cm_e2e::agent::{
    TestAgent, cmctl, demo_cookbook, demo_role, node_listed, read, set_environment, set_role,
};
use cm_e2e::{TestServer, enroll};
use cm_model::cookbook::{Cookbook, read_tree};
use cm_model::yaml::Reading;
use cm_proto::v1::agent_client::AgentClient;
use cm_proto::v1::{GetPlanRequest, Plan};
use cm_server::store::{DocKind, NewCookbookVersion};

/// demo `version`, with a resource per item of a range (new in cm-agent
/// 0.2.0), a file of the web members' addresses (the addresses helper and
/// the role it reads declared, new in 0.3.0) and a deploy (new in 0.4.0):
/// it needs the newest.
fn demo_with_new_features(dir: &Path, version: &str) -> PathBuf {
    let root = demo_cookbook(dir, version);
    let metadata = root.join("metadata.yaml");
    let declared = read(metadata.clone()) + "cluster: [web]\n";
    std::fs::write(metadata, declared).unwrap();
    let recipe = root.join("recipes/default.yaml");
    let mut text = read(recipe.clone());
    text.push_str(
        "- directory: \"{{attrs.demo.dir}}/slot-{{pad item 2}}\"\n  for_each: {range: [1, 2]}\n\
         - file: \"{{attrs.demo.dir}}/members\"\n  content: '{{addresses cluster.web 80 \",\"}}'\n\
         - deploy: \"{{attrs.demo.dir}}/app\"\n  file: app.tar.gz\n",
    );
    std::fs::write(recipe, text).unwrap();
    std::fs::create_dir_all(root.join("files")).unwrap();
    std::fs::write(root.join("files/app.tar.gz"), "a release\n").unwrap();
    root
}

/// An agent the server serves (one minor version behind it) that is older
/// than the features of [`demo_with_new_features`].
const OLD_AGENT: &str = "0.3.9";

async fn get_plan(
    agent: &mut AgentClient<tonic::transport::Channel>,
    agent_version: &str,
) -> Result<Plan, tonic::Status> {
    let r = agent
        .get_plan(GetPlanRequest {
            since: String::new(),
            agent_version: agent_version.into(),
        })
        .await?;
    Ok(r.into_inner().plan.expect("a plan when no hash is given"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_needing_a_newer_agent_is_a_plan_error_for_an_older_one() {
    let server = TestServer::start().await;
    let books = tempfile::tempdir().unwrap();
    let old = demo_cookbook(books.path(), "1.0.0");
    cmctl(&server, &["push", "cookbook", old.to_str().unwrap()]).await;
    let new = demo_with_new_features(books.path(), "2.0.0");
    let pushed = cmctl(&server, &["push", "cookbook", new.to_str().unwrap()]).await;
    assert!(
        pushed.contains("needs cm-agent >= 0.4.0 (for the deploy resource type)"),
        "{pushed}"
    );

    let show = |v: &'static str| {
        let server = &server;
        async move {
            let json = cmctl(server, &["--format", "json", "cookbook", "show", "demo", v]).await;
            let human = cmctl(server, &["cookbook", "show", "demo", v]).await;
            (
                serde_json::from_str::<serde_json::Value>(&json).unwrap(),
                human,
            )
        }
    };
    let (json, human) = show("2.0.0").await;
    assert_eq!(json["min_agent"], "0.4.0", "{json}");
    assert!(human.contains("needs cm-agent >= 0.4.0\n"), "{human}");
    let (json, human) = show("1.0.0").await;
    assert_eq!(json["min_agent"], "0.1.0", "{json}");
    assert!(human.contains("needs cm-agent >= 0.1.0\n"), "{human}");

    set_environment(
        &server,
        books.path(),
        "name: production\nsplay_seconds: 0\n",
    )
    .await;
    set_role(&server, &demo_role("web", Path::new("/srv/demo"), "hello")).await;
    let token = server.token("web", 1).await;
    let (cert, key) = enroll(&server, &token, "web-1").await.unwrap();
    let mut agent = AgentClient::new(server.channel(Some((&cert, &key))).await);

    // An older agent gets the plan error, marked as one, naming the version.
    let refused = get_plan(&mut agent, OLD_AGENT).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused
            .metadata()
            .contains_key(cm_proto::PLAN_ERROR_METADATA),
        "{refused:?}"
    );
    let reason = "cookbook demo@2.0.0 needs cm-agent >= 0.4.0, and the node runs cm-agent 0.3.9: upgrade its agent";
    assert!(refused.message().ends_with(reason), "{}", refused.message());
    // The node list says so, and a recomputation of every plan keeps it.
    assert_eq!(node_listed(&server, "web-1").await["plan_error"], reason);
    server.running.state.changed("test").await;
    assert_eq!(node_listed(&server, "web-1").await["plan_error"], reason);

    // Pinned to a version it compiles, the older agent has its plan.
    set_environment(
        &server,
        books.path(),
        "name: production\nsplay_seconds: 0\ncookbooks: {demo: 1.0.0}\n",
    )
    .await;
    let plan = get_plan(&mut agent, OLD_AGENT).await.unwrap();
    assert_eq!(
        (
            plan.cookbooks[0].version.as_str(),
            plan.cookbooks[0].min_agent.as_str()
        ),
        ("1.0.0", "0.1.0")
    );
    assert!(node_listed(&server, "web-1").await["plan_error"].is_null());

    // Unpinned again: refused while it is old, served once it is upgraded.
    set_environment(
        &server,
        books.path(),
        "name: production\nsplay_seconds: 0\n",
    )
    .await;
    assert!(get_plan(&mut agent, OLD_AGENT).await.is_err());
    let plan = get_plan(&mut agent, cm_proto::VERSION).await.unwrap();
    assert_eq!(
        (
            plan.cookbooks[0].version.as_str(),
            plan.cookbooks[0].min_agent.as_str()
        ),
        ("2.0.0", "0.4.0")
    );
    assert!(node_listed(&server, "web-1").await["plan_error"].is_null());
    // And an agent that goes back is refused again, not served from cache.
    assert!(get_plan(&mut agent, OLD_AGENT).await.is_err());
}

/// Store demo 1.0.0 from `dir` as a server before this change would have:
/// its YAML read as it was then, no agent recorded.
async fn push_as_before(server: &TestServer, dir: &Path) {
    let state = &server.running.state;
    let files = read_tree(dir).unwrap();
    let cookbook = Cookbook::from_files_with(dir, files.clone(), Reading::AsBefore).unwrap();
    for e in &cookbook.manifest.entries {
        let bytes = files[&e.path].bytes.clone();
        state.blobs.put(&e.sha256, bytes.into()).await.unwrap();
    }
    let version = NewCookbookVersion {
        name: "demo".into(),
        version: "1.0.0".into(),
        description: cookbook.metadata.description.clone(),
        depends: Default::default(),
        manifest: cookbook.manifest.clone(),
        min_agent: "0.1.0".into(),
        cluster: Default::default(),
    };
    state
        .store
        .insert_cookbook_version(&version, "admin")
        .await
        .unwrap();
    sqlx::query("UPDATE cookbook_versions SET min_agent = ''")
        .execute(state.store.pool())
        .await
        .unwrap();
    state.changed("a version pushed before").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_pushed_before_is_read_as_then_and_the_run_report_says_so() {
    let server = TestServer::start().await;
    let books = tempfile::tempdir().unwrap();
    let demo = demo_cookbook(books.path(), "1.0.0");
    // `flag: yes` was the boolean true before cm refused it.
    std::fs::write(
        demo.join("attributes.yaml"),
        "demo:\n  dir: /nonexistent\n  message: hello\n  flag: yes\n",
    )
    .unwrap();
    std::fs::write(
        demo.join("templates/node.conf.hbs"),
        "flag {{#if attrs.demo.flag}}on{{else}}off{{/if}}\n",
    )
    .unwrap();
    // Pushed now, it is refused by cmctl, naming the file, line and column.
    let push = std::process::Command::new(cm_e2e::bin("cmctl"))
        .arg("--credential")
        .arg(&server.credential)
        .args(["push", "cookbook", demo.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&push.stderr);
    assert!(!push.status.success());
    assert!(
        stderr.contains("attributes.yaml:4:9: yes is read as the boolean true"),
        "{stderr}"
    );
    push_as_before(&server, &demo).await;

    set_environment(
        &server,
        books.path(),
        "name: production\nsplay_seconds: 0\n",
    )
    .await;
    let token = server.token("role-n", 1).await;
    let agent = TestAgent::new(&server, "node-n", &token);
    // A role stored before cm refused `On` keeps its reading on the server.
    let role = format!(
        "{}    extra: On\n",
        demo_role("role-n", &agent.out(), "hello")
    );
    server
        .running
        .state
        .store
        .put_document(DocKind::Role, "role-n", &role, "admin")
        .await
        .unwrap();
    server.running.state.changed("a role stored before").await;

    let run = agent.run_once().await;
    assert!(run.status.success(), "{}\n{}", run.json, run.stderr);
    let report = &run.json["report"];
    assert_eq!(report["status"], "success", "{report}");
    assert_eq!(read(agent.out().join("node.conf")), "flag on\n");
    let notices = report["notices"].as_array().cloned().unwrap_or_default();
    assert_eq!(notices.len(), 1, "{report}");
    assert!(
        notices[0].as_str().unwrap().starts_with(
            "cookbook demo@1.0.0 was pushed before cm refused YAML values read two ways"
        ),
        "{report}"
    );
    // The human output says it too, as a warning line.
    let human = agent.command(&["run", "--once"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&human.stdout);
    assert!(
        stdout.contains("warning: cookbook demo@1.0.0 was pushed before"),
        "{stdout}"
    );

    let json = cmctl(
        &server,
        &["--format", "json", "cookbook", "show", "demo", "1.0.0"],
    )
    .await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(json["min_agent"].is_null(), "{json}");
    let human = cmctl(&server, &["cookbook", "show", "demo", "1.0.0"]).await;
    assert!(
        human.contains("pushed before servers recorded it"),
        "{human}"
    );
}
