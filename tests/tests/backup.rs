//! Backup, restore and restart of the embedded default against a real
//! server: a backup taken while admins write is a consistent snapshot that
//! restores into a working server with the same CA, admins and nodes; a
//! damaged or incomplete backup is refused before anything is written; and
//! a restarted server has everything it acknowledged.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cm_e2e::{TestServer, bin, enroll, repo};
use cm_proto::v1::agent_client::AgentClient;
use cm_proto::v1::cookbooks_client::CookbooksClient;
use cm_proto::v1::environments_client::EnvironmentsClient;
use cm_proto::v1::nodes_client::NodesClient;
use cm_proto::v1::roles_client::RolesClient;
use cm_proto::v1::runs_client::RunsClient;
use cm_proto::v1::secrets_client::SecretsClient;
use cm_proto::v1::tokens_client::TokensClient;
use cm_proto::v1::{
    CreateTokenRequest, Document, Empty, GetPlanRequest, ListCookbooksRequest, ListNodesRequest,
    ListRunsRequest, RunSummary, SetSecretRequest,
};

// ---------------------------------------------------------------- helpers

/// cmctl as the bootstrap admin of a server, run off the async threads.
#[derive(Clone)]
struct Cmctl {
    credential: PathBuf,
    server: String,
}

impl Cmctl {
    fn of(s: &TestServer) -> Cmctl {
        Cmctl {
            credential: s.credential.clone(),
            server: s.url(),
        }
    }

    /// Run it and return stdout; any failure fails the test.
    async fn ok(&self, args: &[&str]) -> String {
        self.ok_on(args, None).await
    }

    /// As [`Cmctl::ok`], with a path as the last argument.
    async fn ok_on(&self, args: &[&str], path: Option<&Path>) -> String {
        let mut command = std::process::Command::new(bin("cmctl"));
        command
            .arg("--credential")
            .arg(&self.credential)
            .arg("--server")
            .arg(&self.server)
            .args(args)
            .args(path)
            .env("NO_COLOR", "1");
        succeeded(run_blocking(command).await)
    }
}

/// `cm-server --data-dir DATA_DIR COMMAND DIR ARGS...`, as an operator runs it.
async fn cm_server(data_dir: &Path, command: &str, dir: &Path, args: &[&str]) -> Output {
    let mut cm_server = std::process::Command::new(bin("cm-server"));
    cm_server
        .arg("--data-dir")
        .arg(data_dir)
        .arg(command)
        .arg(dir)
        .args(args)
        .env("CM_LOG", "warn");
    run_blocking(cm_server).await
}

async fn run_blocking(mut command: std::process::Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("the command ran")
}

fn succeeded(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What a seeded server holds that tests come back to.
struct Fleet {
    token: String,
    node_cert: String,
    node_key: String,
}

/// The memcached cookbook, role and environment, a token, a secret, and
/// node-1 enrolled with a run reported.
async fn seed(s: &TestServer) -> Fleet {
    let cmctl = Cmctl::of(s);
    cmctl
        .ok_on(
            &["push", "cookbook"],
            Some(&repo().join("cookbooks/memcached")),
        )
        .await;
    cmctl
        .ok_on(&["role", "set"], Some(&repo().join("roles/memcached.yaml")))
        .await;
    cmctl
        .ok_on(
            &["env", "set"],
            Some(&repo().join("environments/production.yaml")),
        )
        .await;
    let admin = s.admin().await;
    let token = TokensClient::new(admin.clone())
        .create(CreateTokenRequest {
            roles: vec!["memcached".into()],
            environment: "production".into(),
            ttl_seconds: 3600,
            uses: 5,
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    SecretsClient::new(admin)
        .set(SetSecretRequest {
            name: "cache_key".into(),
            value: b"s3cret".to_vec(),
            roles: vec!["memcached".into()],
        })
        .await
        .unwrap();
    let (node_cert, node_key) = enroll(s, &token, "node-1").await.unwrap();
    let mut agent = AgentClient::new(s.channel(Some((&node_cert, &node_key))).await);
    let plan = agent
        .get_plan(GetPlanRequest::default())
        .await
        .unwrap()
        .into_inner()
        .plan
        .expect("a plan");
    agent
        .report_run(RunSummary {
            node: "node-1".into(),
            at: unix_now(),
            status: "success".into(),
            resources_total: 4,
            resources_changed: 4,
            duration_ms: 1200,
            cause: "new_plan".into(),
            plan_hash: plan.hash,
            ..RunSummary::default()
        })
        .await
        .unwrap();
    Fleet {
        token,
        node_cert,
        node_key,
    }
}

/// Everything an admin can list, minus what moves by itself (check-in
/// times), in a comparable form.
#[derive(Debug, PartialEq)]
struct Inventory {
    ca_fingerprint: String,
    cookbooks: Vec<String>,
    roles: Vec<(String, u64)>,
    environments: Vec<(String, u64)>,
    tokens: Vec<(String, u32)>,
    secrets: Vec<String>,
    nodes: Vec<(String, String, Vec<String>)>,
    runs: Vec<(String, i64, String)>,
    audit: Vec<(String, String)>,
}

async fn inventory(s: &TestServer) -> Inventory {
    let admin = s.admin().await;
    let cookbooks = CookbooksClient::new(admin.clone())
        .list(ListCookbooksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .versions;
    let roles = RolesClient::new(admin.clone())
        .list(Empty {})
        .await
        .unwrap();
    let environments = EnvironmentsClient::new(admin.clone())
        .list(Empty {})
        .await
        .unwrap();
    let tokens = TokensClient::new(admin.clone())
        .list(Empty {})
        .await
        .unwrap();
    let secrets = SecretsClient::new(admin.clone())
        .list(Empty {})
        .await
        .unwrap();
    let nodes = NodesClient::new(admin.clone())
        .list(ListNodesRequest::default())
        .await
        .unwrap();
    let runs = RunsClient::new(admin.clone())
        .list(ListRunsRequest {
            node: String::new(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    // From the store: the Audit API lists at most 1000 events.
    let audit = s.running.state.store.audit(u32::MAX, None).await.unwrap();
    let documents = |list: Vec<Document>| list.into_iter().map(|d| (d.name, d.revision)).collect();
    Inventory {
        ca_fingerprint: s.running.state.pki.ca().fingerprint(),
        cookbooks: cookbooks
            .into_iter()
            .map(|v| format!("{}@{}", v.name, v.version))
            .collect(),
        roles: documents(roles.into_inner().documents),
        environments: documents(environments.into_inner().documents),
        tokens: tokens
            .into_inner()
            .tokens
            .into_iter()
            .map(|t| (t.id, t.uses_left))
            .collect(),
        secrets: secrets
            .into_inner()
            .secrets
            .into_iter()
            .map(|s| s.name)
            .collect(),
        nodes: nodes
            .into_inner()
            .nodes
            .into_iter()
            .map(|n| (n.name, n.state, n.roles))
            .collect(),
        runs: runs
            .into_inner()
            .runs
            .into_iter()
            .map(|r| (r.node, r.at, r.status))
            .collect(),
        audit: audit.into_iter().map(|e| (e.who, e.what)).collect(),
    }
}

/// The node's certificate is accepted and it gets a plan.
async fn node_is_served(s: &TestServer, fleet: &Fleet) {
    let channel = s.channel(Some((&fleet.node_cert, &fleet.node_key))).await;
    let plan = AgentClient::new(channel)
        .get_plan(GetPlanRequest::default())
        .await
        .expect("the node's certificate still verifies")
        .into_inner()
        .plan
        .expect("a plan");
    assert_eq!(plan.run_list, ["memcached::default"]);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn flip_last_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    *bytes.last_mut().expect("a non-empty file") ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn first_blob(backup: &Path) -> PathBuf {
    let mut dir = backup.join("blobs/blobs");
    loop {
        let entry = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .expect("a blob in the backup")
            .unwrap();
        if entry.file_type().unwrap().is_file() {
            return entry.path();
        }
        dir = entry.path();
    }
}

fn web_role(seq: u64) -> Document {
    Document {
        yaml: format!("name: web\nrun_list: [memcached]\nattributes:\n  seq: {seq}\n"),
        ..Document::default()
    }
}

fn count(inventory: &Inventory, what: &str) -> u64 {
    inventory
        .audit
        .iter()
        .filter(|(_, w)| w.starts_with(what))
        .count() as u64
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_while_admins_write_restores_to_a_working_server() {
    let s = TestServer::start().await;
    let fleet = seed(&s).await;
    let work = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    // One admin changes a role as fast as the server takes it...
    let roles_set = Arc::new(AtomicU64::new(0));
    let role_writer = {
        let (stop, done, admin) = (stop.clone(), roles_set.clone(), s.admin().await);
        tokio::spawn(async move {
            let mut roles = RolesClient::new(admin);
            for seq in 1.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                roles.set(web_role(seq)).await.expect("role set");
                done.store(seq, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    // ...another pushes new cookbook versions (new blobs) with cmctl.
    let pushes = Arc::new(AtomicU64::new(0));
    let push_writer = {
        let (stop, done, cmctl) = (stop.clone(), pushes.clone(), Cmctl::of(&s));
        let dir = work.path().join("gen");
        tokio::spawn(async move {
            std::fs::create_dir_all(dir.join("recipes")).unwrap();
            for n in 1.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                std::fs::write(
                    dir.join("metadata.yaml"),
                    format!("name: gen\nversion: 1.0.{n}\n"),
                )
                .unwrap();
                std::fs::write(
                    dir.join("recipes/default.yaml"),
                    format!("- file: /tmp/gen-{n}\n"),
                )
                .unwrap();
                cmctl.ok_on(&["push", "cookbook"], Some(&dir)).await;
                done.store(n, Ordering::SeqCst);
            }
        })
    };
    let wait_for = |counter: &Arc<AtomicU64>, at_least: u64| {
        let counter = counter.clone();
        async move {
            while counter.load(Ordering::SeqCst) < at_least {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(&roles_set, 5).await;
    wait_for(&pushes, 2).await;

    let acked = (
        roles_set.load(Ordering::SeqCst),
        pushes.load(Ordering::SeqCst),
    );
    let backup = work.path().join("backup");
    let out = cm_server(&s.data_dir(), "backup", &backup, &["--format", "json"]).await;
    let summary: serde_json::Value = serde_json::from_str(&succeeded(out)).unwrap();
    let after_backup = (
        roles_set.load(Ordering::SeqCst),
        pushes.load(Ordering::SeqCst),
    );
    assert!(
        after_backup.0 > acked.0,
        "the role writer kept writing during the backup"
    );
    // The writers go on after the backup; none of that may show up in it.
    wait_for(&roles_set, after_backup.0 + 5).await;
    wait_for(&pushes, after_backup.1 + 1).await;
    stop.store(true, Ordering::SeqCst);
    role_writer.await.unwrap();
    push_writer.await.unwrap();

    let restored_dir = tempfile::tempdir().unwrap();
    let data_dir = restored_dir.path().join("server");
    let out = cm_server(&data_dir, "restore", &backup, &[]).await;
    assert!(succeeded(out).contains("restored"));
    let r = TestServer::start_in(restored_dir).await;

    // Same CA, same admin, same node identity.
    let original = inventory(&s).await;
    let restored = inventory(&r).await;
    assert_eq!(restored.ca_fingerprint, original.ca_fingerprint);
    assert_eq!(summary["ca_fingerprint"], original.ca_fingerprint);
    node_is_served(&r, &fleet).await;

    // The snapshot is one instant: each change came with its audit row, every
    // write acknowledged before the backup started is in, none acknowledged
    // after it ended is, and pushes and role changes are in their order.
    let web = restored.roles.iter().find(|(n, _)| n == "web").unwrap().1;
    let gen_versions = restored
        .cookbooks
        .iter()
        .filter(|c| c.starts_with("gen@"))
        .count() as u64;
    eprintln!(
        "acknowledged (role changes, pushes): {acked:?} at the start of the backup, \
         {after_backup:?} at its end; the snapshot holds ({web}, {gen_versions})"
    );
    assert_eq!(count(&restored, "role.set web"), web);
    assert_eq!(count(&restored, "cookbook.push gen"), gen_versions);
    assert!(
        acked.0 <= web && web <= after_backup.0,
        "{acked:?} {web} {after_backup:?}"
    );
    assert!(
        acked.1 <= gen_versions && gen_versions <= after_backup.1,
        "{acked:?} {gen_versions} {after_backup:?}"
    );
    assert_eq!(summary["counts"]["roles"], 2);
    assert_eq!(summary["counts"]["cookbook_versions"], 1 + gen_versions);
    assert_eq!(summary["counts"]["audit_events"], restored.audit.len());
    // The restored history is the original's up to the snapshot (newest first).
    assert!(original.audit.ends_with(&restored.audit));

    // cmctl, with the restored bootstrap credential, sees it all.
    let cmctl = Cmctl::of(&r);
    let cookbooks = cmctl.ok(&["cookbook", "list"]).await;
    assert!(
        cookbooks.contains("memcached") && cookbooks.contains("gen"),
        "{cookbooks}"
    );
    let role = cmctl.ok(&["role", "show", "web", "--format", "json"]).await;
    let role: serde_json::Value = serde_json::from_str(&role).unwrap();
    assert_eq!(role["revision"], web);
    assert!(
        role["yaml"]
            .as_str()
            .unwrap()
            .contains(&format!("seq: {web}"))
    );
    assert!(cmctl.ok(&["node", "list"]).await.contains("node-1"));
    // Every blob of every restored version is there: an identical re-push
    // uploads nothing.
    let again = cmctl
        .ok_on(
            &["--format", "json", "push", "cookbook"],
            Some(&repo().join("cookbooks/memcached")),
        )
        .await;
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        (again["uploaded"].as_u64(), again["created"].as_bool()),
        (Some(0), Some(false))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_or_incomplete_backup_is_refused_before_anything_is_written() {
    let s = TestServer::start().await;
    seed(&s).await;
    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("backup");
    let data_dir = s.data_dir();
    succeeded(cm_server(&data_dir, "backup", &backup, &[]).await);
    let check = succeeded(cm_server(&data_dir, "restore", &backup, &["--check"]).await);
    assert!(check.contains("complete, intact backup"), "{check}");

    type Damage = fn(&Path);
    let damages: [(&str, Damage, &str); 6] = [
        (
            "a changed blob",
            |b| flip_last_byte(&first_blob(b)),
            "does not match the manifest",
        ),
        (
            "a changed database",
            |b| flip_last_byte(&b.join("cm.db")),
            "does not match the manifest",
        ),
        (
            "a replaced CA key",
            |b| std::fs::write(b.join("ca.key"), "-----BEGIN PRIVATE KEY-----\n").unwrap(),
            "does not match the manifest",
        ),
        (
            "an added file",
            |b| std::fs::write(b.join("extra"), "x").unwrap(),
            "does not list",
        ),
        (
            "a removed file",
            |b| std::fs::remove_file(b.join("server.pem")).unwrap(),
            "lacks server.pem",
        ),
        (
            "no manifest (an unfinished backup)",
            |b| std::fs::remove_file(b.join("manifest.json")).unwrap(),
            "did not finish",
        ),
    ];
    for (what, damage, expected) in damages {
        let copy = work.path().join("damaged");
        copy_tree(&backup, &copy);
        damage(&copy);
        let target = work.path().join("restored");
        let err = failed(cm_server(&target, "restore", &copy, &["--check"]).await);
        assert!(err.contains(expected), "{what}: {err}");
        let err = failed(cm_server(&target, "restore", &copy, &[]).await);
        assert!(err.contains(expected), "{what}: {err}");
        assert!(
            !target.exists(),
            "{what}: a refused restore wrote the data dir"
        );
        let leftovers: Vec<_> = std::fs::read_dir(work.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains("restore"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{what}: staging left behind: {leftovers:?}"
        );
        std::fs::remove_dir_all(&copy).unwrap();
    }

    // An existing empty data dir (a mount point, say) is filled in place.
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    succeeded(cm_server(&empty, "restore", &backup, &[]).await);
    let mut restored: Vec<String> = std::fs::read_dir(&empty)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    restored.sort();
    assert_eq!(
        restored,
        [
            "admin.credential",
            "blobs",
            "ca.key",
            "ca.pem",
            "cm.db",
            "secrets.key",
            "server.key",
            "server.pem"
        ]
    );

    // Neither command overwrites anything.
    let err = failed(cm_server(&data_dir, "backup", &backup, &[]).await);
    assert!(err.contains("is not empty"), "{err}");
    let err = failed(cm_server(&data_dir, "restore", &backup, &[]).await);
    assert!(err.contains("is not empty"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_server_keeps_everything_it_acknowledged() {
    let s = TestServer::start().await;
    let fleet = seed(&s).await;
    let before = inventory(&s).await;
    assert_eq!(before.runs.len(), 1);
    assert_eq!(before.tokens[0].1, 4, "one use spent enrolling node-1");

    let s = s.restart().await;
    assert!(s.running.credential.is_none(), "no second bootstrap admin");
    assert_eq!(inventory(&s).await, before);
    node_is_served(&s, &fleet).await;
    // The token keeps its remaining uses.
    enroll(&s, &fleet.token, "node-2").await.unwrap();
}
