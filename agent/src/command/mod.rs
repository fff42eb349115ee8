//! Running external commands: always with a timeout, output captured, and
//! the whole process group killed when time is up or when the agent itself
//! dies (through a [watcher](watcher) process), so nothing hangs a run and
//! a killed agent leaves no orphan.
//!
//! apt and dpkg are the exception to the second rule: killed half-way they
//! leave dpkg interrupted, so they run without a watcher and are left to
//! finish; the next run waits for the dpkg lock, and repairs an interrupted
//! dpkg before its first package action (`resources::dpkg`).

use std::collections::BTreeMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

mod output;
mod watcher;

pub use watcher::KILL_GRACE;

/// After the command exits, how long its pipes may stay open. A daemon started
/// by an init script can inherit them and hold them for its whole life.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// Programs left to finish when the agent dies (by file name, wherever they
/// are): killing them half-way leaves dpkg interrupted.
pub const LEFT_TO_FINISH: &[&str] = &["apt-get", "apt", "aptitude", "dpkg"];

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// It could not be started: not found, not executable, no fork.
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The agent lost track of it (waiting failed); its group was killed.
    #[error("cannot wait for {program}: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// Still running at its timeout: its group was killed.
    #[error("killed after its {}s timeout{}", .timeout.as_secs(), with_tail(.tail))]
    TimedOut { timeout: Duration, tail: String },
    /// Ended by a signal it did not get from the agent.
    #[error("killed by signal {signal}{}", with_tail(.tail))]
    Killed { signal: i32, tail: String },
    /// Exited with a status its caller does not accept.
    #[error("exit {code}{}", with_tail(.tail))]
    Exited { code: i32, tail: String },
}

impl CommandError {
    /// How it ended without its output: "exit 2", "killed after its 10s
    /// timeout", for a report that may not show what the command printed.
    pub fn status(&self) -> String {
        match self {
            CommandError::TimedOut { timeout, .. } => {
                format!("killed after its {}s timeout", timeout.as_secs())
            }
            CommandError::Killed { signal, .. } => format!("killed by signal {signal}"),
            CommandError::Exited { code, .. } => format!("exit {code}"),
            CommandError::Spawn { .. } | CommandError::Wait { .. } => self.to_string(),
        }
    }
}

fn with_tail(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    /// Run as this uid/gid (set by the caller after looking the user up).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub timeout: Duration,
}

/// How it ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Exit code, or None when killed by a signal.
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    /// The timeout it ran under, for messages.
    pub timeout: Duration,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// The last lines of stderr (or stdout), for an error message.
    pub fn tail(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = text.trim_end().lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// How it ended, as an error: "exit 2: <tail>", "killed after its 10s
    /// timeout". For callers that accept other codes than 0; others use [`Finished::ok`].
    pub fn error(&self) -> CommandError {
        let tail = self.tail();
        match (self.timed_out, self.code, self.signal) {
            (true, _, _) => CommandError::TimedOut {
                timeout: self.timeout,
                tail,
            },
            (false, Some(code), _) => CommandError::Exited { code, tail },
            (false, None, signal) => CommandError::Killed {
                signal: signal.unwrap_or_default(),
                tail,
            },
        }
    }

    /// Itself when it exited 0, else how it ended.
    pub fn ok(self) -> Result<Finished, CommandError> {
        if self.success() {
            Ok(self)
        } else {
            Err(self.error())
        }
    }
}

impl Cmd {
    pub fn new(program: &str, args: &[&str]) -> Cmd {
        Cmd {
            program: program.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            cwd: None,
            env: BTreeMap::new(),
            uid: None,
            gid: None,
            timeout: Duration::from_secs(600),
        }
    }

    /// `/bin/sh -c SCRIPT`.
    pub fn shell(script: &str) -> Cmd {
        Cmd::new("/bin/sh", &["-c", script])
    }

    pub fn timeout(mut self, t: Duration) -> Cmd {
        self.timeout = t;
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Cmd {
        self.env.insert(k.to_string(), v.to_string());
        self
    }

    /// apt and dpkg: left to finish if the agent dies ([`LEFT_TO_FINISH`]).
    pub fn left_to_finish(&self) -> bool {
        Path::new(&self.program)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| LEFT_TO_FINISH.contains(&n))
    }

    /// Run to completion or timeout. Errors only when it cannot be started
    /// or waited for; how it ended is in [`Finished`].
    pub fn run(&self) -> Result<Finished, CommandError> {
        let spawn_error = |source| CommandError::Spawn {
            program: self.program.clone(),
            source,
        };
        let mut c = Command::new(&self.program);
        c.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .envs(&self.env)
            // Its own process group, so a timeout kills the children of a shell too.
            .process_group(0);
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        if let Some(g) = self.gid {
            c.gid(g);
        }
        if let Some(u) = self.uid {
            c.uid(u);
        }
        let watcher = if self.left_to_finish() {
            None
        } else {
            let w = take_watcher().map_err(spawn_error)?;
            announce_pid_before_exec(&mut c, w.pipe_fd());
            Some(w)
        };
        let mut child = match c.spawn() {
            Ok(child) => child,
            Err(e) => {
                // It may or may not have announced a pid: this watcher is
                // told the command is over and retired, never reused.
                if let Some(w) = watcher {
                    w.command_done();
                }
                return Err(spawn_error(e));
            }
        };
        let out = output::drain(child.stdout.take());
        let err = output::drain(child.stderr.take());
        let kill_group = |pid: u32| {
            let pgid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        };
        // Waited for on a thread of its own, so its end is seen at once
        // rather than at the next poll.
        let pid = child.id();
        let (done, ended) = mpsc::channel();
        thread::spawn(move || {
            let _ = done.send(child.wait());
        });
        let lost = || Err(std::io::Error::other("the waiting thread died"));
        let waited = match ended.recv_timeout(self.timeout) {
            Ok(r) => r.map(|s| (s, false)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                kill_group(pid);
                ended.recv().unwrap_or_else(|_| lost()).map(|s| (s, true))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => lost().map(|s| (s, false)),
        };
        if waited.is_err() {
            kill_group(pid);
        }
        // The command is over: its watcher stops watching it and waits idle
        // for the run's next command (retired instead if anything went wrong).
        if let Some(w) = watcher
            && w.command_done()
            && waited.is_ok()
        {
            put_back_watcher(w);
        }
        let (status, timed_out) = waited.map_err(|source| CommandError::Wait {
            program: self.program.clone(),
            source,
        })?;
        let pipes_until = Instant::now() + PIPE_GRACE;
        Ok(Finished {
            code: status.code(),
            signal: status.signal(),
            stdout: out.finish(pipes_until),
            stderr: err.finish(pipes_until),
            timed_out,
            timeout: self.timeout,
        })
    }
}

/// The idle watcher of the current run lock, if any (see [`watcher`]).
static IDLE_WATCHER: Mutex<Option<watcher::Watcher>> = Mutex::new(None);

/// A watcher for the next command: the idle one when it keeps the current
/// run lock, else a new one.
fn take_watcher() -> std::io::Result<watcher::Watcher> {
    let (lock, generation) = crate::lock::shared();
    let idle = IDLE_WATCHER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(mut w) = idle
        && w.generation == generation
        && w.alive()
    {
        return Ok(w);
    }
    // One of an earlier run lock, or a dead one, was retired (dropped) above.
    watcher::Watcher::start(lock, generation)
}

/// Keep `w` for the next command of the run, unless the run lock changed
/// meanwhile, or another command's watcher is already kept (commands ran
/// at once). Outside a run no watcher is kept: none lingers between runs.
fn put_back_watcher(w: watcher::Watcher) {
    let (lock, generation) = crate::lock::shared();
    let mut idle = IDLE_WATCHER.lock().unwrap_or_else(|p| p.into_inner());
    if idle.is_none() && lock.is_some() && w.generation == generation {
        *idle = Some(w);
    } else {
        drop(idle);
        drop(w);
    }
}

/// The run is over: its idle watcher, which keeps the run lock, goes.
pub(crate) fn retire_idle_watcher() {
    let idle = IDLE_WATCHER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    drop(idle);
}

/// The command writes its pid to its watcher between fork and exec.
#[allow(unsafe_code)] // listed in docs/decisions.md, "Where `unsafe` is allowed"
fn announce_pid_before_exec(c: &mut std::process::Command, pipe: std::os::fd::RawFd) {
    // SAFETY: `announce` makes only async-signal-safe calls.
    unsafe {
        c.pre_exec(move || {
            watcher::announce(pipe);
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests;
