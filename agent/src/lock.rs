//! One run at a time: an exclusive `flock` on a lock file, released when the
//! process exits however it exits, and by the watchers of its commands only
//! once those are gone (see [`RunLock::shared_with_commands`]).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

/// The descriptor of the run lock shared with command watchers (-1: none),
/// and a number that changes whenever it does, so that a watcher keeping
/// an earlier lock is never used for a command of a later run.
static SHARED_WITH_COMMANDS: Mutex<(RawFd, u64)> = Mutex::new((-1, 0));

/// The run lock a command's watcher keeps open, and its generation.
pub(crate) fn shared() -> (Option<RawFd>, u64) {
    let (fd, generation) = *SHARED_WITH_COMMANDS
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    ((fd >= 0).then_some(fd), generation)
}

/// The run lock's descriptor, for a command's watcher to keep open.
#[cfg(test)]
pub(crate) fn shared_fd() -> Option<RawFd> {
    shared().0
}

fn share(fd: RawFd) {
    let mut shared = SHARED_WITH_COMMANDS
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    *shared = (fd, shared.1 + 1);
}

/// Held while a run is in progress.
pub struct RunLock {
    lock: Flock<File>,
    pub path: PathBuf,
    shared: bool,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if self.shared {
            if shared().0 == Some(self.lock.as_raw_fd()) {
                share(-1);
            }
            // The idle watcher keeps this lock's descriptor: it goes now.
            crate::command::retire_idle_watcher();
        }
    }
}

/// The default lock file: /run for root, the user's runtime dir otherwise.
pub fn default_path() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        PathBuf::from("/run/cm-agent.lock")
    } else {
        let dir = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        dir.join(format!("cm-agent-{}.lock", nix::unistd::geteuid()))
    }
}

impl RunLock {
    /// Take the lock, waiting up to `wait`; the error says who holds it.
    pub fn acquire(path: &Path, wait: Duration) -> Result<RunLock, String> {
        let start = Instant::now();
        loop {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| format!("cannot open lock file {}: {e}", path.display()))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(mut lock) => {
                    let _ = lock.set_len(0);
                    let _ = writeln!(lock, "{}", std::process::id());
                    return Ok(RunLock {
                        lock,
                        path: path.to_path_buf(),
                        shared: false,
                    });
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    let holder = std::fs::read_to_string(path).unwrap_or_default();
                    return Err(held_by(holder.trim(), path));
                }
                Err((_, e)) => return Err(format!("cannot lock {}: {e}", path.display())),
            }
        }
    }

    /// Let the watchers of the commands run while this lock is held keep it:
    /// if this process dies mid-command, the next run waits until the
    /// watcher has stopped that command's process group. Only the run lock
    /// is shared, never the daemon lock (a restarted daemon must not wait).
    pub fn shared_with_commands(mut self) -> RunLock {
        share(self.lock.as_raw_fd());
        self.shared = true;
        self
    }
}

/// Who holds the lock: a live run, or the commands a killed run left behind.
fn held_by(pid: &str, path: &Path) -> String {
    let alive = pid
        .parse::<i32>()
        .is_ok_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok());
    if alive || pid.is_empty() {
        format!(
            "another cm-agent run (pid {pid}) holds {}; try again when it finishes",
            path.display()
        )
    } else {
        format!(
            "{} is held by the commands of a cm-agent run (pid {pid}) that was killed; \
             they are being stopped (SIGTERM, then SIGKILL after {}s): try again shortly",
            path.display(),
            crate::command::KILL_GRACE.as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let held = RunLock::acquire(&p, Duration::ZERO).unwrap();
        let err = RunLock::acquire(&p, Duration::from_millis(200))
            .err()
            .unwrap();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        assert!(RunLock::acquire(&p, Duration::ZERO).is_ok());
    }

    #[test]
    fn a_lock_kept_by_a_killed_runs_commands_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        // pid_max is at most 2^22: no process has this pid.
        let e = held_by("99999999", &p);
        assert!(e.contains("run (pid 99999999) that was killed"), "{e}");
        assert!(e.contains("SIGKILL after 5s"), "{e}");
        let mine = held_by(&std::process::id().to_string(), &p);
        assert!(mine.starts_with("another cm-agent run (pid "), "{mine}");
    }

    #[test]
    fn only_a_shared_run_lock_is_kept_by_command_watchers() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = RunLock::acquire(&dir.path().join("daemon"), Duration::ZERO).unwrap();
        assert_eq!(shared_fd(), None);
        let run = RunLock::acquire(&dir.path().join("run"), Duration::ZERO)
            .unwrap()
            .shared_with_commands();
        assert_eq!(shared_fd(), Some(run.lock.as_raw_fd()));
        drop(run);
        assert_eq!(shared_fd(), None);
        drop(daemon);
    }
}
