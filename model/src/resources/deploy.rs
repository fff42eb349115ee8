//! `deploy`: application code in releases, as Capistrano and Chef's `deploy`
//! did: one directory per source under `releases/`, shared directories
//! linked into each, and a `current` link switched atomically.
//!
//! A source is named so that it can never mean two things: a cookbook file,
//! a tarball URL with its sha256, or a git URL at a full commit id. A branch
//! or a tag moves, so it is refused: the same recipe must deploy the same
//! release on every node and every run.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{
    CookbookContent, CookbookRefs, FieldError, Spec, check_managed_path, cookbook_file,
    is_templated,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySpec {
    /// The deploy directory, absolute: `releases/`, `shared/` and `current` live in it.
    pub path: String,
    /// A tarball (`.tar`, `.tar.gz`) under the cookbook's `files/`.
    pub file: Option<String>,
    /// An http(s) URL of a tarball; needs `sha256`.
    pub url: Option<String>,
    /// The tarball's digest: the download is refused unless it matches.
    pub sha256: Option<String>,
    /// A git repository URL; needs `revision`.
    pub git: Option<String>,
    /// The full 40-hex commit id to deploy from `git`.
    pub revision: Option<String>,
    /// Directories under `shared/`, linked into every release at the same
    /// relative path (`logs`, `public/uploads`).
    #[serde(default)]
    pub shared: Vec<String>,
    /// Owner and group of the shared directories (never of a release).
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Releases to keep, the current one included.
    #[serde(default = "default_keep")]
    pub keep: u32,
    /// Seconds for a download or for each git command.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
}

fn default_keep() -> u32 {
    5
}

fn default_timeout() -> u64 {
    600
}

crate::actions! {
    /// What a `deploy` may be told to do.
    pub enum DeployAction {
        Deploy = "deploy",
        Rollback = "rollback",
        Nothing = "nothing",
    }
}

/// Where a release comes from, as the spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceRef<'a> {
    File(&'a str),
    Url { url: &'a str, sha256: &'a str },
    Git { url: &'a str, revision: &'a str },
}

/// The URL schemes git may fetch from (never `ext::`, which runs commands).
const GIT_SCHEMES: &[&str] = &["https", "http", "ssh", "git", "file"];

impl DeploySpec {
    /// The one source the spec names (after [`Spec::validate`]: exactly one).
    pub fn source(&self) -> Result<SourceRef<'_>, FieldError> {
        match (&self.file, &self.url, &self.git) {
            (Some(file), None, None) => Ok(SourceRef::File(file)),
            (None, Some(url), None) => {
                let sha256 = self.sha256.as_deref().ok_or_else(|| {
                    FieldError::new("sha256", "a url source needs sha256 (64 hex digits)")
                })?;
                Ok(SourceRef::Url { url, sha256 })
            }
            (None, None, Some(url)) => {
                let revision = self.revision.as_deref().ok_or_else(|| {
                    FieldError::new(
                        "revision",
                        "a git source needs revision: the full 40-hex commit id",
                    )
                })?;
                Ok(SourceRef::Git { url, revision })
            }
            (None, None, None) => Err(FieldError::new(
                "file",
                "give one source: file, url (with sha256) or git (with revision)",
            )),
            (Some(_), Some(_), _) => Err(one_source("url")),
            (_, _, Some(_)) => Err(one_source("git")),
        }
    }

    fn check_source(&self, refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        if self.sha256.is_some() && self.url.is_none() {
            return Err(FieldError::new("sha256", "sha256 goes with url"));
        }
        if self.revision.is_some() && self.git.is_none() {
            return Err(FieldError::new("revision", "revision goes with git"));
        }
        match self.source()? {
            SourceRef::File(name) => {
                if !is_templated(name) && !refs.has_file(name) {
                    return Err(FieldError::new(
                        "file",
                        format!("no file {name:?} in the cookbook's files/"),
                    ));
                }
            }
            SourceRef::Url { url, sha256 } => {
                if !is_templated(url)
                    && !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
                {
                    return Err(FieldError::new(
                        "url",
                        format!("{url:?} is not an http(s) URL"),
                    ));
                }
                if !is_templated(sha256)
                    && (sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()))
                {
                    return Err(FieldError::new("sha256", "expected 64 hex digits"));
                }
            }
            SourceRef::Git { url, revision } => {
                check_git_url(url)?;
                check_revision(revision)?;
            }
        }
        Ok(())
    }
}

fn one_source(field: &str) -> FieldError {
    FieldError::new(
        field,
        "give one source: file, url (with sha256) or git (with revision), not several",
    )
}

fn check_git_url(url: &str) -> Result<(), FieldError> {
    if is_templated(url) {
        return Ok(());
    }
    match url::Url::parse(url) {
        Ok(u) if GIT_SCHEMES.contains(&u.scheme()) => Ok(()),
        _ => Err(FieldError::new(
            "git",
            format!(
                "{url:?} is not a git URL with a scheme of {} (write host:path as ssh://host/path)",
                GIT_SCHEMES.join(", ")
            ),
        )),
    }
}

/// A full commit id: 40 lowercase hex digits. Anything else is refused with
/// what it looks like, since a name can move between two runs.
pub fn check_revision(revision: &str) -> Result<(), FieldError> {
    if is_templated(revision) {
        return Ok(());
    }
    let hex = !revision.is_empty() && revision.chars().all(|c| c.is_ascii_hexdigit());
    let lower = revision
        .chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase());
    let why = match (hex, revision.len(), lower) {
        (true, 40, true) => return Ok(()),
        (true, 40, false) => "write the commit id in lowercase".to_string(),
        (true, n, _) if n < 40 => format!(
            "{revision:?} is an abbreviated commit id ({n} digits): give all 40, as `git rev-parse` prints them"
        ),
        (true, n, _) => format!("{revision:?} has {n} hex digits: a commit id has 40"),
        _ => format!(
            "{revision:?} is not a commit id: a branch or tag name can move, so deploy the full 40-hex commit id it points to (`git rev-parse {revision}`)"
        ),
    };
    Err(FieldError::new("revision", why))
}

/// A shared name: a plain relative path (`logs`, `public/uploads`).
fn check_shared(names: &[String]) -> Result<(), FieldError> {
    let mut seen = BTreeSet::new();
    for name in names {
        if is_templated(name) {
            continue;
        }
        let plain = !name.contains(['\0', '\\', '\n'])
            && name.split('/').all(|part| !matches!(part, "" | "." | ".."));
        if !plain {
            return Err(FieldError::new(
                "shared",
                format!(
                    "{name:?} is not a plain relative path (like logs or public/uploads: no '..', '.', leading or trailing '/')"
                ),
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(FieldError::new(
                "shared",
                format!("{name:?} is listed twice"),
            ));
        }
    }
    // A shared directory inside another would be reached through the
    // application user's directory: refused.
    for a in &seen {
        for b in &seen {
            if a != b && Path::new(b).starts_with(a) {
                return Err(FieldError::new(
                    "shared",
                    format!("{b:?} is inside {a:?}: shared directories may not nest"),
                ));
            }
        }
    }
    Ok(())
}

impl Spec for DeploySpec {
    const TYPE: &'static str = "deploy";
    type Action = DeployAction;
    const DEFAULT_ACTIONS: &'static [DeployAction] = &[DeployAction::Deploy];
    const NAME_PROPERTY: &'static str = "path";

    fn validate(&self, refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        check_managed_path("path", &self.path)?;
        self.check_source(refs)?;
        check_shared(&self.shared)?;
        if self.keep == 0 {
            return Err(FieldError::new(
                "keep",
                "keep at least 1 release (the current one)",
            ));
        }
        if self.timeout == 0 {
            return Err(FieldError::new("timeout", "at least 1 second"));
        }
        Ok(())
    }

    /// A cookbook tarball is loaded at compile time, like a `file`'s
    /// source, so a missing one fails the run before anything is touched.
    fn content(&self, cookbook: &dyn CookbookContent) -> Result<Option<Vec<u8>>, FieldError> {
        match &self.file {
            Some(name) => cookbook_file(cookbook, "file", name).map(Some),
            None => Ok(None),
        }
    }
}
