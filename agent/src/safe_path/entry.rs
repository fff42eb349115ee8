//! Reading, writing and removing the entries of a [`Dir`]: always relative to
//! the handle, never following a final symbolic link, writes atomic (a temp
//! file created `O_EXCL | O_NOFOLLOW`, owner and mode set on the descriptor,
//! fsync, `renameat`, directory fsync).

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat, renameat};
use nix::sys::stat::{Mode, fchmod, fstat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, fsync, linkat, symlinkat, unlinkat};

use super::walk::stat_at;
use super::{Dir, Kind, SafePathError, Stat};

/// What is at a name, looked at without following a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    Missing,
    /// A symbolic link: its target as written; what it points to is never read.
    Symlink {
        target: PathBuf,
        stat: Stat,
    },
    File {
        stat: Stat,
        content: Vec<u8>,
    },
}

/// Owner, group and permission bits for a file being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOwnership {
    /// None keeps the agent's.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: u32,
}

/// Whether a write waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    Synced,
    Unsynced,
}

/// How many temp names to try before giving up (each is random).
const TEMP_ATTEMPTS: usize = 8;

fn temp_name() -> OsString {
    OsString::from(format!(
        ".cm-{}-{:016x}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ))
}

fn mode(bits: u32) -> Mode {
    Mode::from_bits_truncate(bits as nix::libc::mode_t)
}

impl Dir {
    /// The entry's metadata, None when there is none.
    pub fn stat(&self, name: &OsStr) -> Result<Option<Stat>, SafePathError> {
        match stat_at(&self.fd, name) {
            Ok(s) => Ok(Some(s)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(SafePathError::io("examining", self.child_path(name), e)),
        }
    }

    /// A symbolic link's target, as written.
    pub fn read_link(&self, name: &OsStr) -> Result<PathBuf, SafePathError> {
        readlinkat(&self.fd, name)
            .map(PathBuf::from)
            .map_err(|e| SafePathError::io("reading link", self.child_path(name), e))
    }

    /// What is at `name`: nothing, a link (not followed) or a regular file and
    /// its content. Anything else (a directory, a device, a pipe) is an error.
    pub fn read_file(&self, name: &OsStr) -> Result<Existing, SafePathError> {
        let here = self.child_path(name);
        let Some(stat) = self.stat(name)? else {
            return Ok(Existing::Missing);
        };
        match stat.kind {
            Kind::Symlink => Ok(Existing::Symlink {
                target: self.read_link(name)?,
                stat,
            }),
            Kind::File => {
                let fd = self.open_existing(name, &stat)?;
                let mut content = Vec::new();
                std::fs::File::from(fd)
                    .read_to_end(&mut content)
                    .map_err(|e| SafePathError::from_io("reading", &here, e))?;
                Ok(Existing::File { stat, content })
            }
            Kind::Directory => Err(SafePathError::NotARegularFile {
                path: here,
                kind: "directory",
            }),
            Kind::Other(kind) => Err(SafePathError::NotARegularFile { path: here, kind }),
        }
    }

    /// Open the file or directory `stat` describes, refusing anything swapped in since.
    fn open_existing(&self, name: &OsStr, stat: &Stat) -> Result<OwnedFd, SafePathError> {
        let here = self.child_path(name);
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let fd = match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOENT) => return Err(SafePathError::Changed { path: here }),
            Err(e) => return Err(SafePathError::io("opening", here, e)),
        };
        let now = Stat::from(fstat(&fd).map_err(|e| SafePathError::io("examining", &here, e))?);
        if (now.kind, now.dev, now.ino) != (stat.kind, stat.dev, stat.ino) {
            return Err(SafePathError::Changed { path: here });
        }
        Ok(fd)
    }

    /// Put `content` at `name` atomically with `own`; whatever was there (a
    /// file or a link) is replaced, never written through. On failure the old
    /// entry is untouched and no temp file is left.
    pub fn write_file(
        &self,
        name: &OsStr,
        content: &[u8],
        own: FileOwnership,
    ) -> Result<(), SafePathError> {
        self.write(name, content, own, Durability::Synced)
    }

    /// [`Dir::write_file`] without the fsyncs, for copies whose loss in a
    /// crash costs nothing the node needs (backups).
    pub fn write_copy(
        &self,
        name: &OsStr,
        content: &[u8],
        own: FileOwnership,
    ) -> Result<(), SafePathError> {
        self.write(name, content, own, Durability::Unsynced)
    }

    fn write(
        &self,
        name: &OsStr,
        content: &[u8],
        own: FileOwnership,
        durability: Durability,
    ) -> Result<(), SafePathError> {
        let here = self.child_path(name);
        let (tmp, fd) = self.create_temp(&here)?;
        let mut file = std::fs::File::from(fd);
        let filled = (|| {
            file.write_all(content)
                .map_err(|e| SafePathError::from_io("writing", &here, e))?;
            if own.uid.is_some() || own.gid.is_some() {
                fchown(
                    &file,
                    own.uid.map(Uid::from_raw),
                    own.gid.map(Gid::from_raw),
                )
                .map_err(|e| SafePathError::io("setting the owner of", &here, e))?;
            }
            // After fchown, which clears setuid and setgid bits.
            fchmod(&file, mode(own.mode))
                .map_err(|e| SafePathError::io("setting the mode of", &here, e))?;
            if durability == Durability::Synced {
                fsync(&file).map_err(|e| SafePathError::io("syncing", &here, e))?;
            }
            renameat(&self.fd, tmp.as_os_str(), &self.fd, name)
                .map_err(|e| SafePathError::io("renaming into place", &here, e))
        })();
        if let Err(e) = filled {
            let _ = unlinkat(&self.fd, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        match durability {
            Durability::Synced => self.sync_later(),
            Durability::Unsynced => Ok(()),
        }
    }

    fn create_temp(&self, beside: &Path) -> Result<(OsString, OwnedFd), SafePathError> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        for _ in 0..TEMP_ATTEMPTS {
            let tmp = temp_name();
            match openat(&self.fd, tmp.as_os_str(), flags, mode(0o600)) {
                Ok(fd) => return Ok((tmp, fd)),
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(SafePathError::io("creating a temp file beside", beside, e)),
            }
        }
        Err(SafePathError::io(
            "creating a temp file beside",
            beside,
            Errno::EEXIST,
        ))
    }

    /// Set owner, group and mode of the existing file or directory `stat`
    /// describes, through a descriptor (never a link).
    pub fn set_ownership(
        &self,
        name: &OsStr,
        stat: &Stat,
        uid: Option<u32>,
        gid: Option<u32>,
        bits: Option<u32>,
    ) -> Result<(), SafePathError> {
        let here = self.child_path(name);
        let fd = self.open_existing(name, stat)?;
        if uid.is_some() || gid.is_some() {
            fchown(&fd, uid.map(Uid::from_raw), gid.map(Gid::from_raw))
                .map_err(|e| SafePathError::io("setting the owner of", &here, e))?;
        }
        if let Some(bits) = bits {
            fchmod(&fd, mode(bits))
                .map_err(|e| SafePathError::io("setting the mode of", &here, e))?;
        }
        Ok(())
    }

    /// Set the owner and group of a link itself.
    pub fn set_link_owner(
        &self,
        name: &OsStr,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<(), SafePathError> {
        fchownat(
            &self.fd,
            name,
            uid.map(Uid::from_raw),
            gid.map(Gid::from_raw),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| SafePathError::io("setting the owner of", self.child_path(name), e))
    }

    /// Make `name` a symbolic link to `target`, replacing whatever entry is
    /// there (a link is built beside it and renamed over: never a moment without one).
    pub fn symlink(&self, target: &Path, name: &OsStr) -> Result<(), SafePathError> {
        self.place(name, |tmp| symlinkat(target, &self.fd, tmp))
    }

    /// Make `name` a hard link to `from_name` in `from` (a link there is linked itself).
    pub fn hard_link(
        &self,
        from: &Dir,
        from_name: &OsStr,
        name: &OsStr,
    ) -> Result<(), SafePathError> {
        self.place(name, |tmp| {
            linkat(&from.fd, from_name, &self.fd, tmp, AtFlags::empty())
        })
    }

    fn place(
        &self,
        name: &OsStr,
        make: impl Fn(&OsStr) -> Result<(), Errno>,
    ) -> Result<(), SafePathError> {
        let here = self.child_path(name);
        for _ in 0..TEMP_ATTEMPTS {
            let tmp = temp_name();
            match make(&tmp) {
                Ok(()) => {
                    return match renameat(&self.fd, tmp.as_os_str(), &self.fd, name) {
                        Ok(()) => self.sync(),
                        Err(e) => {
                            let _ = unlinkat(&self.fd, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
                            Err(SafePathError::io("renaming into place", here, e))
                        }
                    };
                }
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(SafePathError::io("linking", here, e)),
            }
        }
        Err(SafePathError::io("linking", here, Errno::EEXIST))
    }

    /// Create directory `name` with exactly `bits` (whatever the umask).
    pub fn make_dir(&self, name: &OsStr, bits: u32) -> Result<(), SafePathError> {
        let here = self.child_path(name);
        match super::walk::make_dir(&self.fd, name, bits, &here)? {
            true => self.sync_later(),
            false => Err(SafePathError::io("creating directory", here, Errno::EEXIST)),
        }
    }

    /// Open the subdirectory `name` (never through a link).
    pub fn open_subdir(&self, name: &OsStr) -> Result<Dir, SafePathError> {
        let here = self.child_path(name);
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Dir { fd, path: here }),
            Err(Errno::ELOOP | Errno::ENOTDIR) => Err(SafePathError::NotADirectory { path: here }),
            Err(Errno::ENOENT) => Err(SafePathError::Missing { path: here }),
            Err(e) => Err(SafePathError::io("opening", here, e)),
        }
    }

    /// Remove the file or link `name` (a link itself, not what it points to).
    pub fn remove_file(&self, name: &OsStr) -> Result<(), SafePathError> {
        self.remove_copy(name)?;
        self.sync()
    }

    /// [`Dir::remove_file`] without the fsync (old backups).
    pub fn remove_copy(&self, name: &OsStr) -> Result<(), SafePathError> {
        unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir)
            .map_err(|e| SafePathError::io("deleting", self.child_path(name), e))
    }

    /// Remove the empty directory `name`.
    pub fn remove_dir(&self, name: &OsStr) -> Result<(), SafePathError> {
        unlinkat(&self.fd, name, UnlinkatFlags::RemoveDir)
            .map_err(|e| SafePathError::io("deleting", self.child_path(name), e))?;
        self.sync()
    }

    /// Remove `name` and, for a directory, everything in it; links inside are
    /// removed, never followed.
    pub fn remove_tree(&self, name: &OsStr) -> Result<(), SafePathError> {
        let Some(stat) = self.stat(name)? else {
            return Ok(());
        };
        if stat.kind != Kind::Directory {
            return unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir)
                .map_err(|e| SafePathError::io("deleting", self.child_path(name), e));
        }
        let sub = self.open_subdir(name)?;
        for child in sub.names()? {
            sub.remove_tree(&child)?;
        }
        self.remove_dir(name)
    }

    /// The names in this directory (without `.` and `..`).
    pub fn names(&self) -> Result<Vec<OsString>, SafePathError> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let mut listing = nix::dir::Dir::openat(&self.fd, ".", flags, Mode::empty())
            .map_err(|e| SafePathError::io("listing", &self.path, e))?;
        let mut names = Vec::new();
        for entry in listing.iter() {
            let entry = entry.map_err(|e| SafePathError::io("listing", &self.path, e))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name != "." && name != ".." {
                names.push(name.to_os_string());
            }
        }
        Ok(names)
    }

    /// fsync the directory, so a rename or unlink in it survives a crash.
    pub fn sync(&self) -> Result<(), SafePathError> {
        let fd = self.open_for_sync()?;
        fsync(&fd).map_err(|e| SafePathError::io("syncing", &self.path, e))
    }

    /// [`Dir::sync`] after a file replaced whole or a directory created:
    /// at the end of the converge when one is running (see
    /// [`super::DeferredSyncs`]), else now. Removals, links and renames of
    /// other entries (a deploy's `current`) sync at once.
    fn sync_later(&self) -> Result<(), SafePathError> {
        let fd = self.open_for_sync()?;
        match super::deferred::defer(fd, &self.path)? {
            Some(fd) => fsync(&fd).map_err(|e| SafePathError::io("syncing", &self.path, e)),
            None => Ok(()),
        }
    }

    fn open_for_sync(&self) -> Result<OwnedFd, SafePathError> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        openat(&self.fd, ".", flags, Mode::empty())
            .map_err(|e| SafePathError::io("opening", &self.path, e))
    }
}
