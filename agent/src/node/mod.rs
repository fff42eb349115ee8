//! This node and its server: enroll once, then each run gathers facts,
//! renews the certificate when due, syncs the plan, converges it from the
//! cache and reports. With the server unreachable a run converges the last
//! good plan and says how old it is; with no valid plan on the server (a
//! plan error) it converges the last good plan too and reports a warning
//! with the reason.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use cm_model::report::{ResourceReport, RunReport};
use cm_proto::v1::agent_client::AgentClient;
use cm_proto::v1::{FactsRequest, Plan, RunSummary};
use tonic::transport::Channel;

use crate::apply::failed_before_start;
use crate::config::Config;
use crate::facts::{self, Facts};
use crate::lock::RunLock;
use crate::remote::identity::{self, Identity};
use crate::remote::reports::Queue;
use crate::remote::sync::{self, Cache, Fetched};
use crate::remote::{RemoteError, ensure_state_dir, now};

mod enroll;
mod plan;
pub mod pose;

pub use enroll::{Connected, connect_with_backoff};
use enroll::{enroll, expired, revoked, revoked_on_server};
use plan::{Mode, converge_plan};

/// Why the agent must stop rather than try again.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// Enrollment was refused (bad, expired or used-up token, name taken).
    #[error("{0}")]
    Refused(String),
    /// The certificate was revoked (node retired) or has expired.
    #[error("{0}")]
    Revoked(String),
    /// The agent cannot start here: state dir unusable, another daemon running.
    #[error("{0}")]
    Setup(String),
}

/// An enrolled node with its connection.
pub struct Node {
    pub config: Config,
    pub identity: Identity,
    channel: Channel,
    pub cache: Cache,
    pub queue: Queue,
    /// A renewed identity that could not be written yet.
    unsaved_identity: bool,
}

/// What one run did.
pub struct Outcome {
    pub report: RunReport,
    /// The plan converged (or tried), if there was one.
    pub plan_hash: Option<String>,
    /// The environment's splay for plan-change wake-ups.
    pub splay_seconds: u32,
    /// The server answered this run.
    pub online: bool,
    pub fetched: Fetched,
    pub cause: &'static str,
}

/// How a run converges.
pub struct RunOptions {
    pub why_run: bool,
    /// New files whole in the report, not their first lines.
    pub full_diff: bool,
    pub lock_file: PathBuf,
    pub lock_wait: Duration,
}

/// Facts of this machine, EC2's included when the settings allow asking.
/// Blocking: call it from a blocking thread.
pub fn gather_facts(config: &Config) -> Facts {
    let mut f = facts::gather();
    let settings = facts::Ec2Settings {
        cloud: config.cloud,
        endpoint: config.imds_endpoint.clone(),
    };
    match facts::ec2::gather(&settings, Path::new("/")) {
        Ok(ec2) => f.ec2 = ec2,
        Err(e) => tracing::warn!(error = %e, "no EC2 facts"),
    }
    f
}

/// The name this node enrolls under: configured, else the EC2 instance id, else the hostname.
pub fn node_name(config: &Config, facts: &Facts) -> String {
    config
        .name
        .clone()
        .or_else(|| facts.ec2.as_ref().map(|e| e.instance_id.clone()))
        .unwrap_or_else(|| facts.hostname.clone())
}

impl Node {
    /// Load the identity, or enroll with the configured token. One attempt:
    /// the caller decides how to retry an unreachable server.
    pub async fn connect(config: &Config, facts: &Facts) -> Result<Node, RemoteError> {
        ensure_state_dir(&config.state_dir)
            .map_err(|e| RemoteError::Local(format!("{}: {e}", config.state_dir.display())))?;
        let stored = Identity::load(&config.state_dir).map_err(RemoteError::Local)?;
        let identity = match stored {
            // A token beside an identity: the operator wants this node back
            // if the server no longer takes its certificate.
            Some(mut id) if config.token.is_some() => {
                id.server = config.server.clone().unwrap_or(id.server);
                if id.expired(now()) || revoked_on_server(&id, facts).await? {
                    tracing::info!(node = %id.name, "the stored identity is no longer valid: enrolling again");
                    enroll(config, facts).await?
                } else {
                    id
                }
            }
            Some(id) if id.expired(now()) => {
                return Err(RemoteError::Revoked(expired(&id, config)));
            }
            Some(mut id) => {
                // A moved server (`server:` changed) is reached at its new address.
                id.server = config.server.clone().unwrap_or(id.server);
                id
            }
            None => enroll(config, facts).await?,
        };
        let channel = identity.channel().map_err(RemoteError::Refused)?;
        Ok(Node {
            cache: Cache::new(&config.state_dir),
            queue: Queue::new(&config.state_dir),
            config: config.clone(),
            identity,
            channel,
            unsaved_identity: false,
        })
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The cached plan's hash.
    pub fn plan_hash(&self) -> Option<String> {
        self.cache.plan().map(|p| p.hash)
    }

    /// One run: renew if due, report facts, sync, converge, report.
    pub async fn run(
        &mut self,
        opts: &RunOptions,
        stop: &'static AtomicBool,
        observe: Box<dyn FnMut(&ResourceReport) + Send>,
    ) -> Result<Outcome, Fatal> {
        self.adopt_newer_identity()?;
        if self.identity.expired(now()) {
            return Err(Fatal::Revoked(expired(&self.identity, &self.config)));
        }
        let config = self.config.clone();
        let facts = tokio::task::spawn_blocking(move || gather_facts(&config))
            .await
            .unwrap_or_default();
        // Reporting facts is also the reachability probe: with the server
        // away, the run goes straight to the cache instead of waiting out
        // one timeout per call.
        let reached = match self.report_facts(&facts).await {
            // The answer to a renewal may have been lost: the server then
            // lets the replaced certificate renew once more.
            Err(Fatal::Revoked(m)) => {
                self.renew_after_lost_answer(m).await?;
                self.report_facts(&facts).await?
            }
            other => other?,
        };
        let synced = match reached {
            Err(unreachable @ RemoteError::Unreachable(_)) => Err(unreachable),
            _ => {
                self.renew_if_due().await?;
                sync::sync(self.channel(), &self.cache).await
            }
        };
        let mut plan_error = None;
        let (plan, fetched, online, sync_error) = match synced {
            Ok((plan, fetched)) => (Some(plan), fetched, true, None),
            Err(RemoteError::Revoked(m)) => return Err(revoked(m)),
            Err(RemoteError::Unreachable(m)) => {
                tracing::warn!(error = %m, "converging the last good plan");
                let cached = self.cache.plan();
                let why = cached
                    .is_none()
                    .then(|| format!("no plan yet and the server is unreachable: {m}"));
                (cached, Fetched::default(), false, why)
            }
            // The server has no valid plan for this node: the last good one
            // still holds, and the report says why it is not the newest.
            Err(RemoteError::NoPlan(m)) => {
                tracing::warn!(error = %m, "plan error: converging the last good plan");
                let cached = self.cache.plan();
                let why = cached.is_none().then(|| m.clone());
                plan_error = Some(m);
                (cached, Fetched::default(), true, why)
            }
            // The server answered without a plan (a damaged blob, a version
            // it will not serve): the last good plan still holds; without
            // one nothing is touched.
            Err(e) => {
                tracing::warn!(error = %e, "no new plan from the server");
                let cached = self.cache.plan();
                let why = cached.is_none().then(|| e.to_string());
                (cached, Fetched::default(), true, why)
            }
        };
        let cause = match (&plan, self.cache.converged_hash()) {
            (Some(p), Some(done)) if p.hash == done => "drift_repair",
            _ => "new_plan",
        };
        let mut report = match (plan.clone(), sync_error) {
            (Some(plan), _) => self.converge(plan, facts, opts, stop, observe).await,
            (None, why) => failed_before_start(opts.why_run, why.unwrap_or_default()),
        };
        if let Some(m) = plan_error {
            report.set_plan_error(m);
        }
        if let Some(p) = &plan
            && !report.failed()
            && !opts.why_run
            && let Err(e) = self.cache.set_converged(&p.hash)
        {
            tracing::warn!(error = %e, "cannot record the converged plan");
        }
        let summary = self.summary(&report, plan.as_ref(), cause);
        if !opts.why_run {
            match self.queue.push(&summary) {
                Ok(()) if online => self.flush_reports().await?,
                Ok(()) => {}
                Err(e) => {
                    // Disk full: send this one straight away rather than lose it.
                    tracing::warn!(error = %e, "cannot queue the run report; sending it directly");
                    if online {
                        self.send_report(summary).await?;
                    }
                }
            }
        }
        Ok(Outcome {
            report,
            plan_hash: plan.as_ref().map(|p| p.hash.clone()),
            splay_seconds: plan.as_ref().map_or(0, |p| p.splay_seconds),
            online,
            fetched,
            cause,
        })
    }

    async fn send_report(&self, summary: RunSummary) -> Result<(), Fatal> {
        let mut request = tonic::Request::new(summary);
        request.set_timeout(Duration::from_secs(30));
        match AgentClient::new(self.channel()).report_run(request).await {
            Ok(_) => Ok(()),
            Err(s) => match RemoteError::from(s) {
                RemoteError::Revoked(m) => Err(revoked(m)),
                e => {
                    tracing::warn!(error = %e, "run report lost");
                    Ok(())
                }
            },
        }
    }

    /// Another process (`cm-agent run --once` beside the daemon) may have
    /// renewed the certificate: the newer identity on disk wins.
    pub fn adopt_newer_identity(&mut self) -> Result<bool, Fatal> {
        let Ok(Some(mut disk)) = Identity::load(&self.config.state_dir) else {
            return Ok(false);
        };
        if disk.cert_pem == self.identity.cert_pem || disk.issued_at < self.identity.issued_at {
            return Ok(false);
        }
        disk.server = self.identity.server.clone();
        self.channel = disk.channel().map_err(Fatal::Setup)?;
        self.identity = disk;
        tracing::info!("using the certificate renewed by another agent process");
        Ok(true)
    }

    /// Whether the server still takes this node's certificate (an
    /// unreachable server is given the benefit of the doubt).
    pub async fn still_accepted(&self) -> bool {
        let config = self.config.clone();
        let facts = tokio::task::spawn_blocking(move || gather_facts(&config))
            .await
            .unwrap_or_default();
        !matches!(revoked_on_server(&self.identity, &facts).await, Ok(true))
    }

    /// Send queued reports; an unreachable server keeps them for later.
    pub async fn flush_reports(&self) -> Result<(), Fatal> {
        match self.queue.flush(self.channel()).await {
            Ok(_) => Ok(()),
            Err(RemoteError::Revoked(m)) => Err(revoked(m)),
            Err(e) => {
                tracing::info!(error = %e, "run reports stay queued");
                Ok(())
            }
        }
    }

    async fn converge(
        &self,
        plan: Plan,
        facts: Facts,
        opts: &RunOptions,
        stop: &'static AtomicBool,
        mut observe: Box<dyn FnMut(&ResourceReport) + Send>,
    ) -> RunReport {
        let why_run = opts.why_run;
        let mode = Mode {
            why_run,
            full_diff: opts.full_diff,
        };
        let lock_file = opts.lock_file.clone();
        let lock_wait = opts.lock_wait;
        let state_dir = self.config.state_dir.clone();
        let backup_dir = self.config.backup_dir.clone();
        let work = move || {
            let _lock =
                match RunLock::acquire(&lock_file, lock_wait).map(RunLock::shared_with_commands) {
                    Ok(l) => l,
                    Err(e) => return failed_before_start(why_run, e),
                };
            converge_plan(
                &plan,
                &facts,
                &Cache::new(&state_dir),
                mode,
                &backup_dir,
                stop,
                &mut *observe,
            )
        };
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|e| failed_before_start(why_run, format!("the run panicked: {e}")))
    }

    fn summary(&self, report: &RunReport, plan: Option<&Plan>, cause: &str) -> RunSummary {
        let age = self
            .cache
            .checked_at()
            .map_or(0, |at| (now() - at).max(0) as u64);
        RunSummary {
            node: self.identity.name.clone(),
            at: report.started_at as i64,
            status: report.status.as_str().into(),
            resources_total: u32::try_from(report.resources_total).unwrap_or(u32::MAX),
            resources_changed: u32::try_from(report.resources_changed).unwrap_or(u32::MAX),
            resources_failed: u32::try_from(report.resources_failed).unwrap_or(u32::MAX),
            duration_ms: report.duration_ms,
            cause: cause.into(),
            plan_hash: plan.map(|p| p.hash.clone()).unwrap_or_default(),
            plan_age_seconds: age,
            report_json: serde_json::to_string(report).unwrap_or_default(),
            ..RunSummary::default()
        }
    }

    /// Try one renewal with a certificate the server refused; the refusal
    /// `m` stands if that fails too.
    async fn renew_after_lost_answer(&mut self, m: String) -> Result<(), Fatal> {
        match identity::renew(&self.identity, self.channel()).await {
            Ok(new) => {
                tracing::warn!("the last renewal's answer was lost; renewed again");
                self.adopt(new)
            }
            Err(_) => Err(Fatal::Revoked(m)),
        }
    }

    /// Use `new` from now on, and write it (or remember to).
    fn adopt(&mut self, new: Identity) -> Result<(), Fatal> {
        if let Err(e) = new.save(&self.config.state_dir) {
            tracing::error!(error = %e, "cannot write the renewed certificate; retrying next run");
            self.unsaved_identity = true;
        }
        self.channel = new.channel().map_err(Fatal::Setup)?;
        self.identity = new;
        Ok(())
    }

    async fn renew_if_due(&mut self) -> Result<(), Fatal> {
        if self.unsaved_identity && self.identity.save(&self.config.state_dir).is_ok() {
            self.unsaved_identity = false;
        }
        if !self.identity.renewal_due(now()) {
            return Ok(());
        }
        match identity::renew(&self.identity, self.channel()).await {
            Ok(new) => {
                // The old certificate is revoked now: keep using the new one
                // even if it cannot be written yet; the next run writes it.
                tracing::info!(expires = %cm_model::time::utc_and_relative(new.expires_at, now()), "certificate renewed");
                self.adopt(new)
            }
            Err(RemoteError::Revoked(m)) => Err(revoked(m)),
            Err(e) => {
                tracing::warn!(error = %e, "certificate renewal failed; retrying next run");
                Ok(())
            }
        }
    }

    /// Send the facts; the inner error says why they were not taken.
    async fn report_facts(&self, facts: &Facts) -> Result<Result<(), RemoteError>, Fatal> {
        let facts_json = serde_json::to_string(facts).unwrap_or_default();
        let mut request = tonic::Request::new(FactsRequest { facts_json });
        request.set_timeout(Duration::from_secs(30));
        match AgentClient::new(self.channel()).report_facts(request).await {
            Ok(_) => Ok(Ok(())),
            Err(s) => match RemoteError::from(s) {
                RemoteError::Revoked(m) => Err(revoked(m)),
                e => {
                    tracing::debug!(error = %e, "facts not reported");
                    Ok(Err(e))
                }
            },
        }
    }
}
