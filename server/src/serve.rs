//! Starting the server: storage, blobs, the CA and keys, the bootstrap admin
//! credential, the gRPC services over TLS, the HTTP side, and the background
//! work (check-in flushing; plan recomputation after changes, see
//! [`crate::recompute`]; blob collection and run retention, see
//! [`crate::ops::maintenance`]). Used by `cm-server serve` and by in-process
//! tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cm_proto::v1::{
    admins_server::AdminsServer, agent_server::AgentServer, audit_server::AuditServer,
    cookbooks_server::CookbooksServer, environments_server::EnvironmentsServer,
    nodes_server::NodesServer, roles_server::RolesServer, runs_server::RunsServer,
    secrets_server::SecretsServer, tokens_server::TokensServer,
};
use tokio::sync::oneshot;

use crate::api;
use crate::blobs::{Blobs, S3Options};
use crate::dashboard::DashboardConfig;
use crate::ops::maintenance::{self, Maintenance};
use crate::pki::Pki;
use crate::secretbox::SecretKey;
use crate::state::{Settings, State};
use crate::store::{Level, Store, redact_url};
use crate::wire::{WireLimits, accept, calls};
use crate::{recompute, replication};
use cm_model::credential::Credential;

/// Largest gRPC message accepted (a plan, a blob chunk, a report).
const MAX_MESSAGE: usize = 16 << 20;

/// How the server is set up; flags and CM_* variables fill it.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub http_listen: SocketAddr,
    /// Names in the server certificate; the URL nodes use must match one.
    pub tls_names: Vec<String>,
    /// `sqlite://...` or `postgres://...`; default SQLite in the data dir.
    pub database: Option<String>,
    /// `s3://bucket` or None for the data dir.
    pub blobs: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    /// Shared CA for replicas (PEM files); default: the data dir's own.
    pub ca_cert: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
    /// Shared secrets key for replicas; default: the data dir's own.
    pub secrets_key: Option<PathBuf>,
    /// The URL written into the bootstrap credential (how admins reach us).
    pub public_url: Option<String>,
    pub settings: Settings,
    /// Blob garbage collection and run retention.
    pub maintenance: Maintenance,
    /// HTTP/2 and TLS handshake limits of the gRPC port.
    pub wire: WireLimits,
    /// The dashboard's port and certificate; `None`: no dashboard.
    pub dashboard: Option<DashboardConfig>,
}

impl Config {
    pub fn embedded(data_dir: &Path) -> Config {
        Config {
            data_dir: data_dir.to_path_buf(),
            listen: "0.0.0.0:8443".parse().expect("literal address"),
            http_listen: "0.0.0.0:8080".parse().expect("literal address"),
            tls_names: default_tls_names(),
            database: None,
            blobs: None,
            s3_endpoint: None,
            s3_region: None,
            ca_cert: None,
            ca_key: None,
            secrets_key: None,
            public_url: None,
            settings: Settings::default(),
            maintenance: Maintenance::default(),
            wire: WireLimits::default(),
            dashboard: Some(DashboardConfig {
                listen: "0.0.0.0:8444".parse().expect("literal address"),
                url: None,
                cert: None,
                key: None,
            }),
        }
    }
}

/// The hostname, localhost and 127.0.0.1.
pub fn default_tls_names() -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if let Ok(h) = nix::unistd::gethostname()
        && let Some(h) = h.to_str()
        && !names.iter().any(|n| n == h)
    {
        names.insert(0, h.to_string());
    }
    names
}

/// A started server.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Where the dashboard listens, when it is served.
    pub dashboard_addr: Option<SocketAddr>,
    pub state: Arc<State>,
    /// Where the bootstrap admin credential was written (first start only).
    pub credential: Option<PathBuf>,
    /// The TLS handshakes in progress on the gRPC port.
    pub handshakes: accept::Handshakes,
    shutdown: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stop serving and wait until the listeners are closed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.done.await;
    }

    /// Resolve when the server stopped by itself.
    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

/// Start everything; returns once both listeners are bound.
pub async fn start(config: Config) -> Result<Running> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    crate::data_dir::ensure_private_dir(&config.data_dir).context("the data dir")?;
    // Counting starts with the process, before the first call.
    crate::metrics::handle();
    let database = match &config.database {
        Some(url) => url.clone(),
        None => format!(
            "sqlite://{}?mode=rwc",
            config.data_dir.join("cm.db").display()
        ),
    };
    let store = Store::open(&database)
        .await
        .with_context(|| format!("opening the database {}", redact_url(&database)))?;
    let blobs = match config.blobs.as_deref() {
        None => {
            let dir = config.data_dir.join("blobs");
            let tidied = crate::blobs::local_dir::tidy(&dir).context("the blob directory")?;
            if tidied.partial_uploads_removed > 0 {
                tracing::info!(
                    removed = tidied.partial_uploads_removed,
                    "removed partial uploads of pushes that were killed"
                );
            }
            Blobs::local(&dir).context("opening the blob directory")?
        }
        Some(url) => {
            let bucket = url
                .strip_prefix("s3://")
                .context("--blobs takes s3://BUCKET")?;
            Blobs::s3(S3Options {
                bucket: bucket.to_string(),
                endpoint: config.s3_endpoint.clone(),
                region: config.s3_region.clone(),
                ..S3Options::default()
            })
            .context("opening the S3 bucket")?
        }
    };
    // Replicas share the CA and the secrets key; the database records which
    // ones, and a server that would make new ones for it refuses to start.
    let recorded = replication::identity::Recorded::load(&store)
        .await
        .context("reading the recorded CA and secrets key")?;
    let pki = match (&config.ca_cert, &config.ca_key) {
        (Some(c), Some(k)) => {
            let ca = crate::pki::Ca::from_pem_or_path(
                &c.display().to_string(),
                &k.display().to_string(),
            )?;
            Pki::from_ca(ca, &config.data_dir, &config.tls_names)?
        }
        (None, None) => {
            recorded.refuse_new_ca(&config.data_dir)?;
            Pki::load_or_create(&config.data_dir, &config.tls_names)?
        }
        _ => anyhow::bail!("give both --ca-cert and --ca-key, or neither"),
    };
    let secrets_key = load_secrets_key(&config, &recorded)?;
    replication::identity::claim(&store, &pki.ca().fingerprint(), secrets_key.id()).await?;
    let state = Arc::new(State::new(
        store,
        blobs,
        pki,
        secrets_key,
        config.settings.clone(),
    ));

    let grpc = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let grpc_addr = grpc.local_addr()?;
    let credential = bootstrap_admin(&state, &config, grpc_addr).await?;

    let (tx, rx) = oneshot::channel::<()>();
    let (http_tx, http_rx) = oneshot::channel::<()>();
    let http_addr = crate::http::serve(config.http_listen, state.clone(), async {
        let _ = http_rx.await;
    })
    .await
    .with_context(|| format!("binding {}", config.http_listen))?;
    let (dashboard_tx, dashboard_rx) = oneshot::channel::<()>();
    // A dashboard that cannot start (its port taken, a bad certificate)
    // is logged, and the server serves without one: nodes must not lose
    // their server over a web page.
    let dashboard_addr = match &config.dashboard {
        Some(dashboard) => {
            let served =
                crate::dashboard::serve(dashboard, &public_host(&config), state.clone(), async {
                    let _ = dashboard_rx.await;
                })
                .await;
            match served {
                Ok(addr) => Some(addr),
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "no dashboard");
                    None
                }
            }
        }
        None => None,
    };

    let replication = match state.store.is_postgres() {
        true => Some(replication::start(state.clone(), &database).await?),
        false => None,
    };
    let flusher = tokio::spawn(flush_check_ins(state.clone()));
    let recomputer = tokio::spawn(recompute::run(state.clone()));
    let housekeeping = maintenance::spawn(state.clone(), config.maintenance.clone());
    let tls = state
        .pki
        .server_rustls_config()
        .context("TLS configuration")?;
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let s = state.clone();
    let limits = &config.wire;
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_header_list_size(limits.max_header_list_size)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .layer(calls::CallRulesLayer)
        .add_service(
            AgentServer::new(api::agent::AgentApi {
                state: s.clone(),
                stopping: stopping_rx,
                refusals: Default::default(),
            })
            .max_decoding_message_size(MAX_MESSAGE),
        )
        .add_service(
            CookbooksServer::new(api::cookbooks::CookbooksApi { state: s.clone() })
                .max_decoding_message_size(MAX_MESSAGE),
        )
        .add_service(RolesServer::new(api::documents::RolesApi {
            state: s.clone(),
        }))
        .add_service(EnvironmentsServer::new(api::documents::EnvironmentsApi {
            state: s.clone(),
        }))
        .add_service(NodesServer::new(api::nodes::NodesApi { state: s.clone() }))
        .add_service(TokensServer::new(api::tokens::TokensApi {
            state: s.clone(),
        }))
        .add_service(SecretsServer::new(api::secrets::SecretsApi {
            state: s.clone(),
        }))
        .add_service(AdminsServer::new(api::admins::AdminsApi {
            state: s.clone(),
        }))
        .add_service(RunsServer::new(api::runs::RunsApi { state: s.clone() }))
        .add_service(AuditServer::new(api::audit::AuditApi { state: s.clone() }));
    let (incoming, handshakes) = accept::spawn(grpc, tls, &config.wire);
    let flush_state = state.clone();
    let done = tokio::spawn(async move {
        let result = router
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
                let _ = stopping_tx.send(true);
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "gRPC server stopped");
        }
        flusher.abort();
        recomputer.abort();
        housekeeping.abort();
        if let Some(r) = replication {
            r.stop();
        }
        flush_state.flush_check_ins().await;
        let _ = http_tx.send(());
        let _ = dashboard_tx.send(());
    });
    Ok(Running {
        grpc_addr,
        http_addr,
        dashboard_addr,
        state,
        credential,
        handshakes,
        shutdown: Some(tx),
        done,
    })
}

/// The host admins reach this server by: the public URL's, else the
/// first name of the server certificate.
fn public_host(config: &Config) -> String {
    config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
        .or_else(|| config.tls_names.first().cloned())
        .unwrap_or_else(|| "localhost".into())
}

/// The secrets key: the file `--secrets-key` names (which must exist: a
/// shared key is never generated), or `CM_SECRETS_KEY`, or the data dir's
/// own, created on first start unless the database already has a key.
fn load_secrets_key(
    config: &Config,
    recorded: &replication::identity::Recorded,
) -> Result<SecretKey> {
    let from_env = SecretKey::from_env()?;
    match (&config.secrets_key, from_env) {
        (Some(_), Some(_)) => {
            anyhow::bail!("give the secrets key with --secrets-key or CM_SECRETS_KEY, not both")
        }
        (Some(path), None) => {
            if !path.exists() {
                anyhow::bail!(
                    "the secrets key file {} does not exist (a shared key is not generated: \
                     copy the one the other servers use)",
                    path.display()
                );
            }
            SecretKey::load_or_create(path).context("loading the secrets key")
        }
        (None, Some(key)) => Ok(key),
        (None, None) => {
            let path = config.data_dir.join("secrets.key");
            recorded.refuse_new_secrets_key(&path)?;
            SecretKey::load_or_create(&path).context("loading the secrets key")
        }
    }
}

/// On first start (no admins yet), issue the `admin` credential into the
/// data dir. Of replicas starting together on one database, one writes it
/// and the others none.
async fn bootstrap_admin(
    state: &State,
    config: &Config,
    addr: SocketAddr,
) -> Result<Option<PathBuf>> {
    if !state.store.admins().await?.is_empty() {
        return Ok(None);
    }
    let cert = state
        .pki
        .ca()
        .issue_admin("admin", Duration::from_secs(365 * 86400))?;
    match state
        .store
        .add_admin("admin", &cert.cert.serial, Level::Owner, &[], "bootstrap")
        .await
    {
        Ok(_) => {}
        // Another replica bootstrapped between our look and our insert.
        Err(crate::store::StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let host = config
        .tls_names
        .iter()
        .find(|n| *n == "localhost")
        .cloned()
        .unwrap_or_else(|| config.tls_names[0].clone());
    let url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("https://{host}:{}", addr.port()));
    let cred = Credential {
        name: "admin".into(),
        server: url,
        ca_fingerprint: state.pki.ca().fingerprint(),
        ca_pem: state.pki.ca().cert_pem().to_string(),
        certificate_pem: cert.cert.cert_pem,
        key_pem: cert.key_pem,
    };
    let path = config.data_dir.join("admin.credential");
    cred.write(&path)?;
    Ok(Some(path))
}

/// Check-ins are kept in memory and written in batches, then the
/// membership verdicts are passed (`state::membership`).
async fn flush_check_ins(state: Arc<State>) {
    // Nodes enrolled before the server kept memberships join their roles.
    match state.store.reconcile_members(crate::state::now()).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(nodes = n, "nodes joined the cluster view of their roles");
            state.changed("nodes joined the cluster view").await;
        }
        Err(e) => tracing::warn!(error = %e, "cannot bring the memberships up to date"),
    }
    let mut tick = tokio::time::interval(crate::store::PASS_EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = state.membership_pass(crate::state::now()).await {
            tracing::warn!(error = %e, "cannot pass the membership verdicts");
        }
    }
}
