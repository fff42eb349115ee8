//! `cm-bench push`: pushing a large cookbook with the real `cmctl` binary.
//! A 1,000-file cookbook (text files of 1 to 8 KiB under files/, a
//! metadata.yaml and a recipe) is generated in a temp dir and pushed twice
//! to an in-process server: the first push uploads every blob, the
//! unchanged re-push must upload none. cmctl reaches the server through a
//! byte-counting TCP relay on 127.0.0.1, so the figures give both the blob
//! bytes cmctl reports and the bytes that crossed the wire (TLS included).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::net::{TcpListener, TcpStream};

use crate::server::{BenchServer, HOST};

/// `cm-bench push` options.
#[derive(Debug, Clone, clap::Args)]
pub struct PushArgs {
    /// Files in the generated cookbook, metadata.yaml and the recipe included.
    #[arg(long, default_value_t = 1000)]
    pub files: usize,
    /// The cmctl binary; default: the one built next to cm-bench.
    #[arg(long)]
    pub cmctl: Option<PathBuf>,
    /// PostgreSQL URL; default SQLite in a temp dir. Must be an empty
    /// database.
    #[arg(long, env = "CM_BENCH_DATABASE")]
    pub database: Option<String>,
}

/// What one cmctl push did, from its `--format json` output and the relay.
#[derive(Debug)]
struct Pushed {
    wall: Duration,
    uploaded: u64,
    uploaded_bytes: u64,
    created: bool,
    wire_up: u64,
    wire_down: u64,
}

pub fn run(args: PushArgs) -> Result<()> {
    let cmctl = match &args.cmctl {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("cm-bench's directory")?
            .join("cmctl"),
    };
    if !cmctl.is_file() {
        bail!(
            "{} is not built: run `cargo build --release -p cmctl` first, or pass --cmctl PATH",
            cmctl.display()
        );
    }
    if args.files < 3 {
        bail!("--files must be at least 3 (metadata.yaml, a recipe, one file)");
    }
    let server = BenchServer::start(args.database.as_deref(), 2)?;
    let runtime = crate::cpu::client_runtime(2)?;
    let result = runtime.block_on(measure(&server, &args, &cmctl));
    runtime.shutdown_timeout(Duration::from_secs(5));
    server.stop();
    result
}

async fn measure(server: &BenchServer, args: &PushArgs, cmctl: &Path) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("cm-bench-cookbook.")
        .tempdir()?;
    let (files, bytes) = generate_cookbook(dir.path(), args.files, "1.0.0", 0)?;
    let credential = server.dir.path().join("server/admin.credential");
    let relay = Relay::start(server.grpc_addr).await?;
    let engine = if args.database.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "cm-bench push: a {files}-file cookbook, {bytes} bytes ({:.1} MiB), with {} against \
         an in-process server ({engine}, local blob directory)",
        bytes as f64 / (1 << 20) as f64,
        cmctl.display()
    );
    let first = relay.push(cmctl, &credential, dir.path()).await?;
    print("first push", &first);
    let again = relay.push(cmctl, &credential, dir.path()).await?;
    print("unchanged re-push", &again);
    // A new version with one file changed: uploads one blob.
    generate_cookbook(dir.path(), args.files, "1.0.1", 1)?;
    let next = relay.push(cmctl, &credential, dir.path()).await?;
    print("new version, one file changed", &next);
    if !first.created || first.uploaded_bytes == 0 {
        bail!("the first push created nothing");
    }
    if again.created || again.uploaded != 0 || again.uploaded_bytes != 0 {
        bail!("the unchanged re-push uploaded {again:?}");
    }
    Ok(())
}

fn print(what: &str, p: &Pushed) {
    println!(
        "  {what:<30} {:>6.2} s  {:>4} blobs, {:>9} bytes of blob data uploaded; \
         wire {:>9} bytes up, {:>8} down; {}",
        p.wall.as_secs_f64(),
        p.uploaded,
        p.uploaded_bytes,
        p.wire_up,
        p.wire_down,
        if p.created {
            "version created"
        } else {
            "nothing changed"
        }
    );
}

/// Write a cookbook of `files` files into `dir`: metadata.yaml,
/// recipes/default.yaml and text files of 1 to 8 KiB under files/. File
/// `changed` (if not 0) gets different content. Returns (files, bytes).
fn generate_cookbook(
    dir: &Path,
    files: usize,
    version: &str,
    changed: usize,
) -> Result<(usize, u64)> {
    let write = |rel: &str, text: &str| -> Result<u64> {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(text.len() as u64)
    };
    let mut bytes = write(
        "metadata.yaml",
        &format!(
            "name: bench_files\nversion: {version}\ndescription: {files} files generated by cm-bench\n"
        ),
    )?;
    let shipped = files - 2;
    let mut recipe = String::from("- directory: /srv/bench\n");
    for i in 0..shipped.min(10) {
        recipe.push_str(&format!(
            "- file: /srv/bench/f{i:04}.txt\n  source: f{i:04}.txt\n  mode: \"0644\"\n"
        ));
    }
    bytes += write("recipes/default.yaml", &recipe)?;
    // A small deterministic generator: the same cookbook on every run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..shipped {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let size = 1024 + (seed >> 33) as usize % (7 * 1024 + 1);
        let mut text = format!(
            "# file {i} of bench_files{}\n",
            if i == changed && changed != 0 {
                " (changed)"
            } else {
                ""
            }
        );
        let mut line = 0u64;
        while text.len() < size {
            line += 1;
            text.push_str(&format!(
                "key_{i}_{line} = value {} {}\n",
                seed ^ line,
                line * 7919
            ));
        }
        text.truncate(size);
        bytes += write(&format!("files/f{i:04}.txt"), &text)?;
    }
    Ok((files, bytes))
}

/// A TCP relay from a loopback port to the server that counts the bytes
/// each way.
struct Relay {
    addr: std::net::SocketAddr,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    open: Arc<AtomicU64>,
}

impl Relay {
    async fn start(server: std::net::SocketAddr) -> Result<Relay> {
        let listener = TcpListener::bind((HOST, 0)).await?;
        let relay = Relay {
            addr: listener.local_addr()?,
            up: Arc::default(),
            down: Arc::default(),
            open: Arc::default(),
        };
        let (up, down, open) = (relay.up.clone(), relay.down.clone(), relay.open.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (up, down, open) = (up.clone(), down.clone(), open.clone());
                open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    // No Nagle on the relay either, or it would add the
                    // delayed-ACK stalls it is meant to measure around.
                    let _ = client.set_nodelay(true);
                    if let Ok(mut upstream) = TcpStream::connect(server).await
                        && upstream.set_nodelay(true).is_ok()
                        && let Ok((u, d)) =
                            tokio::io::copy_bidirectional(&mut client, &mut upstream).await
                    {
                        up.fetch_add(u, Ordering::SeqCst);
                        down.fetch_add(d, Ordering::SeqCst);
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Ok(relay)
    }

    /// Run `cmctl push cookbook DIR` through the relay and read its report.
    async fn push(&self, cmctl: &Path, credential: &Path, dir: &Path) -> Result<Pushed> {
        let (up0, down0) = (
            self.up.load(Ordering::SeqCst),
            self.down.load(Ordering::SeqCst),
        );
        let started = Instant::now();
        let out = tokio::process::Command::new(cmctl)
            .arg("--credential")
            .arg(credential)
            .arg("--server")
            .arg(format!("https://{HOST}:{}", self.addr.port()))
            .args(["--format", "json", "push", "cookbook"])
            .arg(dir)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(600), out)
            .await
            .context("cmctl push took longer than 10 minutes")??;
        let wall = started.elapsed();
        if !out.status.success() {
            bail!(
                "cmctl push failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The relay adds its counts when cmctl's connection closes.
        let waited = Instant::now();
        while self.open.load(Ordering::SeqCst) > 0 && waited.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("cmctl's JSON: {}", String::from_utf8_lossy(&out.stdout)))?;
        let field = |k: &str| {
            report
                .get(k)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        Ok(Pushed {
            wall,
            uploaded: field("uploaded"),
            uploaded_bytes: field("uploaded_bytes"),
            created: report.get("created").and_then(serde_json::Value::as_bool) == Some(true),
            wire_up: self.up.load(Ordering::SeqCst) - up0,
            wire_down: self.down.load(Ordering::SeqCst) - down0,
        })
    }
}
