//! Every RPC has a policy: admin calls refuse node certificates and anonymous
//! callers; agent calls refuse admins and anonymous callers; a node reads only
//! its own plan, the blobs of its own cookbooks and its own roles' secrets,
//! and writes only its own reports.

use cm_e2e::{TestServer, enroll, push_cookbook, repo};
use cm_proto::v1::admins_client::AdminsClient;
use cm_proto::v1::agent_client::AgentClient;
use cm_proto::v1::audit_client::AuditClient;
use cm_proto::v1::cookbooks_client::CookbooksClient;
use cm_proto::v1::environments_client::EnvironmentsClient;
use cm_proto::v1::nodes_client::NodesClient;
use cm_proto::v1::roles_client::RolesClient;
use cm_proto::v1::runs_client::RunsClient;
use cm_proto::v1::secrets_client::SecretsClient;
use cm_proto::v1::tokens_client::TokensClient;
use cm_proto::v1::*;
use tonic::transport::Channel;
use tonic::{Code, Status};

fn code<T>(r: Result<tonic::Response<T>, Status>) -> Code {
    r.map(|_| Code::Ok).unwrap_or_else(|e| e.code())
}

/// Call every admin RPC on `ch`; return the codes, named.
async fn admin_calls(ch: Channel) -> Vec<(&'static str, Code)> {
    let mut c = CookbooksClient::new(ch.clone());
    let mut r = RolesClient::new(ch.clone());
    let mut e = EnvironmentsClient::new(ch.clone());
    let mut n = NodesClient::new(ch.clone());
    let mut t = TokensClient::new(ch.clone());
    let mut s = SecretsClient::new(ch.clone());
    let mut a = AdminsClient::new(ch.clone());
    let name = || Name { name: "x".into() };
    vec![
        (
            "cookbooks.missing_blobs",
            code(c.missing_blobs(MissingBlobsRequest::default()).await),
        ),
        (
            "cookbooks.upload_blob",
            code(
                c.upload_blob(tokio_stream::iter(vec![BlobChunk::default()]))
                    .await,
            ),
        ),
        (
            "cookbooks.commit",
            code(c.commit(CommitRequest::default()).await),
        ),
        (
            "cookbooks.list",
            code(c.list(ListCookbooksRequest::default()).await),
        ),
        ("cookbooks.show", code(c.show(CookbookId::default()).await)),
        (
            "cookbooks.delete",
            code(c.delete(CookbookId::default()).await),
        ),
        ("roles.set", code(r.set(Document::default()).await)),
        ("roles.show", code(r.show(name()).await)),
        ("roles.list", code(r.list(Empty {}).await)),
        ("roles.history", code(r.history(name()).await)),
        ("roles.delete", code(r.delete(name()).await)),
        ("environments.set", code(e.set(Document::default()).await)),
        ("environments.show", code(e.show(name()).await)),
        ("environments.list", code(e.list(Empty {}).await)),
        ("environments.history", code(e.history(name()).await)),
        ("environments.delete", code(e.delete(name()).await)),
        (
            "nodes.list",
            code(n.list(ListNodesRequest::default()).await),
        ),
        ("nodes.show", code(n.show(name()).await)),
        (
            "nodes.assign",
            code(n.assign(AssignRequest::default()).await),
        ),
        (
            "nodes.unassign",
            code(n.unassign(AssignRequest::default()).await),
        ),
        (
            "nodes.set_attribute",
            code(n.set_attribute(SetAttributeRequest::default()).await),
        ),
        (
            "nodes.unset_attribute",
            code(n.unset_attribute(SetAttributeRequest::default()).await),
        ),
        ("nodes.retire", code(n.retire(name()).await)),
        ("nodes.move", code(n.r#move(MoveRequest::default()).await)),
        (
            "nodes.cluster",
            code(n.cluster(ClusterRequest::default()).await),
        ),
        (
            "nodes.explain",
            code(n.explain(ExplainRequest::default()).await),
        ),
        (
            "tokens.create",
            code(t.create(CreateTokenRequest::default()).await),
        ),
        ("tokens.list", code(t.list(Empty {}).await)),
        ("tokens.revoke", code(t.revoke(name()).await)),
        (
            "secrets.set",
            code(s.set(SetSecretRequest::default()).await),
        ),
        ("secrets.list", code(s.list(Empty {}).await)),
        ("secrets.delete", code(s.delete(name()).await)),
        ("admins.add", code(a.add(AdminLevel::default()).await)),
        ("admins.list", code(a.list(Empty {}).await)),
        ("admins.remove", code(a.remove(name()).await)),
        ("admins.set", code(a.set(AdminLevel::default()).await)),
        (
            "admins.dashboard_link",
            code(a.dashboard_link(Empty {}).await),
        ),
        (
            "runs.list",
            code(
                RunsClient::new(ch.clone())
                    .list(ListRunsRequest::default())
                    .await,
            ),
        ),
        (
            "audit.list",
            code(AuditClient::new(ch).list(ListAuditRequest::default()).await),
        ),
    ]
}

async fn agent_calls(ch: Channel) -> Vec<(&'static str, Code)> {
    let mut g = AgentClient::new(ch);
    vec![
        ("agent.renew", code(g.renew(RenewRequest::default()).await)),
        (
            "agent.get_plan",
            code(g.get_plan(GetPlanRequest::default()).await),
        ),
        (
            "agent.fetch_blob",
            code(g.fetch_blob(FetchBlobRequest::default()).await),
        ),
        (
            "agent.report_facts",
            code(g.report_facts(FactsRequest::default()).await),
        ),
        (
            "agent.report_run",
            code(g.report_run(RunSummary::default()).await),
        ),
        ("agent.watch", code(g.watch(WatchRequest::default()).await)),
        ("agent.heartbeat", code(g.heartbeat(Empty {}).await)),
    ]
}

fn refused(calls: &[(&'static str, Code)], want: Code) {
    let wrong: Vec<_> = calls.iter().filter(|(_, c)| *c != want).collect();
    assert!(
        wrong.is_empty(),
        "expected {want:?} from every call, got: {wrong:?}"
    );
}

async fn setup() -> (TestServer, String) {
    let s = TestServer::start().await;
    let token = s.token("memcached", 5).await;
    (s, token)
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_callers_are_refused_everywhere_but_enroll() {
    let (s, _) = setup().await;
    refused(
        &admin_calls(s.channel(None).await).await,
        Code::Unauthenticated,
    );
    refused(
        &agent_calls(s.channel(None).await).await,
        Code::Unauthenticated,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn node_certificates_are_refused_by_every_admin_call() {
    let (s, token) = setup().await;
    let (cert, key) = enroll(&s, &token, "node-1").await.unwrap();
    refused(
        &admin_calls(s.channel(Some((&cert, &key))).await).await,
        Code::PermissionDenied,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_certificates_are_refused_by_every_agent_call() {
    let (s, _) = setup().await;
    refused(&agent_calls(s.admin().await).await, Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_reads_only_its_own_cookbooks_and_secrets_and_reports_only_as_itself() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    // Two roles with different cookbooks and secrets.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join("recipes")).unwrap();
    std::fs::write(other.join("metadata.yaml"), "name: other\nversion: 1.0.0\n").unwrap();
    std::fs::write(
        other.join("recipes/default.yaml"),
        "- file: /tmp/other-only\n  content: other\n",
    )
    .unwrap();
    for d in [repo().join("cookbooks/memcached"), other.clone()] {
        push_cookbook(&s, &d).await;
    }
    let mut roles = RolesClient::new(admin.clone());
    roles
        .set(Document {
            yaml: "name: cache\nrun_list: [memcached]\n".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    roles
        .set(Document {
            yaml: "name: other\nrun_list: [other]\n".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    EnvironmentsClient::new(admin.clone())
        .set(Document {
            yaml: "name: production\n".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut secrets = SecretsClient::new(admin.clone());
    secrets
        .set(SetSecretRequest {
            name: "cache_key".into(),
            value: b"cache-secret".to_vec(),
            roles: vec!["cache".into()],
        })
        .await
        .unwrap();
    secrets
        .set(SetSecretRequest {
            name: "other_key".into(),
            value: b"other-secret".to_vec(),
            roles: vec!["other".into()],
        })
        .await
        .unwrap();
    let mut tokens = TokensClient::new(admin.clone());
    let token = |role: &str| CreateTokenRequest {
        roles: vec![role.into()],
        environment: "production".into(),
        ttl_seconds: 600,
        uses: 1,
    };
    let t_cache = tokens
        .create(token("cache"))
        .await
        .unwrap()
        .into_inner()
        .token;
    let t_other = tokens
        .create(token("other"))
        .await
        .unwrap()
        .into_inner()
        .token;
    let (cert, key) = enroll(&s, &t_cache, "cache-1").await.unwrap();
    let (ocert, okey) = enroll(&s, &t_other, "other-1").await.unwrap();
    let mut cache = AgentClient::new(s.channel(Some((&cert, &key))).await);
    let mut other_node = AgentClient::new(s.channel(Some((&ocert, &okey))).await);

    let plan = cache
        .get_plan(GetPlanRequest::default())
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert_eq!(plan.secrets.keys().collect::<Vec<_>>(), ["cache_key"]);
    let other_plan = other_node
        .get_plan(GetPlanRequest::default())
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    let other_blob = other_plan.cookbooks[0].manifest[0].sha256.clone();
    let err = cache
        .fetch_blob(FetchBlobRequest { sha256: other_blob })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A report claiming to be another node is refused, and filed nowhere.
    let err = cache
        .report_run(RunSummary {
            node: "other-1".into(),
            status: "success".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let runs = RunsClient::new(admin)
        .list(ListRunsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert!(runs.is_empty(), "{runs:?}");
    // Facts that would poison other nodes' plans are refused.
    let err = cache
        .report_facts(FactsRequest {
            facts_json: r#"{"ipaddress":"1.2.3.4; rm -rf /"}"#.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_uploads_and_half_pushes_leave_no_trace() {
    let (s, _) = setup().await;
    let mut c = CookbooksClient::new(s.admin().await);
    // Content that does not match its digest.
    let lie = BlobChunk {
        sha256: "a".repeat(64),
        size: 5,
        data: b"hello".to_vec(),
    };
    let err = c
        .upload_blob(tokio_stream::iter(vec![lie]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // A declared size the stream does not deliver (a push cut off).
    let digest = cm_model::manifest::sha256_hex(b"hello");
    let short = BlobChunk {
        sha256: digest.clone(),
        size: 10,
        data: b"hello".to_vec(),
    };
    assert_eq!(
        c.upload_blob(tokio_stream::iter(vec![short]))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    // A commit whose blobs were never uploaded: refused, nothing visible.
    let manifest = vec![ManifestEntry {
        path: "metadata.yaml".into(),
        sha256: "b".repeat(64),
        size: 30,
        mode: 0o644,
    }];
    let err = c
        .commit(CommitRequest {
            name: "x".into(),
            version: "1.0.0".into(),
            manifest,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    // A path escaping the cookbook is refused.
    let meta = b"name: x\nversion: 1.0.0\n".to_vec();
    let d = cm_model::manifest::sha256_hex(&meta);
    c.upload_blob(tokio_stream::iter(vec![BlobChunk {
        sha256: d.clone(),
        size: meta.len() as u64,
        data: meta.clone(),
    }]))
    .await
    .unwrap();
    let manifest = vec![
        ManifestEntry {
            path: "metadata.yaml".into(),
            sha256: d.clone(),
            size: meta.len() as u64,
            mode: 0o644,
        },
        ManifestEntry {
            path: "../escape".into(),
            sha256: d,
            size: meta.len() as u64,
            mode: 0o644,
        },
    ];
    let err = c
        .commit(CommitRequest {
            name: "x".into(),
            version: "1.0.0".into(),
            manifest,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains(".."), "{}", err.message());
    let versions = c
        .list(ListCookbooksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert!(
        versions.is_empty(),
        "a version became visible: {versions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_message_is_refused() {
    let (s, _) = setup().await;
    let mut r = RolesClient::new(s.admin().await);
    let err = r
        .set(Document {
            yaml: "x".repeat(8 << 20),
            ..Default::default()
        })
        .await
        .unwrap_err();
    // gRPC's code for a message over the limit (tonic says OUT_OF_RANGE).
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
}

/// The one RPC anyone may call: enrollment carries its own proof (the token).
const PUBLIC_CALLS: &[&str] = &["agent.enroll"];

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// `service.rpc` for every rpc declared in proto/cm.proto.
fn rpcs_in_the_proto() -> std::collections::BTreeSet<String> {
    let proto = include_str!("../../proto/cm.proto");
    let mut service = String::new();
    let mut out = std::collections::BTreeSet::new();
    for line in proto.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("service ") {
            service = snake_case(rest.split_whitespace().next().unwrap_or_default());
        } else if let Some(rest) = line.strip_prefix("rpc ") {
            let rpc = rest.split('(').next().unwrap_or_default().trim();
            out.insert(format!("{service}.{}", snake_case(rpc)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rpc_in_the_proto_is_in_the_matrix() {
    let (s, _) = setup().await;
    let mut matrix: std::collections::BTreeSet<String> =
        PUBLIC_CALLS.iter().map(|c| c.to_string()).collect();
    for (name, _) in admin_calls(s.channel(None).await).await {
        matrix.insert(name.to_string());
    }
    for (name, _) in agent_calls(s.channel(None).await).await {
        matrix.insert(name.to_string());
    }
    let declared = rpcs_in_the_proto();
    assert!(declared.len() > 30, "the proto parser found {declared:?}");
    let missing: Vec<_> = declared.difference(&matrix).collect();
    let stale: Vec<_> = matrix.difference(&declared).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "rpcs without a policy row in this matrix: {missing:?}; rows for no rpc: {stale:?}"
    );
}

// ------------------------------------------------------------ admin levels

/// Named calls and what each answered.
type Calls = Vec<(&'static str, Code)>;

/// The calls that only read.
const READS: &[&str] = &[
    "cookbooks.list",
    "cookbooks.show",
    "roles.show",
    "roles.list",
    "roles.history",
    "environments.show",
    "environments.list",
    "environments.history",
    "nodes.list",
    "nodes.show",
    "nodes.cluster",
    "nodes.explain",
    "tokens.list",
    "secrets.list",
    "admins.list",
    "admins.dashboard_link",
    "runs.list",
    "audit.list",
];

/// A credential of `level` (limited to `envs`), added by the bootstrap owner.
async fn admin_of(s: &TestServer, name: &str, level: &str, envs: &[&str]) -> Channel {
    let c = AdminsClient::new(s.admin().await)
        .add(AdminLevel {
            name: name.into(),
            level: level.into(),
            environments: envs.iter().map(|e| e.to_string()).collect(),
        })
        .await
        .unwrap()
        .into_inner();
    s.channel(Some((&c.certificate_pem, &c.key_pem))).await
}

fn split(calls: Calls) -> (Calls, Calls) {
    calls.into_iter().partition(|(n, _)| READS.contains(n))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_reads_everything_and_changes_nothing() {
    let s = TestServer::start().await;
    let viewer = admin_of(&s, "vera", "viewer", &[]).await;
    let (reads, writes) = split(admin_calls(viewer).await);
    refused(&writes, Code::PermissionDenied);
    let denied: Vec<_> = reads
        .iter()
        .filter(|(_, c)| *c == Code::PermissionDenied)
        .collect();
    assert!(denied.is_empty(), "a viewer reads: {denied:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_changes_the_fleet_but_not_admins_or_secrets() {
    let s = TestServer::start().await;
    let ops = admin_of(&s, "otto", "operator", &[]).await;
    let calls = admin_calls(ops.clone()).await;
    let owners_only = [
        "secrets.set",
        "secrets.delete",
        "admins.add",
        "admins.remove",
        "admins.set",
    ];
    let (owner_calls, rest): (Vec<_>, Vec<_>) = calls
        .into_iter()
        .partition(|(n, _)| owners_only.contains(n));
    refused(&owner_calls, Code::PermissionDenied);
    let denied: Vec<_> = rest
        .iter()
        .filter(|(_, c)| *c == Code::PermissionDenied)
        .collect();
    assert!(denied.is_empty(), "an operator may: {denied:?}");

    // Downgraded, the same credential is a viewer at its next call.
    AdminsClient::new(s.admin().await)
        .set(AdminLevel {
            name: "otto".into(),
            level: "viewer".into(),
            environments: vec![],
        })
        .await
        .unwrap();
    let err = RolesClient::new(ops)
        .set(Document {
            yaml: "name: web\n".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("admin otto is a viewer"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_limited_to_an_environment_changes_only_its_document_nodes_and_tokens() {
    let s = TestServer::start().await;
    let owner = s.admin().await;
    let prod_token = s.token("memcached", 5).await; // makes role memcached and production
    EnvironmentsClient::new(owner.clone())
        .set(Document {
            yaml: "name: staging\n".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let staging_token = TokensClient::new(owner.clone())
        .create(CreateTokenRequest {
            roles: vec!["memcached".into()],
            environment: "staging".into(),
            ttl_seconds: 600,
            uses: 5,
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    enroll(&s, &prod_token, "prod-1").await.unwrap();
    enroll(&s, &staging_token, "stage-1").await.unwrap();
    let ch = admin_of(&s, "stella", "operator", &["staging"]).await;
    let mut n = NodesClient::new(ch.clone());
    let mut t = TokensClient::new(ch.clone());
    let mut e = EnvironmentsClient::new(ch.clone());
    let attr = |node: &str| SetAttributeRequest {
        node: node.into(),
        key: "memcached.memory_mb".into(),
        value_json: "64".into(),
    };
    let token = |env: &str| CreateTokenRequest {
        roles: vec!["memcached".into()],
        environment: env.into(),
        ttl_seconds: 600,
        uses: 1,
    };
    let doc = |yaml: &str| Document {
        yaml: yaml.into(),
        ..Default::default()
    };
    // Allowed: staging's own things.
    assert_eq!(code(n.set_attribute(attr("stage-1")).await), Code::Ok);
    assert_eq!(code(t.create(token("staging")).await), Code::Ok);
    assert_eq!(
        code(e.set(doc("name: staging\nsplay_seconds: 5\n")).await),
        Code::Ok
    );
    assert_eq!(code(n.list(ListNodesRequest::default()).await), Code::Ok);
    // Refused: another environment's, a node in none, what every one shares.
    let denied = [
        (
            "a production node",
            code(n.set_attribute(attr("prod-1")).await),
        ),
        (
            "a node that does not exist",
            code(n.set_attribute(attr("ghost")).await),
        ),
        (
            "retiring a production node",
            code(
                n.retire(Name {
                    name: "prod-1".into(),
                })
                .await,
            ),
        ),
        (
            "moving a node out",
            code(
                n.r#move(MoveRequest {
                    node: "stage-1".into(),
                    environment: "production".into(),
                    force: true,
                })
                .await,
            ),
        ),
        (
            "a production token",
            code(t.create(token("production")).await),
        ),
        (
            "production's document",
            code(e.set(doc("name: production\n")).await),
        ),
        (
            "a role",
            code(RolesClient::new(ch.clone()).set(doc("name: web\n")).await),
        ),
        (
            "a cookbook push",
            code(
                CookbooksClient::new(ch.clone())
                    .commit(CommitRequest::default())
                    .await,
            ),
        ),
        (
            "a secret",
            code(
                SecretsClient::new(ch.clone())
                    .set(SetSecretRequest {
                        name: "x".into(),
                        value: b"y".to_vec(),
                        roles: vec!["memcached".into()],
                    })
                    .await,
            ),
        ),
    ];
    let wrong: Vec<_> = denied
        .iter()
        .filter(|(_, c)| *c != Code::PermissionDenied)
        .collect();
    assert!(wrong.is_empty(), "refused to a staging operator: {wrong:?}");

    // A role with secrets is not theirs to hand out: a node of it reads the
    // secrets in whichever environment it enrolls.
    s.token("db", 1).await;
    SecretsClient::new(owner.clone())
        .set(SetSecretRequest {
            name: "db_password".into(),
            value: b"hunter2".to_vec(),
            roles: vec!["db".into()],
        })
        .await
        .unwrap();
    let mut db_token = token("staging");
    db_token.roles = vec!["db".into()];
    let err = t.create(db_token).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("role db reads secrets"),
        "{}",
        err.message()
    );
    let assign = AssignRequest {
        node: "stage-1".into(),
        role: "db".into(),
        force: true,
    };
    assert_eq!(code(n.assign(assign).await), Code::PermissionDenied);
    let err = n.set_attribute(attr("prod-1")).await.unwrap_err();
    assert!(
        err.message()
            .contains("admin stella is an operator of staging")
            && err.message().contains("production"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn owners_are_owners_of_every_environment_and_a_level_is_always_given() {
    let s = TestServer::start().await;
    let mut a = AdminsClient::new(s.admin().await);
    let limited_owner = AdminLevel {
        name: "olga".into(),
        level: "owner".into(),
        environments: vec!["staging".into()],
    };
    let err = a.add(limited_owner).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("--level operator"),
        "{}",
        err.message()
    );
    a.add(AdminLevel {
        name: "olga".into(),
        level: "viewer".into(),
        environments: vec![],
    })
    .await
    .unwrap();
    let no_level = AdminLevel {
        name: "olga".into(),
        level: String::new(),
        environments: vec![],
    };
    assert_eq!(code(a.set(no_level).await), Code::InvalidArgument);
}
