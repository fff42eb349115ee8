//! The cm-agent under measurement: one node's settings, state dir, backup
//! dir and lock file in a directory of the bench's temp dir, `run --once`
//! timed from process start to exit, and `cm-agent daemon` with its info
//! log in a file that the bench polls. It does not judge what the agent
//! did; [`crate::agent`] checks the answers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// One node: `dir/agent.yaml`, `dir/state`, `dir/backup`, `dir/lock`.
pub struct AgentNode {
    binary: PathBuf,
    dir: PathBuf,
    pub name: String,
}

/// A finished `cm-agent run --once --format json`.
pub struct RunOnce {
    pub wall: Duration,
    pub json: serde_json::Value,
}

impl AgentNode {
    /// A fresh node named `name` in `dir` (emptied first), enrolling with
    /// `token` at the server given by `settings` (server, ca_fingerprint).
    pub fn fresh(
        binary: &Path,
        dir: &Path,
        name: &str,
        settings: &str,
        token: &str,
    ) -> Result<AgentNode> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // As an image's user-data writes it: no cloud to ask, splay 0, and
        // an interval long enough that only the watch stream wakes the daemon.
        let text = format!(
            "{settings}token: {token}\nname: {name}\ncloud: none\ninterval: 1h\nsplay: 0\n\
             state_dir: {}\nbackup_dir: {}\n",
            dir.join("state").display(),
            dir.join("backup").display(),
        );
        let config = dir.join("agent.yaml");
        std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        Ok(AgentNode {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            name: name.to_string(),
        })
    }

    /// `cm-agent ARGS --config ...` with this node's lock file and no
    /// inherited log settings.
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.binary);
        c.args(args)
            .arg("--config")
            .arg(self.dir.join("agent.yaml"))
            .env("CM_LOCK_FILE", self.dir.join("lock"))
            .env("NO_COLOR", "1")
            .env_remove("CM_LOG")
            .env_remove("CM_LOG_FORMAT")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// `cm-agent run --once --format json`, timed from spawn to exit.
    /// A failed run is an error: the bench measures successful runs only.
    pub async fn run_once(&self) -> Result<RunOnce> {
        let started = Instant::now();
        let out = self
            .command(&["run", "--once", "--format", "json"])
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), out)
            .await
            .context("cm-agent run --once took longer than 2 minutes")?
            .with_context(|| format!("running {}", self.binary.display()))?;
        let wall = started.elapsed();
        if !out.status.success() {
            bail!(
                "cm-agent run --once for {} failed ({}): {}{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let json = serde_json::from_slice(&out.stdout).with_context(|| {
            format!("cm-agent's JSON: {}", String::from_utf8_lossy(&out.stdout))
        })?;
        Ok(RunOnce { wall, json })
    }

    /// `cm-agent daemon` with `CM_LOG=info` on stderr, into `daemon.log`.
    pub fn spawn_daemon(&self) -> Result<Daemon> {
        let log = self.dir.join("daemon.log");
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = self
            .command(&["daemon"])
            .env("CM_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {} daemon", self.binary.display()))?;
        Ok(Daemon { child, log })
    }
}

/// A running `cm-agent daemon` (killed if dropped unstopped).
pub struct Daemon {
    child: tokio::process::Child,
    log: PathBuf,
}

/// What /proc/PID/status says about a process's memory, in KiB.
#[derive(Debug, Default)]
pub struct Memory {
    pub vm_rss: u64,
    pub rss_anon: u64,
    pub rss_file: u64,
    pub vm_hwm: u64,
    pub threads: u64,
}

impl Memory {
    /// Of process `pid` now (`self`: this process).
    pub fn of(pid: &str) -> Result<Memory> {
        let path = format!("/proc/{pid}/status");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let mut m = Memory::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let number = value
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok());
            let slot = match key {
                "VmRSS" => &mut m.vm_rss,
                "RssAnon" => &mut m.rss_anon,
                "RssFile" => &mut m.rss_file,
                "VmHWM" => &mut m.vm_hwm,
                "Threads" => &mut m.threads,
                _ => continue,
            };
            *slot = number.with_context(|| format!("{path}: {line:?} is not a number"))?;
        }
        if m.vm_rss == 0 || m.threads == 0 {
            bail!("{path} has no VmRSS or Threads:\n{text}");
        }
        Ok(m)
    }
}

/// Bytes this process's allocator holds allocated now (glibc's
/// `mallinfo2`: small blocks in use plus large mapped ones): the live heap,
/// apart from what RSS keeps of memory freed since.
pub fn heap_in_use() -> u64 {
    // SAFETY: mallinfo2 takes no argument and returns a plain struct by
    // value; glibc locks its arenas while it counts.
    #[allow(unsafe_code)]
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as u64
}

impl Daemon {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Poll the log every `poll` until `count` lines satisfy `matches`;
    /// returns when that was seen. Fails after `timeout` or if the daemon
    /// exits, with the log.
    pub async fn wait_for(
        &mut self,
        what: &str,
        matches: impl Fn(&str) -> bool,
        count: usize,
        poll: Duration,
        timeout: Duration,
    ) -> Result<Instant> {
        let started = Instant::now();
        loop {
            let text = self.log_text();
            if text.lines().filter(|l| matches(l)).count() >= count {
                return Ok(Instant::now());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the daemon exited ({status}) waiting for {what}:\n{text}");
            }
            if started.elapsed() > timeout {
                bail!("no {what} (#{count}) within {timeout:?}; the daemon's log:\n{text}");
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// VmRSS, RssAnon, RssFile, VmHWM and Threads of the daemon now.
    pub fn memory(&self) -> Result<Memory> {
        let pid = self.child.id().context("the daemon has exited")?;
        Memory::of(&pid.to_string())
    }

    /// SIGTERM, then the exit status: a clean stop is part of a right answer.
    pub async fn stop(mut self) -> Result<()> {
        let pid = self.child.id().context("the daemon has exited")?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).context("a process id")?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .context("sending SIGTERM to the daemon")?;
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("the daemon did not stop within 30 s of SIGTERM")??;
        if !status.success() {
            bail!(
                "the daemon stopped with {status} after SIGTERM:\n{}",
                self.log_text()
            );
        }
        Ok(())
    }
}
