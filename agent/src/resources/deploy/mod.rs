//! `deploy` provider: application code in releases, as Capistrano and
//! Chef's `deploy` did.
//!
//! ```text
//! /srv/app/releases/<id>/     one per source, root's, made whole or not at all
//! /srv/app/shared/<name>/     the application user's, linked into each release
//! /srv/app/current -> releases/<id>
//! ```
//!
//! A release is named by its source: the first 16 hex digits of the
//! tarball's sha256, or the git revision. So the same source is no change,
//! and why-run knows which release it would switch to without fetching
//! anything. `deploy` makes the source's release if it is not kept already
//! ([`release`]), switches `current` to it atomically (a new link renamed
//! over the old) and deletes the oldest releases beyond `keep`. `rollback`
//! points `current` at the newest kept release other than the source's, and
//! changes nothing once it points at another kept release. Releases are
//! ordered by their directory's modification time, which the agent sets
//! when `deploy` switches to one.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use cm_model::manifest::sha256_hex;
use cm_model::resources::deploy::{DeployAction, DeploySpec, SourceRef};
use cm_model::resources::{FieldError, Ownership};

use super::{Cx, Outcome, Provider, ProviderError};
use crate::engine::CompiledResource;
use crate::fsutil::Wanted;

mod error;
mod git;
mod layout;
mod links;
mod release;
mod shared;
mod tarball;

pub use error::DeployError;
pub use tarball::{ArchiveError, Refusal};

use layout::{Current, Found, Release, current_target};

pub struct Deploy {
    path: PathBuf,
    source: Source,
    /// The release the source makes: its name under `releases/`.
    id: String,
    shared: Vec<String>,
    ownership: Ownership,
    keep: usize,
    timeout: Duration,
}

/// Where a release comes from.
pub enum Source {
    /// A cookbook file, loaded when the run compiled.
    Tarball {
        name: String,
        bytes: Vec<u8>,
    },
    Url {
        url: String,
        sha256: String,
    },
    Git {
        url: String,
        revision: String,
    },
}

impl Source {
    /// The release this source makes.
    fn release_id(&self) -> String {
        let digest = match self {
            Source::Tarball { bytes, .. } => sha256_hex(bytes),
            Source::Url { sha256, .. } => sha256.to_ascii_lowercase(),
            Source::Git { revision, .. } => return revision.clone(),
        };
        digest.chars().take(layout::DIGEST_ID_LEN).collect()
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Tarball { name, .. } => write!(f, "cookbook file {name}"),
            Source::Url { url, .. } => f.write_str(url),
            Source::Git { url, .. } => f.write_str(url),
        }
    }
}

/// `current switched to release X (from Y)`.
fn switched(id: &str, from: &Current) -> String {
    match from {
        Current::Missing => format!("current switched to release {id}"),
        Current::Release(old) => format!("current switched to release {id} (from {old})"),
        Current::Elsewhere(target) => format!(
            "current switched to release {id} (was -> {})",
            target.display()
        ),
    }
}

/// Now, in nanoseconds since the epoch, or just after `newest` if the
/// clock says otherwise (a coarse or stepped-back clock): the release
/// switched to must be the newest.
fn newer_than(newest: Option<i128>) -> i128 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
    match newest {
        Some(newest) if newest >= now => newest + 1,
        _ => now,
    }
}

/// The releases to delete so that `keep` remain, `id` (current after the
/// run) first among them whatever its age; `releases` are newest first.
fn beyond_keep<'a>(releases: &'a [Release], id: &str, keep: usize) -> Vec<&'a str> {
    releases
        .iter()
        .filter(|r| r.id != id)
        .skip(keep.saturating_sub(1))
        .map(|r| r.id.as_str())
        .collect()
}

impl Deploy {
    fn deploy(&self, cx: &Cx) -> Result<Outcome, DeployError> {
        let mut out = Outcome::unchanged();
        let wanted = match Wanted::resolve(&self.ownership) {
            Ok(w) => w,
            // In why-run the user may be one an earlier resource creates.
            Err(e) if cx.why_run => {
                out.changes.push(format!("{e} yet"));
                Wanted::default()
            }
            Err(e) => return Err(e.into()),
        };
        let found = Found::look(&self.path)?;
        out.changes.extend(found.missing(&self.path));
        for name in &self.shared {
            let now = match &found.shared {
                Some(dir) => shared::look(dir, name)?,
                None => None,
            };
            out.changes
                .extend(shared::changes(name, now.as_ref(), &wanted));
        }
        let (releases, unfinished) = match &found.releases {
            Some(dir) => layout::releases(dir)?,
            None => Default::default(),
        };
        let kept = releases.iter().any(|r| r.id == self.id);
        let mut unlinked = Vec::new();
        match (&found.releases, kept) {
            (Some(dir), true) => {
                let release = dir.open_subdir(self.id.as_ref())?;
                for name in &self.shared {
                    if !shared::is_linked(&release, name)? {
                        out.changes
                            .push(format!("release {}: shared {name} linked", self.id));
                        unlinked.push(name);
                    }
                }
            }
            _ => out
                .changes
                .push(format!("release {} created from {}", self.id, self.source)),
        }
        let now = match &found.root {
            Some(root) => layout::current(root)?,
            None => Current::Missing,
        };
        let switch = now != Current::Release(self.id.clone());
        if switch {
            out.changes.push(switched(&self.id, &now));
        }
        let beyond = beyond_keep(&releases, &self.id, self.keep);
        out.changes.extend(
            beyond
                .iter()
                .map(|id| format!("release {id} deleted (keep {})", self.keep)),
        );
        if cx.why_run || !out.is_changed() {
            return Ok(out);
        }

        let layout = found.ensure(&self.path)?;
        for name in unfinished {
            layout.releases.remove_tree(&name)?;
        }
        for name in &self.shared {
            shared::ensure(&layout.shared, name, &wanted)?;
        }
        if kept {
            let release = layout.releases.open_subdir(self.id.as_ref())?;
            for name in unlinked {
                shared::link(&release, &self.id, name)?;
            }
        } else {
            release::make(&layout, &self.source, &self.id, &self.shared, self.timeout)?;
        }
        if switch {
            // Newest now: the order rollback and `keep` go by.
            let newest = releases.iter().map(|r| r.modified).max();
            layout
                .releases
                .set_modified(self.id.as_ref(), newer_than(newest))?;
            layout
                .root
                .symlink(&current_target(&self.id), layout::CURRENT.as_ref())?;
        }
        for id in beyond {
            layout.releases.remove_tree(id.as_ref())?;
        }
        Ok(out)
    }

    fn rollback(&self, cx: &Cx) -> Result<Outcome, DeployError> {
        let found = Found::look(&self.path)?;
        let nothing = || DeployError::NothingToRollBack {
            path: self.path.clone(),
            id: self.id.clone(),
        };
        let (Some(root), Some(dir)) = (&found.root, &found.releases) else {
            return Err(nothing());
        };
        let (releases, _) = layout::releases(dir)?;
        let now = layout::current(root)?;
        if let Current::Release(id) = &now
            && *id != self.id
            && releases.iter().any(|r| r.id == *id)
        {
            return Ok(Outcome::unchanged());
        }
        let to = releases
            .iter()
            .find(|r| r.id != self.id)
            .ok_or_else(nothing)?;
        let out = Outcome::changed(format!("{}: rollback", switched(&to.id, &now)));
        if !cx.why_run {
            root.symlink(&current_target(&to.id), layout::CURRENT.as_ref())?;
        }
        Ok(out)
    }
}

impl Provider for Deploy {
    type Spec = DeploySpec;

    fn build(spec: DeploySpec, r: &CompiledResource) -> Result<Self, FieldError> {
        let source = match spec.source()? {
            SourceRef::File(name) => Source::Tarball {
                name: name.to_string(),
                bytes: r
                    .content
                    .clone()
                    .ok_or_else(|| FieldError::new("file", "the cookbook file was not loaded"))?,
            },
            SourceRef::Url { url, sha256 } => Source::Url {
                url: url.to_string(),
                sha256: sha256.to_string(),
            },
            SourceRef::Git { url, revision } => Source::Git {
                url: url.to_string(),
                revision: revision.to_string(),
            },
        };
        Ok(Deploy {
            path: spec.path.clone().into(),
            id: source.release_id(),
            source,
            ownership: Ownership {
                owner: spec.owner.clone(),
                group: spec.group.clone(),
                mode: None,
            },
            shared: spec.shared,
            keep: usize::try_from(spec.keep.max(1)).unwrap_or(usize::MAX),
            timeout: Duration::from_secs(spec.timeout),
        })
    }

    fn converge(&mut self, action: DeployAction, cx: &mut Cx) -> Result<Outcome, ProviderError> {
        Ok(match action {
            DeployAction::Deploy => self.deploy(cx)?,
            DeployAction::Rollback => self.rollback(cx)?,
            DeployAction::Nothing => Outcome::unchanged(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(id: &str, modified: i128) -> Release {
        Release {
            id: id.into(),
            modified,
        }
    }

    #[test]
    fn keep_counts_the_release_deployed_first_and_deletes_the_oldest_others() {
        let newest_first = [release("c", 3), release("b", 2), release("a", 1)];
        assert_eq!(beyond_keep(&newest_first, "c", 2), ["a"]);
        assert_eq!(beyond_keep(&newest_first, "c", 5), Vec::<&str>::new());
        // An older release switched to again counts first.
        assert_eq!(beyond_keep(&newest_first, "a", 2), ["b"]);
        assert_eq!(beyond_keep(&newest_first, "new", 1), ["c", "b", "a"]);
    }

    #[test]
    fn a_release_is_named_by_its_digest_or_its_revision() {
        let tarball = Source::Tarball {
            name: "app.tar.gz".into(),
            bytes: b"x".to_vec(),
        };
        assert_eq!(tarball.release_id(), sha256_hex(b"x")[..16]);
        let url = Source::Url {
            url: "https://e.com/app.tgz".into(),
            sha256: sha256_hex(b"x").to_uppercase(),
        };
        assert_eq!(
            url.release_id(),
            tarball.release_id(),
            "same bytes, same release"
        );
        let revision = "224e73f8182a8cb60f1e1d915022ef4f15da4317";
        let git = Source::Git {
            url: "file:///srv/git/app.git".into(),
            revision: revision.into(),
        };
        assert_eq!(git.release_id(), revision);
    }
}
