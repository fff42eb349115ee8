//! Running external commands: always with a timeout, output captured, the
//! whole process group killed when time is up so nothing hangs a run.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// After the command exits, how long its pipes may stay open. A daemon started
/// by an init script can inherit them and hold them for its whole life.
const PIPE_GRACE: Duration = Duration::from_secs(2);

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
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
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

    /// "exit 2: <tail>" or "killed after 10s".
    pub fn describe(&self, timeout: Duration) -> String {
        let how = match (self.timed_out, self.code) {
            (true, _) => format!("killed after its {}s timeout", timeout.as_secs()),
            (false, Some(c)) => format!("exit {c}"),
            (false, None) => "killed by a signal".to_string(),
        };
        let tail = self.tail();
        if tail.is_empty() {
            how
        } else {
            format!("{how}: {tail}")
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

    /// Run to completion or timeout. Errors only when it cannot be started.
    pub fn run(&self) -> std::io::Result<Finished> {
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
        let mut child = c
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", self.program)))?;
        let out = drain(child.stdout.take());
        let err = drain(child.stderr.take());
        let start = Instant::now();
        let mut pause = Duration::from_micros(200);
        let (status, timed_out) = loop {
            if let Some(status) = child.try_wait()? {
                break (status, false);
            }
            if start.elapsed() >= self.timeout {
                let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                break (child.wait()?, true);
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        };
        let pipes_until = Instant::now() + PIPE_GRACE;
        Ok(Finished {
            code: status.code(),
            stdout: out.finish(pipes_until),
            stderr: err.finish(pipes_until),
            timed_out,
        })
    }
}

/// A pipe read on its own thread so a chatty child never blocks on a full pipe.
struct Drain {
    buf: Arc<Mutex<Vec<u8>>>,
    reader: thread::JoinHandle<()>,
}

/// Keep at most 1 MiB of output: enough for any error message.
const MAX_OUTPUT: usize = 1 << 20;

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Drain {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&buf);
    let reader = thread::spawn(move || {
        let Some(mut p) = pipe else { return };
        let mut chunk = [0u8; 8192];
        loop {
            match p.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut b = shared.lock().unwrap_or_else(|e| e.into_inner());
                    let room = MAX_OUTPUT.saturating_sub(b.len());
                    b.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
    });
    Drain { buf, reader }
}

impl Drain {
    /// What was read, waiting for the end of the pipe until `until` at most;
    /// a reader still blocked then is left behind rather than hang the run.
    fn finish(self, until: Instant) -> String {
        while !self.reader.is_finished() && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        let b = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&b).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_exit_code() {
        let f = Cmd::shell("echo out; echo err >&2; exit 3").run().unwrap();
        assert_eq!(
            (f.code, f.stdout.as_str(), f.stderr.as_str()),
            (Some(3), "out\n", "err\n")
        );
    }

    #[test]
    fn hanging_command_is_killed_at_its_timeout_with_its_children() {
        let f = Cmd::shell("sleep 30 & sleep 30; echo never")
            .timeout(Duration::from_millis(300))
            .run()
            .unwrap();
        assert!(f.timed_out);
        assert!(!f.stdout.contains("never"));
        assert!(f.describe(Duration::from_secs(1)).contains("timeout"));
    }

    #[test]
    fn background_child_holding_the_pipes_does_not_hang_the_run() {
        let start = Instant::now();
        let f = Cmd::shell("sleep 8 & echo started")
            .timeout(Duration::from_secs(20))
            .run()
            .unwrap();
        assert!(f.success() && !f.timed_out);
        assert_eq!(f.stdout, "started\n");
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn missing_program_is_an_error() {
        assert!(Cmd::new("/nonexistent/prog", &[]).run().is_err());
    }
}
