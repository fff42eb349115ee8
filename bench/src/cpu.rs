//! CPU time by thread group, read from /proc/self/task: the server's
//! runtime threads (and its database workers) on one side, the load
//! generator's on the other. On a two-core machine both share the cores,
//! so how many cores the server used is the figure that says what a
//! dedicated server could do.

use std::time::Duration;

/// Thread name prefix of the load generator's runtime.
pub const CLIENT_THREADS: &str = "cm-client";

/// CPU time consumed so far by the server's threads and by the clients'.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    pub server: Duration,
    pub clients: Duration,
}

impl CpuTimes {
    /// Now. Threads that already ended are not counted (the runtimes' worker
    /// threads live for the whole run). Zero where /proc is missing.
    pub fn now() -> CpuTimes {
        let mut t = CpuTimes::default();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return t;
        };
        for task in tasks.flatten() {
            let path = task.path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
                continue;
            };
            // Fields after the `(comm)`: state is 3rd, utime 14th, stime 15th.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks: u64 = [11, 12]
                .iter()
                .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
                .sum();
            let used = Duration::from_secs_f64(ticks as f64 / CLOCK_TICKS);
            // Everything that is not a client thread is the server's: its
            // runtime (`cm-server`), SQLite's worker threads (`sqlx-...`)
            // and the main thread, which only waits.
            if comm.starts_with(CLIENT_THREADS) {
                t.clients += used;
            } else {
                t.server += used;
            }
        }
        t
    }

    pub fn since(self, before: CpuTimes) -> CpuTimes {
        CpuTimes {
            server: self.server.saturating_sub(before.server),
            clients: self.clients.saturating_sub(before.clients),
        }
    }
}

/// `SC_CLK_TCK`: 100 on every Linux cm runs on.
const CLOCK_TICKS: f64 = 100.0;

/// The load generator's runtime: `threads` workers named [`CLIENT_THREADS`].
pub fn client_runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(CLIENT_THREADS)
        .enable_all()
        .build()
        .context("starting the load generator's runtime")
}
