//! An interrupted dpkg, repaired before the first package action of a run.
//!
//! dpkg killed half-way (a power cut, an agent killed by hand in an older
//! release, an OOM kill) leaves its journal in `/var/lib/dpkg/updates/`, and
//! apt-get then refuses every install until someone runs `dpkg --configure
//! -a`. The package provider does that itself, once per run, and the run
//! says so. It looks the way apt-get does (a journal entry is a file named
//! by digits only), and repairs holding dpkg's frontend lock as apt-get
//! does, so a dpkg still at work (an apt-get a killed run left to finish,
//! unattended-upgrades) is waited for, not mistaken for an interrupted one.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, fcntl};
use nix::libc;

use crate::command::{Cmd, CommandError};

/// dpkg's database.
pub const ADMIN_DIR: &str = "/var/lib/dpkg";
/// The lock apt-get and dpkg take before anything else.
const FRONTEND_LOCK: &str = "lock-frontend";
/// `dpkg --configure -a` may run every maintainer script left: as long as an install.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(1800);

/// What the run reports on the package resource that repaired dpkg.
pub const REPAIRED: &str = "dpkg --configure -a (dpkg was interrupted)";

/// Why dpkg could not be repaired.
#[derive(Debug, thiserror::Error)]
pub enum DpkgError {
    #[error("cannot open dpkg's lock {path}: {source}")]
    OpenLock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error(
        "dpkg's lock {path} is still held after {}s (the resource's lock_timeout): \
         another apt-get or dpkg is running", .waited.as_secs()
    )]
    LockTimeout { path: PathBuf, waited: Duration },
    #[error("dpkg was interrupted, and `dpkg --configure -a` failed: {0}")]
    Repair(#[source] CommandError),
}

/// Was dpkg interrupted? As apt-get decides it: its journal (`updates/`
/// under `admin_dir`) holds an entry, a file named by digits only.
pub fn interrupted(admin_dir: &Path) -> bool {
    std::fs::read_dir(admin_dir.join("updates"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
        })
}

/// dpkg's frontend lock, held until dropped: an open file description
/// lock, which conflicts with the POSIX locks apt-get and dpkg take.
pub struct FrontendLock {
    _file: File,
}

impl FrontendLock {
    /// Take the lock `admin_dir`/lock-frontend, waiting up to `wait`.
    pub fn acquire(admin_dir: &Path, wait: Duration) -> Result<FrontendLock, DpkgError> {
        let path = admin_dir.join(FRONTEND_LOCK);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| DpkgError::OpenLock {
                path: path.clone(),
                source,
            })?;
        let whole_file = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        let start = Instant::now();
        loop {
            match fcntl(&file, FcntlArg::F_OFD_SETLK(&whole_file)) {
                Ok(_) => return Ok(FrontendLock { _file: file }),
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES)
                    if start.elapsed() < wait =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => {
                    return Err(DpkgError::LockTimeout { path, waited: wait });
                }
                Err(source) => return Err(DpkgError::Lock { path, source }),
            }
        }
    }
}

/// If dpkg was interrupted, run `dpkg --configure -a` under its frontend
/// lock (waiting up to `lock_wait` for it). True when it repaired dpkg.
pub fn repair_if_interrupted(lock_wait: Duration) -> Result<bool, DpkgError> {
    let admin = Path::new(ADMIN_DIR);
    if !interrupted(admin) {
        return Ok(false);
    }
    let _lock = FrontendLock::acquire(admin, lock_wait)?;
    // A dpkg at work when we looked may have finished meanwhile.
    if !interrupted(admin) {
        return Ok(false);
    }
    Cmd::new(
        "dpkg",
        &["--force-confdef", "--force-confold", "--configure", "-a"],
    )
    // We hold the frontend lock: dpkg takes only its own database lock.
    .env("DPKG_FRONTEND_LOCKED", "1")
    .env("DEBIAN_FRONTEND", "noninteractive")
    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    .timeout(REPAIR_TIMEOUT)
    .run()
    .and_then(|f| f.ok())
    .map_err(DpkgError::Repair)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_journal_entry_named_by_digits_means_interrupted() {
        let admin = tempfile::tempdir().unwrap();
        assert!(!interrupted(admin.path()), "no updates/ at all");
        let updates = admin.path().join("updates");
        std::fs::create_dir(&updates).unwrap();
        std::fs::write(updates.join("tmp.i"), "").unwrap();
        assert!(
            !interrupted(admin.path()),
            "dpkg's scratch file is no entry"
        );
        std::fs::write(updates.join("0003"), "Package: x\n").unwrap();
        assert!(interrupted(admin.path()));
    }

    #[test]
    fn frontend_lock_waits_for_its_holder_then_says_who_to_blame() {
        let admin = tempfile::tempdir().unwrap();
        let held = FrontendLock::acquire(admin.path(), Duration::ZERO).unwrap();
        let e = FrontendLock::acquire(admin.path(), Duration::from_millis(300))
            .err()
            .unwrap();
        assert!(matches!(e, DpkgError::LockTimeout { .. }), "{e:?}");
        assert!(e.to_string().contains("another apt-get or dpkg"), "{e}");
        drop(held);
        assert!(FrontendLock::acquire(admin.path(), Duration::ZERO).is_ok());
    }
}
