//! What `/metrics` shows Prometheus (docs/operations.md, "Metrics"): the
//! counters and histograms the server records as it works, then what is
//! counted at scrape time (the fleet from one grouped query, the open watch
//! streams, the process from /proc). Every family has HELP and TYPE, names
//! end in their base unit, and `promtool check metrics` passes (tested).

use std::fmt::Write;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::state::State;

pub const RPC_REQUESTS: &str = "cm_rpc_requests_total";
pub const RPC_DURATION: &str = "cm_rpc_duration_seconds";
pub const RUNS: &str = "cm_runs_total";
pub const ENROLLMENTS: &str = "cm_enrollments_total";
pub const WATCH_STREAMS: &str = "cm_watch_streams";
pub const PASS_DURATION: &str = "cm_background_pass_duration_seconds";
pub const PLANS_CHANGED: &str = "cm_plans_changed_total";
pub const STORE_ERRORS: &str = "cm_store_errors_total";
pub const BLOB_ERRORS: &str = "cm_blob_errors_total";

/// The Prometheus recorder, installed once per process; later calls get
/// the same handle.
pub fn handle() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            let handle = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .expect("static, non-empty buckets")
                .install_recorder()
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle());
            describe();
            // Runs counted from zero, so that "no run reported" is a value
            // an alert can see, not a missing series.
            for status in ["success", "warning", "failed"] {
                for cause in ["new_plan", "drift_repair"] {
                    metrics::counter!(RUNS, "status" => status, "cause" => cause).increment(0);
                }
            }
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        RPC_REQUESTS,
        "gRPC calls answered, by method and status code."
    );
    describe_histogram!(
        RPC_DURATION,
        Unit::Seconds,
        "Time from a gRPC call to its answer's headers (for a stream: its start), by method."
    );
    describe_counter!(
        RUNS,
        "Agent runs reported, by status (success, warning, failed) and cause."
    );
    describe_counter!(
        ENROLLMENTS,
        "Enrollments answered, by outcome (accepted, refused)."
    );
    describe_gauge!(WATCH_STREAMS, "Watch streams open on this server.");
    describe_histogram!(
        PASS_DURATION,
        Unit::Seconds,
        "Duration of the background pass that recomputes changed plans."
    );
    describe_counter!(
        PLANS_CHANGED,
        "Node plans the background pass found changed."
    );
    describe_counter!(
        STORE_ERRORS,
        "Calls that failed because the database failed or did not answer in time."
    );
    describe_counter!(
        BLOB_ERRORS,
        "Calls that failed because the blob store failed."
    );
    describe_counter!(
        "cm_enrollments_refused_total",
        "Enrollments refused, by reason."
    );
    describe_counter!(
        "cm_enrollments_refused_unaudited_total",
        "Enrollment refusals not written to the audit log (too many at once)."
    );
    describe_counter!(
        "cm_connections_refused_total",
        "Connections refused before TLS, by answer (too many open, server closing)."
    );
    describe_counter!(
        "cm_blobs_collected_total",
        "Unreferenced blobs deleted by garbage collection."
    );
    describe_counter!("cm_runs_pruned_total", "Run reports deleted for their age.");
}

/// The whole `/metrics` page.
pub async fn render(state: &State) -> String {
    let mut page = handle().render();
    fleet(state, &mut page).await;
    process(&mut page);
    page
}

/// `cm_nodes` and `cm_plans`, counted in the store at scrape time.
async fn fleet(state: &State, out: &mut String) {
    let census = match state.store.census().await {
        Ok(c) => c,
        Err(e) => {
            metrics::counter!(STORE_ERRORS).increment(1);
            tracing::warn!(error = %e, "metrics: cannot count the nodes");
            return;
        }
    };
    let _ = writeln!(
        out,
        "# HELP cm_nodes Nodes known to the server, by environment and state.\n# TYPE cm_nodes gauge"
    );
    let mut by_state = std::collections::BTreeMap::<(&str, &str), i64>::new();
    let mut by_plan = std::collections::BTreeMap::<(&str, &str), i64>::new();
    for c in &census {
        *by_state.entry((&c.environment, &c.state)).or_default() += c.nodes;
        if matches!(c.state.as_str(), "active" | "unreachable") {
            // `none`: not resolved yet (a node enrolled a moment ago).
            *by_plan.entry((&c.environment, c.plan)).or_default() += c.nodes;
        }
    }
    for ((env, node_state), n) in by_state {
        let _ = writeln!(
            out,
            "cm_nodes{{environment=\"{}\",state=\"{node_state}\"}} {n}",
            label(env)
        );
    }
    let _ = writeln!(
        out,
        "# HELP cm_plans Plans of member nodes (active or unreachable), by environment and state: ok, error when the server has no valid plan, none before the first resolution.\n# TYPE cm_plans gauge"
    );
    for ((env, plan), n) in by_plan {
        let _ = writeln!(
            out,
            "cm_plans{{environment=\"{}\",state=\"{plan}\"}} {n}",
            label(env)
        );
    }
}

/// A label value as the text format wants it: `\`, `"` and line breaks escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The process metrics Prometheus' client libraries export, from /proc.
fn process(out: &mut String) {
    let Some(p) = ProcessFigures::read() else {
        return;
    };
    let mut families: Vec<(&str, &str, &str, f64)> = vec![
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            p.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            p.resident_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            p.virtual_bytes,
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            p.open_fds,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            p.start_time_seconds,
        ),
    ];
    // Unlimited has no number.
    if let Some(max) = p.max_fds {
        families.push((
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max,
        ));
    }
    for (name, kind, help, value) in families {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}

#[derive(Debug)]
struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    open_fds: f64,
    max_fds: Option<f64>,
    start_time_seconds: f64,
}

impl ProcessFigures {
    fn read() -> Option<ProcessFigures> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which may hold spaces: state is
        // field 3, utime 14, stime 15, starttime 22, vsize 23, rss 24.
        let after = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()? as f64;
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()? as f64;
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()?
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3)?.parse::<f64>().ok());
        Some(ProcessFigures {
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
            start_time_seconds: boot_time + field(22)? / ticks,
            open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as f64,
            max_fds,
        })
    }
}

/// Counts a watch stream open while it lives.
pub struct WatchStreamOpen(());

impl WatchStreamOpen {
    pub fn new() -> WatchStreamOpen {
        metrics::gauge!(WATCH_STREAMS).increment(1.0);
        WatchStreamOpen(())
    }
}

impl Default for WatchStreamOpen {
    fn default() -> Self {
        WatchStreamOpen::new()
    }
}

impl Drop for WatchStreamOpen {
    fn drop(&mut self) {
        metrics::gauge!(WATCH_STREAMS).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_figures_are_read_from_proc() {
        let p = ProcessFigures::read().expect("Linux /proc");
        assert!(p.cpu_seconds >= 0.0);
        assert!(p.resident_bytes > 1e6, "{p:?}");
        assert!(p.virtual_bytes >= p.resident_bytes, "{p:?}");
        assert!(p.open_fds >= 3.0, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            (now - 3600.0..=now + 1.0).contains(&p.start_time_seconds),
            "started within the hour: {p:?} (now {now})"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
