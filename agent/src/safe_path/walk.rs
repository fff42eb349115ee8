//! The walk from `/` to a directory, one `openat` per component, and the rule
//! for the symbolic links met on the way.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{Mode, fchmod, fstat, fstatat, mkdirat};

use super::{Dir, Distrust, Kind, Missing, SafePathError, Stat};

/// As many links as the kernel follows in one lookup (`MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

fn dir_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn open_root() -> Result<OwnedFd, SafePathError> {
    nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SafePathError::io("opening", "/", e))
}

pub(super) fn stat_at(dir: impl AsFd, name: &OsStr) -> Result<Stat, Errno> {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map(Stat::from)
}

/// The names to walk, in order (`.` dropped, `..` kept for the kernel to resolve).
fn parts(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

pub(super) fn walk(path: &Path, missing: Missing) -> Result<Dir, SafePathError> {
    if !path.is_absolute() {
        return Err(SafePathError::NotAbsolute {
            path: path.to_path_buf(),
        });
    }
    let mut cur = open_root()?;
    let mut shown = PathBuf::from("/");
    let mut todo = parts(path);
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            cur = openat(&cur, "..", dir_flags(), Mode::empty())
                .map_err(|e| SafePathError::io("opening", shown.join(".."), e))?;
            shown.pop();
            continue;
        }
        let here = shown.join(&name);
        let stat = match stat_at(&cur, &name) {
            Ok(s) => s,
            Err(Errno::ENOENT) => match missing {
                Missing::Fail => return Err(SafePathError::Missing { path: here }),
                Missing::Create(mode) => {
                    if !make_dir(&cur, &name, mode, &here)? {
                        // Made by someone else meanwhile: look at it again, a bounded number of times.
                        links += 1;
                        if links > MAX_LINKS {
                            return Err(SafePathError::Changed { path: here });
                        }
                    }
                    todo.push_front(name);
                    continue;
                }
            },
            Err(e) => return Err(SafePathError::io("examining", here, e)),
        };
        match stat.kind {
            Kind::Directory => match openat(&cur, name.as_os_str(), dir_flags(), Mode::empty()) {
                Ok(fd)
                    if fstat(&fd)
                        .map(Stat::from)
                        .is_ok_and(|s| s.kind == Kind::Directory) =>
                {
                    cur = fd;
                    shown = here;
                }
                // Swapped for something else since the stat: look again.
                Ok(_) | Err(Errno::ELOOP | Errno::ENOTDIR | Errno::ENOENT) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(SafePathError::Changed { path: here });
                    }
                    todo.push_front(name);
                }
                Err(e) => return Err(SafePathError::io("opening", here, e)),
            },
            Kind::Symlink => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(SafePathError::TooManyLinks {
                        path: path.to_path_buf(),
                        limit: MAX_LINKS,
                    });
                }
                let holder = fstat(&cur).map_err(|e| SafePathError::io("examining", &shown, e))?;
                check_link(&stat, &Stat::from(holder)).map_err(|why| {
                    SafePathError::UntrustedLink {
                        link: here.clone(),
                        why,
                    }
                })?;
                let target = readlinkat(&cur, name.as_os_str())
                    .map_err(|e| SafePathError::io("reading link", &here, e))?;
                let target = Path::new(&target);
                if target.is_absolute() {
                    cur = open_root()?;
                    shown = PathBuf::from("/");
                }
                for part in parts(target).into_iter().rev() {
                    todo.push_front(part);
                }
            }
            Kind::File | Kind::Other(_) => return Err(SafePathError::NotADirectory { path: here }),
        }
    }
    Ok(Dir {
        fd: cur,
        path: shown,
    })
}

/// The rule: follow a link only if root owns it and only root may write the
/// directory holding it, so no other user could have planted or swapped it.
/// The agent's own user counts as root when it does not run as root.
pub(super) fn check_link(link: &Stat, holder: &Stat) -> Result<(), Distrust> {
    let trusted = |uid: u32| uid == 0 || uid == nix::unistd::geteuid().as_raw();
    if !trusted(link.uid) {
        return Err(Distrust::LinkOwner(link.uid));
    }
    if !trusted(holder.uid) {
        return Err(Distrust::DirectoryOwner(holder.uid));
    }
    if holder.mode & 0o002 != 0 {
        return Err(Distrust::DirectoryWorldWritable);
    }
    if holder.mode & 0o020 != 0 && holder.gid != 0 {
        return Err(Distrust::DirectoryGroupWritable(holder.gid));
    }
    Ok(())
}

/// Create one missing directory with exactly `mode` (the umask does not apply).
/// False when something appeared there meanwhile.
pub(super) fn make_dir(
    parent: &OwnedFd,
    name: &OsStr,
    mode: u32,
    here: &Path,
) -> Result<bool, SafePathError> {
    match mkdirat(parent, name, Mode::from_bits_truncate(0o700)) {
        Ok(()) => {}
        Err(Errno::EEXIST) => return Ok(false),
        Err(e) => return Err(SafePathError::io("creating directory", here, e)),
    }
    let fd = openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SafePathError::io("opening", here, e))?;
    fchmod(&fd, Mode::from_bits_truncate(mode as nix::libc::mode_t))
        .map_err(|e| SafePathError::io("setting the mode of", here, e))?;
    Ok(true)
}

impl From<nix::sys::stat::FileStat> for Stat {
    fn from(st: nix::sys::stat::FileStat) -> Stat {
        let kind = match st.st_mode & nix::libc::S_IFMT {
            nix::libc::S_IFREG => Kind::File,
            nix::libc::S_IFDIR => Kind::Directory,
            nix::libc::S_IFLNK => Kind::Symlink,
            nix::libc::S_IFIFO => Kind::Other("named pipe"),
            nix::libc::S_IFSOCK => Kind::Other("socket"),
            nix::libc::S_IFCHR => Kind::Other("character device"),
            nix::libc::S_IFBLK => Kind::Other("block device"),
            _ => Kind::Other("special file"),
        };
        Stat {
            kind,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
            size: u64::try_from(st.st_size).unwrap_or_default(),
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}
