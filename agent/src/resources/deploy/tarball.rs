//! Unpacking a release: a tar archive, gzip-compressed or not (told by its
//! first bytes), into a fresh directory of the agent's, entry by entry
//! through directory handles.
//!
//! Refused, with the entry named: an absolute path or a `..` component; an
//! entry written through a link the archive made; a device file or a named
//! pipe; a hard link to anything but a regular file the archive already
//! holds; a name that appears twice; a symbolic link that leads out of the
//! release, even through the archive's other links ([`super::links`]).
//! Files keep their permission bits but not setuid, setgid or sticky, and
//! belong to the agent's user (root), whatever the archive says.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::links::{self, Leads};
use crate::safe_path::{Dir, Kind, SafePathError};

/// At most this many bytes unpacked: a release is an application, not a disk.
pub const MAX_UNPACKED_BYTES: u64 = 8 << 30;
/// At most this many entries.
pub const MAX_ENTRIES: u64 = 1_000_000;
/// Directories the archive implies without listing them.
const IMPLIED_DIR_MODE: u32 = 0o755;

/// Why an archive was not unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("reading the archive: {0} (a release is a .tar or .tar.gz)")]
    Read(#[source] std::io::Error),
    #[error("entry {entry:?} {why}")]
    Refused { entry: PathBuf, why: Refusal },
    #[error("the archive holds no entries")]
    Empty,
    #[error("the archive unpacks to more than {} GiB", MAX_UNPACKED_BYTES >> 30)]
    TooLarge,
    #[error("the archive holds more than {MAX_ENTRIES} entries")]
    TooMany,
    #[error("entry {entry:?}: {source}")]
    Write {
        entry: PathBuf,
        source: SafePathError,
    },
    #[error("entry {entry:?}: {source}")]
    WriteFile {
        entry: PathBuf,
        source: std::io::Error,
    },
}

/// What is wrong with an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("is an absolute path")]
    Absolute,
    #[error("holds a '..' component")]
    ParentDir,
    #[error("is a link to {0:?}, which leads out of the release")]
    LinkOut(PathBuf),
    #[error("is a link to {0:?}, which loops")]
    LinkLoop(PathBuf),
    #[error("would be written through the link {0:?}")]
    ThroughLink(PathBuf),
    #[error("is under {0:?}, which is no directory")]
    UnderAFile(PathBuf),
    #[error("is a {0}")]
    Special(&'static str),
    #[error("is a hard link to {0:?}, which is no regular file of the archive before it")]
    HardLink(PathBuf),
    #[error("appears twice")]
    Twice,
    #[error("is a link without a target")]
    NoTarget,
}

/// A symbolic link the archive made: its directory, name and target.
struct Made {
    at: Vec<OsString>,
    entry: PathBuf,
    target: PathBuf,
}

/// Unpack `input` into `root`, a directory the agent just made.
pub fn unpack(input: impl Read, root: &Dir) -> Result<(), ArchiveError> {
    let mut input = BufReader::new(input);
    let gzip = input
        .fill_buf()
        .map_err(ArchiveError::Read)?
        .starts_with(&[0x1f, 0x8b]);
    let made = if gzip {
        unpack_tar(MultiGzDecoder::new(input), root)?
    } else {
        unpack_tar(input, root)?
    };
    // Checked once every entry is there: a link may lead through later ones.
    for link in made {
        let refused = |why| ArchiveError::Refused {
            entry: link.entry.clone(),
            why,
        };
        let leads =
            links::leads(root, &link.at, &link.target).map_err(|source| ArchiveError::Write {
                entry: link.entry.clone(),
                source,
            })?;
        match leads {
            Leads::Inside => {}
            Leads::Out => return Err(refused(Refusal::LinkOut(link.target))),
            Leads::Loop => return Err(refused(Refusal::LinkLoop(link.target))),
        }
    }
    Ok(())
}

fn unpack_tar(input: impl Read, root: &Dir) -> Result<Vec<Made>, ArchiveError> {
    let mut archive = tar::Archive::new(input);
    let mut made = Vec::new();
    let (mut entries, mut bytes) = (0u64, 0u64);
    for entry in archive.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(ArchiveError::Read)?;
        let kind = entry.header().entry_type();
        // Extensions of the next entry's header, or the archive's (git
        // archive's commit id): read by the tar crate, nothing to unpack.
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        }
        entries += 1;
        if entries > MAX_ENTRIES {
            return Err(ArchiveError::TooMany);
        }
        let path = entry.path().map_err(ArchiveError::Read)?.into_owned();
        let refused = |why| ArchiveError::Refused {
            entry: path.clone(),
            why,
        };
        let written = |source| ArchiveError::Write {
            entry: path.clone(),
            source,
        };
        let mut parts = names(&path).map_err(refused)?;
        // `./`, the archive's top: the release directory itself.
        let Some(name) = parts.pop() else { continue };
        let sub = open_parents(root, &parts).map_err(|e| match e {
            Parent::Link(link) => refused(Refusal::ThroughLink(link)),
            Parent::File(file) => refused(Refusal::UnderAFile(file)),
            Parent::Path(source) => written(source),
        })?;
        let dir = sub.as_ref().unwrap_or(root);
        let mode = entry.header().mode().map_err(ArchiveError::Read)? & 0o777;
        let existing = dir.stat(&name).map_err(written)?;
        if kind.is_dir() {
            match existing {
                None => dir.make_new_dir(&name, mode).map_err(written)?,
                // Implied by an earlier entry: it gets its own mode now.
                Some(stat) if stat.kind == Kind::Directory => dir
                    .set_ownership(&name, &stat, None, None, Some(mode))
                    .map_err(written)?,
                Some(_) => return Err(refused(Refusal::Twice)),
            }
            continue;
        }
        if existing.is_some() {
            return Err(refused(Refusal::Twice));
        }
        if kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse() {
            let mut file = dir.create_new_file(&name).map_err(written)?;
            let room = MAX_UNPACKED_BYTES - bytes;
            let copied =
                std::io::copy(&mut (&mut entry).take(room + 1), &mut file).map_err(|source| {
                    ArchiveError::WriteFile {
                        entry: path.clone(),
                        source,
                    }
                })?;
            bytes += copied;
            if bytes > MAX_UNPACKED_BYTES {
                return Err(ArchiveError::TooLarge);
            }
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|source| ArchiveError::WriteFile {
                    entry: path.clone(),
                    source,
                })?;
        } else if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(ArchiveError::Read)?
                .ok_or_else(|| refused(Refusal::NoTarget))?
                .into_owned();
            dir.symlink_new(&target, &name).map_err(written)?;
            made.push(Made {
                at: parts,
                entry: path.clone(),
                target,
            });
        } else if kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(ArchiveError::Read)?
                .ok_or_else(|| refused(Refusal::NoTarget))?
                .into_owned();
            let Some((from, from_name)) = existing_file(root, &target) else {
                return Err(refused(Refusal::HardLink(target)));
            };
            dir.hard_link_new(from.as_ref().unwrap_or(root), &from_name, &name)
                .map_err(written)?;
        } else {
            return Err(refused(Refusal::Special(special(kind))));
        }
    }
    if entries == 0 {
        return Err(ArchiveError::Empty);
    }
    Ok(made)
}

/// The names of an entry's path, from the archive's top; `.` dropped.
fn names(path: &Path) -> Result<Vec<OsString>, Refusal> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => return Err(Refusal::ParentDir),
            Component::RootDir | Component::Prefix(_) => return Err(Refusal::Absolute),
        }
    }
    Ok(out)
}

/// Why an entry's directory could not be opened.
enum Parent {
    /// A component is a link: never written through.
    Link(PathBuf),
    File(PathBuf),
    Path(SafePathError),
}

/// Open (making what is missing) the directories `parts` below `root`,
/// never through a link; None for `root` itself.
fn open_parents(root: &Dir, parts: &[OsString]) -> Result<Option<Dir>, Parent> {
    let mut opened: Option<Dir> = None;
    let mut walked = PathBuf::new();
    for part in parts {
        walked.push(part);
        let here = opened.as_ref().unwrap_or(root);
        match here.stat(part).map_err(Parent::Path)? {
            None => here
                .make_new_dir(part, IMPLIED_DIR_MODE)
                .map_err(Parent::Path)?,
            Some(stat) if stat.kind == Kind::Directory => {}
            Some(stat) if stat.kind == Kind::Symlink => return Err(Parent::Link(walked)),
            Some(_) => return Err(Parent::File(walked)),
        }
        opened = Some(here.open_subdir(part).map_err(Parent::Path)?);
    }
    Ok(opened)
}

/// A regular file the archive already unpacked at `target` (a path from
/// the archive's top), reached without following a link: its directory
/// (None for `root`) and name.
fn existing_file(root: &Dir, target: &Path) -> Option<(Option<Dir>, OsString)> {
    let mut parts = names(target).ok()?;
    let name = parts.pop()?;
    let mut opened: Option<Dir> = None;
    for part in &parts {
        opened = Some(opened.as_ref().unwrap_or(root).open_subdir(part).ok()?);
    }
    let stat = opened.as_ref().unwrap_or(root).stat(&name).ok()??;
    (stat.kind == Kind::File).then_some((opened, name))
}

fn special(kind: tar::EntryType) -> &'static str {
    if kind.is_character_special() {
        "character device"
    } else if kind.is_block_special() {
        "block device"
    } else if kind.is_fifo() {
        "named pipe"
    } else {
        "kind of entry a release cannot hold"
    }
}
