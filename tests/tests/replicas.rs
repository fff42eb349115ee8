//! Two cm-server processes on one PostgreSQL database and one S3 bucket act
//! as one server: a change through one reaches the other's plans, caches and
//! Watch streams; an enrollment or a retirement through one is honoured by
//! the other; only one bootstrap admin exists; and a replica without the
//! shared CA or secrets key refuses to start.
//!
//! Runs only with CM_TEST_POSTGRES_URL and CM_TEST_S3_ENDPOINT set
//! (`scripts/with-postgres.sh scripts/with-s3.sh cargo nextest run -p cm-e2e
//! --test replicas`); otherwise each test says it did nothing and passes,
//! except under CI, where it fails (`cm_e2e::require`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cm_e2e::{bin, repo};
use cm_model::credential::Credential;
use cm_proto::v1::admins_client::AdminsClient;
use cm_proto::v1::agent_client::AgentClient;
use cm_proto::v1::nodes_client::NodesClient;
use cm_proto::v1::roles_client::RolesClient;
use cm_proto::v1::{Document, Empty, EnrollRequest, GetPlanRequest, Name, Plan, WatchRequest};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Generous bounds: the machine runs other builds.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- harness

/// Where the shared services are, from the test command's wrappers.
struct Env {
    postgres: String,
    s3_endpoint: String,
    bucket: String,
}

impl Env {
    /// The services, or None (the test does nothing; under CI it fails).
    fn get() -> Option<Env> {
        let postgres = std::env::var("CM_TEST_POSTGRES_URL").ok();
        let s3_endpoint = std::env::var("CM_TEST_S3_ENDPOINT").ok();
        let present = postgres.is_some() && s3_endpoint.is_some();
        if !cm_e2e::require(
            present,
            "CM_TEST_POSTGRES_URL or CM_TEST_S3_ENDPOINT is not set: run the test under \
             scripts/with-postgres.sh scripts/with-s3.sh",
        ) {
            return None;
        }
        Some(Env {
            postgres: postgres?,
            s3_endpoint: s3_endpoint?,
            bucket: std::env::var("CM_TEST_S3_BUCKET").unwrap_or_else(|_| "cm-test".into()),
        })
    }
}

/// A database of its own, dropped (with its connections) at the end.
struct Db {
    base: String,
    name: String,
    url: String,
}

impl Db {
    async fn create(base: &str) -> Db {
        let name = format!(
            "cm_replicas_{}_{:08x}",
            std::process::id(),
            rand_u32() // several tests and runs share one cluster
        );
        let mut admin = PgConnection::connect(base).await.expect("admin connection");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        admin.close().await.ok();
        let sep = if base.contains('?') { '&' } else { '?' };
        Db {
            url: format!("{base}{sep}dbname={name}"),
            base: base.to_string(),
            name,
        }
    }

    /// Cut every LISTEN connection to this database, as a network failure
    /// or a restarted PostgreSQL would; returns how many were cut.
    async fn cut_listeners(&self) -> i64 {
        let mut admin = PgConnection::connect(&self.base).await.expect("admin");
        let row = sqlx::query(
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
             WHERE datname = $1 AND query LIKE 'LISTEN%'",
        )
        .bind(&self.name)
        .fetch_one(&mut admin)
        .await
        .expect("terminate listeners");
        admin.close().await.ok();
        row.get("n")
    }

    async fn drop_database(self) {
        let mut admin = PgConnection::connect(&self.base).await.expect("admin");
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .expect("DROP DATABASE");
        admin.close().await.ok();
    }
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
}

/// The CA and secrets key the replicas share, as files in `dir`.
struct Shared {
    ca_pem: String,
    ca_cert: PathBuf,
    ca_key: PathBuf,
    key_file: PathBuf,
    key_hex: String,
}

impl Shared {
    fn create(dir: &Path) -> Shared {
        let ca = cm_server::pki::Ca::generate("cm replicas test CA").expect("a CA");
        let (ca_cert, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
        std::fs::write(&ca_cert, ca.cert_pem()).unwrap();
        std::fs::write(&ca_key, ca.key_pem()).unwrap();
        let (_, bytes) = cm_server::secretbox::SecretKey::generate().expect("a key");
        let key_hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let key_file = dir.join("secrets.key");
        std::fs::write(&key_file, &key_hex).unwrap();
        for private in [&ca_key, &key_file] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(private, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        Shared {
            ca_pem: ca.cert_pem().to_string(),
            ca_cert,
            ca_key,
            key_file,
            key_hex,
        }
    }
}

/// How a replica is handed the shared CA and key.
#[derive(Clone, Copy)]
enum Given {
    /// `--ca-cert`, `--ca-key`, `--secrets-key FILE`.
    Flags,
    /// `CM_CA_CERT`, `CM_CA_KEY` (paths) and `CM_SECRETS_KEY` (hex).
    Environment,
    /// The CA but no secrets key.
    CaOnly,
    /// Neither: the data dir's own, as an embedded server would.
    Nothing,
}

/// A cm-server process; killed on drop.
struct Replica {
    name: &'static str,
    data_dir: PathBuf,
    log: PathBuf,
    child: Child,
    grpc: Option<SocketAddr>,
}

impl Replica {
    fn spawn(
        name: &'static str,
        root: &Path,
        env: &Env,
        db: &Db,
        shared: &Shared,
        given: Given,
    ) -> Replica {
        let data_dir = root.join(name);
        let log = root.join(format!("{name}.log"));
        let mut cmd = cm_e2e::server_command();
        cmd.arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(["--dashboard-listen", "127.0.0.1:0"])
            .args(["--tls-name", "localhost", "--tls-name", "127.0.0.1"])
            .arg("--blobs")
            .arg(format!("s3://{}", env.bucket))
            .arg("--s3-endpoint")
            .arg(&env.s3_endpoint)
            // In the environment, not the arguments: the URL holds a password.
            .env("CM_DATABASE", &db.url)
            .env("CM_LOG", "info,cm_server::replication=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        match given {
            Given::Flags => {
                cmd.arg("--ca-cert")
                    .arg(&shared.ca_cert)
                    .arg("--ca-key")
                    .arg(&shared.ca_key)
                    .arg("--secrets-key")
                    .arg(&shared.key_file);
            }
            Given::Environment => {
                cmd.env("CM_CA_CERT", &shared.ca_cert)
                    .env("CM_CA_KEY", &shared.ca_key)
                    .env("CM_SECRETS_KEY", &shared.key_hex);
            }
            Given::CaOnly => {
                cmd.env("CM_CA_CERT", &shared.ca_cert)
                    .env("CM_CA_KEY", &shared.ca_key);
            }
            Given::Nothing => {}
        }
        let child = cmd.spawn().expect("cm-server starts");
        Replica {
            name,
            data_dir,
            log,
            child,
            grpc: None,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait for the "serving gRPC on ADDR" line.
    async fn ready(mut self) -> Replica {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = self.log_text();
            if let Some(rest) = log.split("serving gRPC on ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap();
                self.grpc = Some(addr.parse().expect("an address"));
                return self;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("replica {} exited ({status}):\n{log}", self.name);
            }
            assert!(
                Instant::now() < deadline,
                "replica {} did not start within {START_TIMEOUT:?}:\n{log}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait for the process to exit by itself; its status and log.
    async fn exited(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status, self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "replica {} kept running:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}", self.grpc.expect("ready").port())
    }

    async fn channel(&self, ca_pem: &str, identity: Option<(&str, &str)>) -> Channel {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca_pem))
            .domain_name("localhost");
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Channel::from_shared(self.url())
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connecting to replica {}: {e}", self.name))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// cmctl with `credential`; its stdout on success.
async fn cmctl(credential: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(bin("cmctl"));
    cmd.arg("--credential")
        .arg(credential)
        .args(args)
        .env("NO_COLOR", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("cmctl runs"))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "cmctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Enroll `node` through `replica` over raw gRPC; its (cert, key) PEMs.
async fn enroll(replica: &Replica, ca_pem: &str, token: &str, node: &str) -> (String, String) {
    let (key_pem, csr_pem) = cm_server::pki::new_key_and_csr(node).unwrap();
    let cert_pem = AgentClient::new(replica.channel(ca_pem, None).await)
        .enroll(EnrollRequest {
            token: token.to_string(),
            node_name: node.to_string(),
            csr_pem,
            facts_json: r#"{"hostname":"n","ipaddress":"10.1.2.3"}"#.into(),
            agent_version: cm_proto::VERSION.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("replica {} enrolls {node}: {e:?}", replica.name))
        .into_inner()
        .certificate_pem;
    (cert_pem, key_pem)
}

async fn plan(agent: &mut AgentClient<Channel>) -> Plan {
    agent
        .get_plan(GetPlanRequest {
            since: String::new(),
            agent_version: cm_proto::VERSION.into(),
        })
        .await
        .expect("a plan")
        .into_inner()
        .plan
        .expect("a full plan")
}

fn memory_percent(plan: &Plan) -> i64 {
    let attrs: serde_json::Value = serde_json::from_str(&plan.attributes_json).unwrap();
    attrs["memcached"]["memory_percent"].as_i64().unwrap()
}

fn role_yaml(memory_percent: u32) -> String {
    std::fs::read_to_string(repo().join("roles/memcached.yaml"))
        .unwrap()
        .replace(
            "memory_percent: 50",
            &format!("memory_percent: {memory_percent}"),
        )
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_act_as_one_server() {
    let Some(env) = Env::get() else {
        return;
    };
    let db = Db::create(&env.postgres).await;
    let root = tempfile::tempdir().unwrap();
    let shared = Shared::create(root.path());

    // A starts first and writes the bootstrap credential; B, given the CA
    // and key another way, finds the admin there and writes none.
    let a = Replica::spawn("a", root.path(), &env, &db, &shared, Given::Flags)
        .ready()
        .await;
    let b = Replica::spawn("b", root.path(), &env, &db, &shared, Given::Environment)
        .ready()
        .await;
    let credential = a.data_dir.join("admin.credential");
    assert!(credential.exists(), "{}", a.log_text());
    assert!(!b.data_dir.join("admin.credential").exists());
    let admin = Credential::read(&credential).unwrap();
    let admin_id = Some((admin.certificate_pem.as_str(), admin.key_pem.as_str()));
    let admin_a = a.channel(&shared.ca_pem, admin_id).await;
    let admin_b = b.channel(&shared.ca_pem, admin_id).await;
    let admins = AdminsClient::new(admin_b.clone())
        .list(Empty {})
        .await
        .expect("B accepts A's admin credential")
        .into_inner()
        .admins;
    assert_eq!(admins.len(), 1, "{admins:?}");

    // Cookbook (blobs into the shared bucket), role and token through A.
    let mc = repo().join("cookbooks/memcached");
    let role = repo().join("roles/memcached.yaml");
    cmctl(&credential, &["push", "cookbook", mc.to_str().unwrap()]).await;
    cmctl(&credential, &["role", "set", role.to_str().unwrap()]).await;
    // A token's environment must exist: an empty one, as an unset one was.
    let env = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(env.path(), "name: production\n").unwrap();
    cmctl(&credential, &["env", "set", env.path().to_str().unwrap()]).await;
    let token = cmctl(
        &credential,
        &[
            "token",
            "create",
            "--role",
            "memcached",
            "--env",
            "production",
            "--ttl",
            "1h",
            "--uses",
            "2",
        ],
    )
    .await
    .trim()
    .to_string();
    assert!(token.starts_with("cmt_"), "{token}");

    // Enroll through B (and another node through A); the plan is the same
    // through either.
    let (cert_pem, key_pem) = enroll(&b, &shared.ca_pem, &token, "node-1").await;
    let (cert_2, key_2) = enroll(&a, &shared.ca_pem, &token, "node-2").await;
    let node_id = Some((cert_pem.as_str(), key_pem.as_str()));
    let mut agent_a = AgentClient::new(a.channel(&shared.ca_pem, node_id).await);
    let mut agent_b = AgentClient::new(b.channel(&shared.ca_pem, node_id).await);
    let (plan_a, plan_b) = (plan(&mut agent_a).await, plan(&mut agent_b).await);
    assert_eq!(plan_a.hash, plan_b.hash);
    assert_eq!(plan_b.run_list, ["memcached::default"]);
    assert_eq!(memory_percent(&plan_b), 50);

    // A Watch stream on B hears of a role change made through A.
    let mut events = agent_b
        .watch(WatchRequest {
            plan_hash: plan_b.hash.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut roles_a = RolesClient::new(admin_a.clone());
    roles_a
        .set(Document {
            yaml: role_yaml(60),
            ..Default::default()
        })
        .await
        .unwrap();
    let changed_at = Instant::now();
    let event = tokio::time::timeout(EVENT_TIMEOUT, events.next())
        .await
        .expect("B's watcher hears of A's change in time")
        .expect("the stream is open")
        .expect("an event");
    let latency = changed_at.elapsed();
    eprintln!("cross-replica watch event (A's role change to B's Watch stream): {latency:?}");
    assert_ne!(event.plan_hash, plan_b.hash);
    assert!(event.reason.contains("memcached"), "{}", event.reason);
    // A caches the revoked serials again here, at its latest change.
    let (new_a, new_b) = (plan(&mut agent_a).await, plan(&mut agent_b).await);
    assert_eq!(
        (new_b.hash.as_str(), memory_percent(&new_b)),
        (event.plan_hash.as_str(), 60)
    );
    assert_eq!(new_a.hash, new_b.hash);

    // Retired through B: A, whose cached revoked serials predate it, refuses
    // the node's certificate once it hears of the retirement.
    NodesClient::new(admin_b)
        .retire(Name {
            name: "node-1".into(),
        })
        .await
        .unwrap();
    let retired_at = Instant::now();
    loop {
        match agent_a.get_plan(GetPlanRequest::default()).await {
            Err(e) if e.code() == Code::Unauthenticated => break,
            Err(e) => panic!("A refused the retired node with {e:?}"),
            Ok(_) => assert!(
                retired_at.elapsed() < EVENT_TIMEOUT,
                "A still accepts the certificate of a node retired through B"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "retirement through B honoured by A after {:?}",
        retired_at.elapsed()
    );
    let err = agent_b
        .get_plan(GetPlanRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // The listening connections drop; both replicas reconnect, and a Watch
    // stream on B still hears of the next change through A.
    let mut agent_2 = AgentClient::new(
        b.channel(&shared.ca_pem, Some((cert_2.as_str(), key_2.as_str())))
            .await,
    );
    let plan_2 = plan(&mut agent_2).await;
    assert_eq!(memory_percent(&plan_2), 60);
    let mut events = agent_2
        .watch(WatchRequest {
            plan_hash: plan_2.hash.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(db.cut_listeners().await, 2, "one listener per replica");
    roles_a
        .set(Document {
            yaml: role_yaml(70),
            ..Default::default()
        })
        .await
        .unwrap();
    let event = tokio::time::timeout(EVENT_TIMEOUT, events.next())
        .await
        .expect("B's watcher hears of a change after the listener reconnected")
        .unwrap()
        .unwrap();
    assert_ne!(event.plan_hash, plan_2.hash);
    assert_eq!(memory_percent(&plan(&mut agent_2).await), 70);
    let deadline = Instant::now() + EVENT_TIMEOUT;
    for r in [&a, &b] {
        // Reconnected, and refreshed for what it may have missed meanwhile.
        while !(r
            .log_text()
            .contains("listening for other replicas' changes again")
            && r.log_text()
                .contains("reconnected to the database; changes made meanwhile"))
        {
            assert!(
                Instant::now() < deadline,
                "replica {} did not reconnect:\n{}",
                r.name,
                r.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    drop((a, b));
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_without_the_shared_ca_or_secrets_key_refuses_to_start() {
    let Some(env) = Env::get() else {
        return;
    };
    let db = Db::create(&env.postgres).await;
    let root = tempfile::tempdir().unwrap();
    let shared = Shared::create(root.path());
    let first = Replica::spawn("first", root.path(), &env, &db, &shared, Given::Flags)
        .ready()
        .await;

    let (status, log) = Replica::spawn("no-ca", root.path(), &env, &db, &shared, Given::Nothing)
        .exited()
        .await;
    assert!(!status.success());
    assert!(
        log.contains("this database belongs to the CA with fingerprint"),
        "{log}"
    );
    assert!(log.contains("--ca-cert"), "{log}");
    assert!(
        !root.path().join("no-ca/ca.pem").exists(),
        "a CA was generated before refusing"
    );

    let (status, log) = Replica::spawn("no-key", root.path(), &env, &db, &shared, Given::CaOnly)
        .exited()
        .await;
    assert!(!status.success());
    assert!(
        log.contains("secrets are sealed with the secrets key"),
        "{log}"
    );
    assert!(log.contains("CM_SECRETS_KEY"), "{log}");

    // Another CA altogether is refused too.
    std::fs::create_dir(root.path().join("other")).unwrap();
    let other = Shared::create(&root.path().join("other"));
    let (status, log) = Replica::spawn("other-ca", root.path(), &env, &db, &other, Given::Flags)
        .exited()
        .await;
    assert!(!status.success());
    assert!(
        log.contains("is not the CA this database belongs to"),
        "{log}"
    );

    drop(first);
    db.drop_database().await;
}
