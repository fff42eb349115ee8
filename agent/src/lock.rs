//! One run at a time: an exclusive `flock` on a lock file, released when the
//! process exits however it exits.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

/// Held while a run is in progress.
pub struct RunLock {
    _lock: Flock<File>,
    pub path: PathBuf,
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
                        _lock: lock,
                        path: path.to_path_buf(),
                    });
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    let holder = std::fs::read_to_string(path).unwrap_or_default();
                    return Err(format!(
                        "another cm-agent run (pid {}) holds {}; try again when it finishes",
                        holder.trim(),
                        path.display()
                    ));
                }
                Err((_, e)) => return Err(format!("cannot lock {}: {e}", path.display())),
            }
        }
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
}
