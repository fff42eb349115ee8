//! Building a tree inside a directory the agent made (a release being
//! unpacked): new entries only, each made relative to its directory's
//! handle, never replacing or following what is there; then moving the
//! finished tree into place and dating it.

use std::ffi::OsStr;
use std::fs::File;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{Mode, UtimensatFlags, fstatat, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{linkat, symlinkat, syncfs};

use super::{Dir, SafePathError};

impl Dir {
    /// Create the regular file `name`, which must not exist (`O_EXCL`, never
    /// through a link), open for writing and readable by its owner only
    /// until the caller sets its mode.
    pub fn create_new_file(&self, name: &OsStr) -> Result<File, SafePathError> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        openat(&self.fd, name, flags, Mode::from_bits_truncate(0o600))
            .map(File::from)
            .map_err(|e| SafePathError::io("creating", self.child_path(name), e))
    }

    /// Create directory `name`, which must not exist, with exactly `bits`,
    /// without waiting for the disk: a tree made of many is synced once,
    /// with [`Dir::sync_filesystem`], before it is moved into place.
    pub fn make_new_dir(&self, name: &OsStr, bits: u32) -> Result<(), SafePathError> {
        let here = self.child_path(name);
        match super::walk::make_dir(&self.fd, name, bits, &here)? {
            true => Ok(()),
            false => Err(SafePathError::io("creating directory", here, Errno::EEXIST)),
        }
    }

    /// Write everything of this directory's filesystem to disk (syncfs(2)):
    /// one call for a whole tree rather than one fsync per file.
    pub fn sync_filesystem(&self) -> Result<(), SafePathError> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = openat(&self.fd, ".", flags, Mode::empty())
            .map_err(|e| SafePathError::io("opening", &self.path, e))?;
        syncfs(&fd).map_err(|e| SafePathError::io("syncing", &self.path, e))
    }

    /// Open the regular file `name` for reading, never through a link.
    pub fn open_read(&self, name: &OsStr) -> Result<File, SafePathError> {
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        openat(&self.fd, name, flags, Mode::empty())
            .map(File::from)
            .map_err(|e| SafePathError::io("opening", self.child_path(name), e))
    }

    /// Make `name`, which must not exist, a symbolic link to `target`.
    pub fn symlink_new(&self, target: &Path, name: &OsStr) -> Result<(), SafePathError> {
        symlinkat(target, &self.fd, name)
            .map_err(|e| SafePathError::io("linking", self.child_path(name), e))
    }

    /// Make `name`, which must not exist, a hard link to `from_name` in
    /// `from` (a link there is linked itself, never followed).
    pub fn hard_link_new(
        &self,
        from: &Dir,
        from_name: &OsStr,
        name: &OsStr,
    ) -> Result<(), SafePathError> {
        linkat(&from.fd, from_name, &self.fd, name, AtFlags::empty())
            .map_err(|e| SafePathError::io("linking", self.child_path(name), e))
    }

    /// Rename `name` to `to_name` in `to`, as rename(2) does (atomically;
    /// a directory replaces only an empty one).
    pub fn rename(&self, name: &OsStr, to: &Dir, to_name: &OsStr) -> Result<(), SafePathError> {
        renameat(&self.fd, name, &to.fd, to_name)
            .map_err(|e| SafePathError::io("renaming", self.child_path(name), e))?;
        to.sync()
    }

    /// Set the modification time of `name` (a link itself, not what it
    /// points to) to `nanos` since the epoch; its access time to now.
    pub fn set_modified(&self, name: &OsStr, nanos: i128) -> Result<(), SafePathError> {
        let here = self.child_path(name);
        let secs = nanos.div_euclid(1_000_000_000);
        let mtime = TimeSpec::new(
            i64::try_from(secs).map_err(|_| SafePathError::io("dating", &here, Errno::EINVAL))?,
            i64::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or_default(),
        );
        utimensat(
            &self.fd,
            name,
            &TimeSpec::UTIME_NOW,
            &mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| SafePathError::io("dating", here, e))
    }

    /// The modification time of `name` (not following a link), in
    /// nanoseconds since the epoch.
    pub fn modified(&self, name: &OsStr) -> Result<i128, SafePathError> {
        let st = fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| SafePathError::io("examining", self.child_path(name), e))?;
        Ok(i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec))
    }
}
