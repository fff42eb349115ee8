//! Making a release: fetched, unpacked into `releases/.<id>.tmp-<random>`,
//! its links checked, the shared directories linked in, synced, and only
//! then renamed to `releases/<id>`. A failure at any step removes the
//! unfinished directory, so a release exists whole or not at all, and
//! `current` is never pointed at a half one.

use std::borrow::Cow;
use std::time::Duration;

use super::layout::{DIR_MODE, Layout, unfinished_name};
use super::tarball::{self, ArchiveError};
use super::{DeployError, Source, git, shared};
use crate::resources::download::download;
use crate::safe_path::Dir;

/// A source, ready to unpack.
enum Fetched<'a> {
    Archive(Cow<'a, [u8]>),
    Git { url: &'a str, revision: &'a str },
}

/// Downloaded first: a refused download leaves nothing behind at all.
fn fetch(source: &Source, timeout: Duration) -> Result<Fetched<'_>, DeployError> {
    Ok(match source {
        Source::Tarball { bytes, .. } => Fetched::Archive(Cow::Borrowed(bytes)),
        Source::Url { url, sha256 } => {
            Fetched::Archive(Cow::Owned(download(url, sha256, timeout)?))
        }
        Source::Git { url, revision } => Fetched::Git { url, revision },
    })
}

/// Make release `id` from `source`, with the shared directories `names` linked in.
pub fn make(
    layout: &Layout,
    source: &Source,
    id: &str,
    names: &[String],
    timeout: Duration,
) -> Result<(), DeployError> {
    let fetched = fetch(source, timeout)?;
    let tmp = unfinished_name(id, "tmp");
    layout.releases.make_dir(&tmp, DIR_MODE)?;
    let made = (|| {
        let release = layout.releases.open_subdir(&tmp)?;
        let archive = |error: ArchiveError| DeployError::Archive {
            id: id.to_string(),
            from: source.to_string(),
            error,
        };
        match &fetched {
            Fetched::Archive(bytes) => tarball::unpack(&bytes[..], &release).map_err(archive)?,
            Fetched::Git { url, revision } => {
                from_git(layout, &release, url, revision, id, timeout, archive)?
            }
        }
        for name in names {
            shared::link(&release, id, name)?;
        }
        // One sync for the whole tree before it becomes a release.
        release.sync_filesystem()?;
        layout
            .releases
            .rename(&tmp, &layout.releases, id.as_ref())?;
        Ok(())
    })();
    if made.is_err() {
        let _ = layout.releases.remove_tree(&tmp);
    }
    made
}

/// Unpack `revision` of `url` into `release`, through a scratch repository
/// beside it that is removed however it ends.
fn from_git(
    layout: &Layout,
    release: &Dir,
    url: &str,
    revision: &str,
    id: &str,
    timeout: Duration,
    archive: impl Fn(ArchiveError) -> DeployError,
) -> Result<(), DeployError> {
    let scratch_name = unfinished_name(id, "git");
    layout.releases.make_dir(&scratch_name, DIR_MODE)?;
    let unpacked = (|| {
        let scratch = layout.releases.open_subdir(&scratch_name)?;
        let tar = git::archive(url, revision, &scratch, timeout)?;
        tarball::unpack(tar, release).map_err(archive)
    })();
    let _ = layout.releases.remove_tree(&scratch_name);
    unpacked
}
