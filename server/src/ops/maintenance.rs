//! The server's periodic housekeeping: blob garbage collection and run
//! report retention, once shortly after start and then every interval, as
//! one background task. Every replica runs it; both jobs are safe to run
//! concurrently with themselves and with pushes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use super::gc::{self, GcReport};
use crate::blobs::Blobs;
use crate::state::State;
use crate::store::{Store, unix_now};

/// When and how the housekeeping runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    /// Between two runs.
    pub interval: Duration,
    /// From start to the first run: long enough not to compete with the
    /// start-up rush of agents checking in.
    pub first_run_after: Duration,
    /// Unreferenced blobs younger than this are kept (a push in progress).
    pub blob_grace: Duration,
    /// Run reports older than this are deleted.
    pub keep_runs: Duration,
}

impl Default for Maintenance {
    fn default() -> Self {
        Maintenance {
            interval: Duration::from_secs(3600),
            first_run_after: Duration::from_secs(120),
            blob_grace: Duration::from_secs(3600),
            keep_runs: Duration::from_secs(30 * 86400),
        }
    }
}

/// What one run did; a job that failed has `None` (and logged why).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaintenanceReport {
    pub blobs: Option<GcReport>,
    pub runs_pruned: Option<u64>,
}

/// Delete run reports older than `keep`; returns how many.
pub async fn prune_runs(store: &Store, keep: Duration) -> Result<u64> {
    let keep = i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
    store
        .prune_runs(unix_now().saturating_sub(keep))
        .await
        .context("pruning run reports")
}

/// Run both jobs once. A failure of one does not stop the other.
pub async fn run_once(store: &Store, blobs: &Blobs, config: &Maintenance) -> MaintenanceReport {
    let blobs = match gc::collect_garbage(store, blobs, config.blob_grace).await {
        Ok(report) => {
            metrics::counter!("cm_blobs_collected_total").increment(report.deleted as u64);
            if report.deleted > 0 {
                tracing::info!(
                    deleted = report.deleted,
                    bytes = report.deleted_bytes,
                    kept = report.referenced + report.recent,
                    "collected unreferenced blobs"
                );
            }
            Some(report)
        }
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "blob garbage collection failed");
            None
        }
    };
    let runs_pruned = match prune_runs(store, config.keep_runs).await {
        Ok(n) => {
            metrics::counter!("cm_runs_pruned_total").increment(n);
            if n > 0 {
                tracing::info!(
                    pruned = n,
                    keep_days = config.keep_runs.as_secs() / 86400,
                    "pruned old run reports"
                );
            }
            Some(n)
        }
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "run report pruning failed");
            None
        }
    };
    MaintenanceReport { blobs, runs_pruned }
}

/// The background task; abort it to stop it.
pub fn spawn(state: Arc<State>, config: Maintenance) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now() + config.first_run_after;
        let period = config.interval.max(Duration::from_secs(1));
        let mut tick = tokio::time::interval_at(start, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            run_once(&state.store, &state.blobs, &config).await;
        }
    })
}
