//! The agents' process of `cm-bench idle`: it signs its agents'
//! certificates with the CA it is given and prints `NAME SERIAL NOT_AFTER`
//! for each, then `signed`; on `connect` it opens every agent's connection
//! and Watch stream and prints how long that took; on `expect MICROS` (the
//! wall-clock time of a plan change's commit) it waits until every watcher
//! holds its new plan and prints two lines, `heard` and `held`, each with
//! every watcher's delay in microseconds (to its event, to its new plan).
//! It ends when its stdin closes.

use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use cm_proto::v1::agent_client::AgentClient;
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tonic::transport::Endpoint;

use crate::server::HOST;
use crate::watchers::{Step, follow, open_watch};

#[derive(clap::Args)]
pub struct IdleAgentsArgs {
    #[arg(long)]
    agents: usize,
    /// JSON: the CA's certificate and key, the server's URL and CA.
    #[arg(long)]
    ca: PathBuf,
}

struct Identity {
    name: String,
    cert_pem: String,
    key_pem: String,
}

pub fn run(args: IdleAgentsArgs) -> Result<()> {
    let spec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&args.ca)?)?;
    let text = |k: &str| {
        spec[k]
            .as_str()
            .map(str::to_string)
            .context("the spec file")
    };
    let ca = cm_server::pki::Ca::from_pem(&text("cert")?, &text("key")?)?;
    let identities = sign(&ca, args.agents)?;
    let mut out = std::io::stdout().lock();
    for (id, serial, not_after) in &identities {
        writeln!(out, "{} {serial} {not_after}", id.name)?;
    }
    writeln!(out, "signed")?;
    out.flush()?;
    drop(out);

    let mut lines = std::io::stdin().lock().lines();
    if lines.next().transpose()?.as_deref() != Some("connect") {
        return Ok(());
    }
    let runtime = crate::cpu::client_runtime(2)?;
    let (url, ca_pem) = (text("url")?, text("ca_pem")?);
    let identities = identities.into_iter().map(|(id, _, _)| id).collect();
    let (held_tx, mut held_rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    runtime.block_on(connect_all(&url, &ca_pem, identities, held_tx))?;
    println!(
        "{} agents' Watch streams open in {:.1} s",
        args.agents,
        started.elapsed().as_secs_f64()
    );
    std::io::stdout().flush()?;

    for line in lines {
        let line = line?;
        let Some(committed) = line.strip_prefix("expect ") else {
            bail!("unexpected command: {line}");
        };
        let committed: u128 = committed.parse()?;
        let (mut heard, mut held) = (Vec::new(), Vec::with_capacity(args.agents));
        runtime.block_on(async {
            while held.len() < args.agents {
                let (step, at) = tokio::time::timeout(Duration::from_secs(120), held_rx.recv())
                    .await
                    .context("watchers still without their new plan after 120 s")?
                    .context("every watcher ended")?;
                let delay = at.saturating_sub(committed).to_string();
                match step {
                    Step::Heard => heard.push(delay),
                    Step::Held => held.push(delay),
                }
            }
            anyhow::Ok(())
        })?;
        println!("heard {}", heard.join(" "));
        println!("held {}", held.join(" "));
        std::io::stdout().flush()?;
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// A key, CSR and certificate for each agent, on two threads.
fn sign(ca: &cm_server::pki::Ca, agents: usize) -> Result<Vec<(Identity, String, i64)>> {
    let one = |i: usize| -> Result<(Identity, String, i64)> {
        let name = format!("idle-{i:06}");
        let (key_pem, csr_pem) = cm_server::pki::new_key_and_csr(&name)?;
        let cert = ca.sign_node_csr(&csr_pem, &name, Duration::from_secs(7 * 86_400))?;
        let id = Identity {
            name,
            cert_pem: cert.cert_pem,
            key_pem,
        };
        Ok((id, cert.serial, cert.not_after))
    };
    let half = agents / 2;
    std::thread::scope(|s| {
        let first = s.spawn(|| (0..half).map(one).collect::<Result<Vec<_>>>());
        let mut second = (half..agents).map(one).collect::<Result<Vec<_>>>()?;
        let mut all = first.join().expect("signing thread")?;
        all.append(&mut second);
        Ok(all)
    })
}

/// Every agent's connection, first plan and Watch stream, 64 at a time;
/// agent `i` connects from 127.0.0.(1 + i / PER_SOURCE).
async fn connect_all(
    url: &str,
    ca_pem: &str,
    identities: Vec<Identity>,
    held: mpsc::UnboundedSender<(Step, u128)>,
) -> Result<()> {
    let opened = futures::stream::iter(identities.into_iter().enumerate())
        .map(|(i, id)| {
            let held = held.clone();
            async move {
                let source = Ipv4Addr::new(127, 0, 0, 1 + (i / super::PER_SOURCE) as u8);
                let tls = cm_server::pki::client_tls_config(
                    ca_pem,
                    Some((&id.cert_pem, &id.key_pem)),
                    HOST,
                );
                let channel = Endpoint::from_shared(url.to_string())?
                    .tls_config(tls)?
                    .local_address(Some(IpAddr::V4(source)))
                    .connect_timeout(Duration::from_secs(30))
                    .connect()
                    .await
                    .with_context(|| format!("connecting as {} from {source}", id.name))?;
                let mut agent = AgentClient::new(channel);
                let (hash, stream) = open_watch(&mut agent).await?;
                let followed = follow(agent, stream, hash, move |step| {
                    if let Ok(at) = SystemTime::now().duration_since(UNIX_EPOCH) {
                        let _ = held.send((step, at.as_micros()));
                    }
                });
                // A watcher that fails says so, rather than leave the
                // fan-out to time out without a reason.
                let name = id.name;
                tokio::spawn(async move {
                    if let Err(e) = followed.await {
                        eprintln!("cm-bench idle-agents: {name}: {e:#}");
                    }
                });
                anyhow::Ok(())
            }
        })
        .buffer_unordered(64);
    futures::pin_mut!(opened);
    while let Some(r) = opened.next().await {
        r?;
    }
    Ok(())
}
