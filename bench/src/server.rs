//! The server under measurement: a real `cm-server` started in this process
//! with `serve::start`, on 127.0.0.1 ports, with its data dir (SQLite, blobs,
//! CA) in a temp dir or its database on the PostgreSQL URL given. It runs on
//! its own tokio runtime, whose threads are named `cm-server`, so that the
//! CPU the server spends can be told apart from the load generator's.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use cm_model::credential::Credential;
use cm_server::serve::{self, Config, Running};
use cm_server::state::State;
use tonic::transport::Channel;

/// The name in the server certificate that clients check: the address they
/// connect to, so that all traffic stays on 127.0.0.1 (no `localhost`
/// lookup that might try ::1 first).
pub const HOST: &str = "127.0.0.1";

/// Thread name prefix of the server's runtime (see [`crate::cpu`]).
pub const SERVER_THREADS: &str = "cm-server";

/// A started server and what clients need to reach it.
pub struct BenchServer {
    runtime: tokio::runtime::Runtime,
    running: Option<Running>,
    pub state: Arc<State>,
    pub grpc_addr: SocketAddr,
    pub credential: Credential,
    /// Where the data dir (and with it the SQLite file and blobs) lives.
    pub dir: tempfile::TempDir,
}

impl BenchServer {
    /// Start a server on a runtime of its own with `threads` workers.
    /// `database` is a `postgres://` URL, or None for SQLite in the temp dir.
    /// Call from outside any runtime.
    pub fn start(database: Option<&str>, threads: usize) -> Result<BenchServer> {
        cm_server::pki::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(SERVER_THREADS)
            .enable_all()
            .build()
            .context("starting the server's runtime")?;
        let dir = tempfile::Builder::new()
            .prefix("cm-bench.")
            .tempdir()
            .context("creating a temp dir")?;
        let mut config = Config::embedded(&dir.path().join("server"));
        config.listen = "127.0.0.1:0".parse().expect("literal address");
        config.http_listen = "127.0.0.1:0".parse().expect("literal address");
        if let Some(dashboard) = config.dashboard.as_mut() {
            dashboard.listen = "127.0.0.1:0".parse().expect("literal address");
        }
        config.tls_names = vec![HOST.to_string()];
        config.database = database.map(str::to_string);
        let running = runtime
            .block_on(serve::start(config))
            .context("starting cm-server")?;
        let Some(path) = running.credential.clone() else {
            bail!(
                "the database already has admins (an earlier run?): give cm-bench an empty \
                 database, e.g. a fresh one from scripts/with-postgres.sh"
            );
        };
        let credential = Credential::read(&path).map_err(anyhow::Error::msg)?;
        Ok(BenchServer {
            state: running.state.clone(),
            grpc_addr: running.grpc_addr,
            runtime,
            running: Some(running),
            credential,
            dir,
        })
    }

    /// Run `fut` on the server's runtime (for direct calls into its state,
    /// so that database connections live where the server uses them).
    pub async fn run<F>(&self, fut: F) -> Result<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime
            .spawn(fut)
            .await
            .context("a task on the server's runtime panicked")
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{HOST}:{}", self.grpc_addr.port())
    }

    /// A new TLS connection (one HTTP/2 connection per call), presenting
    /// `identity` (certificate and key PEM) when given.
    pub async fn connect(&self, identity: Option<(&str, &str)>) -> Result<Channel> {
        let tls = cm_server::pki::client_tls_config(&self.credential.ca_pem, identity, HOST);
        Channel::from_shared(self.url())
            .context("server URL")?
            .tls_config(tls)
            .context("client TLS configuration")?
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .connect()
            .await
            .with_context(|| format!("connecting to {}", self.url()))
    }

    /// A connection as the bootstrap admin.
    pub async fn admin(&self) -> Result<Channel> {
        let c = &self.credential;
        self.connect(Some((&c.certificate_pem, &c.key_pem))).await
    }

    /// Stop serving and shut the runtime down. Call from outside any runtime.
    pub fn stop(mut self) {
        if let Some(running) = self.running.take() {
            self.runtime.block_on(running.stop());
        }
        self.runtime
            .shutdown_timeout(std::time::Duration::from_secs(5));
    }
}
