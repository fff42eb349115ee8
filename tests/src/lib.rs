//! Support for the end-to-end tests: a real cm-server on loopback ports with
//! SQLite and blobs in a temp dir, its admin credential, and TLS channels for
//! admins and enrolled nodes.

use std::path::{Path, PathBuf};

use cm_server::serve::{self, Config, Running};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

pub mod agent;
pub mod browser;
pub mod web;

/// What a test does when something it needs is missing (docs/decisions.md,
/// "A test never skips in CI").
pub use cm_model::testing::{in_ci, require};

/// The repository root (cookbooks/, roles/, environments/).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repo")
        .to_path_buf()
}

/// A server in a temp dir, stopped on drop of the runtime.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub running: Running,
    pub credential: PathBuf,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        TestServer::start_in(dir).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> TestServer {
        TestServer::start_on(dir, 0).await
    }

    /// A server on gRPC port `port` (0: any free port).
    pub async fn start_on(dir: tempfile::TempDir, port: u16) -> TestServer {
        TestServer::start_configured(dir, port, |_| {}).await
    }

    /// A server whose configuration `adjust` changes first (wire limits...).
    pub async fn start_configured(
        dir: tempfile::TempDir,
        port: u16,
        adjust: impl FnOnce(&mut Config),
    ) -> TestServer {
        let mut config = Config::embedded(&dir.path().join("server"));
        config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        config.http_listen = "127.0.0.1:0".parse().expect("literal");
        if let Some(dashboard) = config.dashboard.as_mut() {
            dashboard.listen = "127.0.0.1:0".parse().expect("literal address");
        }
        config.tls_names = vec!["localhost".into(), "127.0.0.1".into()];
        adjust(&mut config);
        let running = serve::start(config).await.expect("server starts");
        let credential = dir.path().join("server/admin.credential");
        TestServer {
            dir,
            running,
            credential,
        }
    }

    /// The server's data dir (inside the temp dir).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("server")
    }

    /// Stop the server and start a new one on the same data dir.
    pub async fn restart(self) -> TestServer {
        let TestServer { dir, running, .. } = self;
        running.stop().await;
        TestServer::start_in(dir).await
    }

    /// Stop the server, keeping its data dir; `start_on` brings it back.
    pub async fn stop(self) -> tempfile::TempDir {
        self.running.stop().await;
        self.dir
    }

    /// The files of the server's local blob store (named by their sha256).
    pub fn blob_files(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![self.data_dir().join("blobs")];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("the blob store is readable") {
                let path = entry.expect("a directory entry").path();
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                if path.is_dir() {
                    pending.push(path);
                } else if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                    found.push(path);
                }
            }
        }
        found.sort();
        found
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.running.grpc_addr.port())
    }

    pub fn ca_pem(&self) -> String {
        self.running.state.pki.ca().cert_pem().to_string()
    }

    /// A channel with the given client identity (or none).
    pub async fn channel(&self, identity: Option<(&str, &str)>) -> Channel {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca_pem()))
            .domain_name("localhost");
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Channel::from_shared(self.url())
            .expect("a URL")
            .tls_config(tls)
            .expect("TLS config")
            .connect()
            .await
            .expect("connects")
    }

    /// An enrollment token for `role` in production, valid ten minutes. A
    /// token needs its role and environment to exist: either missing is
    /// created empty first (a later `role set` or `env set` fills it in).
    pub async fn token(&self, role: &str, uses: u32) -> String {
        use cm_proto::v1::environments_client::EnvironmentsClient;
        use cm_proto::v1::roles_client::RolesClient;
        use cm_proto::v1::{Document, Name};
        let admin = self.admin().await;
        let mut roles = RolesClient::new(admin.clone());
        let name = |n: &str| Name { name: n.into() };
        let empty = |n: &str| Document {
            yaml: format!("name: {n}\n"),
            ..Document::default()
        };
        if roles.show(name(role)).await.is_err() {
            roles.set(empty(role)).await.expect("an empty role");
        }
        let mut envs = EnvironmentsClient::new(admin);
        if envs.show(name("production")).await.is_err() {
            envs.set(empty("production"))
                .await
                .expect("an empty production environment");
        }
        cm_proto::v1::tokens_client::TokensClient::new(self.admin().await)
            .create(cm_proto::v1::CreateTokenRequest {
                roles: vec![role.into()],
                environment: "production".into(),
                ttl_seconds: 600,
                uses,
            })
            .await
            .expect("the admin can create a token")
            .into_inner()
            .token
    }

    /// A channel as the bootstrap admin.
    pub async fn admin(&self) -> Channel {
        let c = cm_model::credential::Credential::read(&self.credential).expect("credential");
        self.channel(Some((&c.certificate_pem, &c.key_pem))).await
    }
}

/// A built binary of the workspace (scripts/test.sh builds them all first).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/TEST -> target/debug/NAME
    let dir = exe.parent().and_then(Path::parent).expect("target/debug");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// The cm-server binary, with none of the settings it reads from the
/// environment inherited from the one the tests run in (a test gives its
/// own, as flags or variables).
pub fn server_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(bin("cm-server"));
    for var in [
        "CM_DATABASE",
        "CM_DATA_DIR",
        "CM_CA_CERT",
        "CM_CA_KEY",
        "CM_SECRETS_KEY",
        "CM_SECRETS_KEY_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// Enroll a node with `token` over raw gRPC; returns its (cert, key) PEMs.
pub async fn enroll(
    server: &TestServer,
    token: &str,
    node: &str,
) -> Result<(String, String), tonic::Status> {
    use cm_proto::v1::agent_client::AgentClient;
    let (key_pem, csr_pem) = cm_server::pki::new_key_and_csr(node).expect("CSR");
    let mut client = AgentClient::new(server.channel(None).await);
    let r = client
        .enroll(cm_proto::v1::EnrollRequest {
            token: token.to_string(),
            node_name: node.to_string(),
            csr_pem,
            facts_json: r#"{"hostname":"node-1","ipaddress":"10.1.2.3"}"#.into(),
            agent_version: cm_proto::VERSION.into(),
        })
        .await?
        .into_inner();
    Ok((r.certificate_pem, key_pem))
}

/// Push a cookbook directory with the real cmctl as the bootstrap admin.
pub async fn push_cookbook(server: &TestServer, dir: &Path) {
    let cred = server.credential.clone();
    let dir = dir.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin("cmctl"))
            .arg("--credential")
            .arg(cred)
            .args(["push", "cookbook"])
            .arg(dir)
            .output()
            .expect("cmctl runs")
    })
    .await
    .expect("the push task finishes");
    assert!(
        out.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The node's whole plan (GetPlan with no `since`).
pub async fn full_plan(
    agent: &mut cm_proto::v1::agent_client::AgentClient<Channel>,
) -> cm_proto::v1::Plan {
    agent
        .get_plan(cm_proto::v1::GetPlanRequest::default())
        .await
        .expect("the node gets its plan")
        .into_inner()
        .plan
        .expect("a plan when no hash is given")
}

/// Open the node's Watch stream, knowing plan `hash`.
pub async fn watch(
    agent: &mut cm_proto::v1::agent_client::AgentClient<Channel>,
    hash: &str,
) -> tonic::Streaming<cm_proto::v1::WatchEvent> {
    agent
        .watch(cm_proto::v1::WatchRequest {
            plan_hash: hash.to_string(),
        })
        .await
        .expect("the node opens its Watch stream")
        .into_inner()
}
