//! `apt_repository` provider: a repository as two files, both root-owned 0644
//! and written like any managed file:
//!
//! - `/etc/apt/keyrings/NAME.asc`: the ASCII-armored signing key, from `key`
//!   or the cookbook file `key_source` (loaded at compile time into the
//!   compiled resource's content);
//! - `/etc/apt/sources.list.d/NAME.sources`, one deb822 stanza that trusts
//!   only that key:
//!
//! ```text
//! # Managed by cm: apt_repository[NAME]. Local changes are overwritten.
//! Types: deb
//! URIs: URI...
//! Suites: SUITE...
//! Components: COMPONENT...        (only when components are given)
//! Architectures: ARCH...          (only when architectures are given)
//! Signed-By: /etc/apt/keyrings/NAME.asc
//! ```
//!
//! When either file changes (or is removed), the run's next package install
//! refreshes the package lists first (`cx.apt_sources_changed`); this
//! provider never runs apt-get itself.

use std::path::{Path, PathBuf};

use cm_model::resources::apt_repository::{AptRepositoryAction, AptRepositorySpec};
use cm_model::resources::{FieldError, Ownership};

use super::managed_file::ManagedFile;
use super::{Cx, Outcome, Provider, ProviderError};
use crate::engine::CompiledResource;
use crate::fsutil::FileError;
use crate::safe_path::{self, Missing};

pub const KEYRING_DIR: &str = "/etc/apt/keyrings";
pub const SOURCES_DIR: &str = "/etc/apt/sources.list.d";

pub struct AptRepository {
    key: Vec<u8>,
    sources: String,
    key_file: ManagedFile,
    sources_file: ManagedFile,
}

fn key_path(name: &str) -> PathBuf {
    PathBuf::from(KEYRING_DIR).join(format!("{name}.asc"))
}

/// The deb822 `.sources` file for the repository (format in the module doc).
pub fn render_sources(s: &AptRepositorySpec) -> String {
    let mut out = format!(
        "# Managed by cm: apt_repository[{}]. Local changes are overwritten.\nTypes: deb\n",
        s.repo_name
    );
    let fields = [
        ("URIs", &s.uris),
        ("Suites", &s.suites),
        ("Components", &s.components),
        ("Architectures", &s.architectures),
    ];
    for (field, values) in fields {
        if !values.is_empty() {
            out.push_str(&format!("{field}: {}\n", values.join(" ")));
        }
    }
    out.push_str(&format!(
        "Signed-By: {}\n",
        key_path(&s.repo_name).display()
    ));
    out
}

/// Merge one file's outcome into the repository's, its changes labelled.
fn merge(into: &mut Outcome, label: &str, part: Outcome) {
    into.changes
        .extend(part.changes.into_iter().map(|c| format!("{label}: {c}")));
    if let Some(d) = part.diff {
        into.diff = Some(match into.diff.take() {
            Some(prev) => format!("{prev}\n{d}"),
            None => d,
        });
    }
}

impl AptRepository {
    fn add(&self, cx: &Cx) -> Result<Outcome, FileError> {
        if !cx.why_run {
            // Debian 12 ships it; older systems may not have it yet.
            safe_path::open_dir(Path::new(KEYRING_DIR), Missing::Create(0o755))?;
        }
        let mut out = Outcome::unchanged();
        let key = self.key_file.create(Some(&self.key), false, cx)?;
        // An armored key's diff is base64 noise: name the change, show no lines.
        merge(&mut out, "key", Outcome { diff: None, ..key });
        let sources = self
            .sources_file
            .create(Some(self.sources.as_bytes()), false, cx)?;
        merge(&mut out, "sources", sources);
        Ok(out)
    }

    fn remove(&self, cx: &Cx) -> Result<Outcome, FileError> {
        let mut out = Outcome::unchanged();
        // The sources first: a source without its key breaks every apt-get update.
        merge(&mut out, "sources", self.sources_file.delete(cx)?);
        merge(&mut out, "key", self.key_file.delete(cx)?);
        Ok(out)
    }
}

impl Provider for AptRepository {
    type Spec = AptRepositorySpec;

    fn build(spec: AptRepositorySpec, r: &CompiledResource) -> Result<Self, FieldError> {
        let key = match (&spec.key, &r.content) {
            (Some(k), _) => k.as_bytes().to_vec(),
            (None, Some(bytes)) => bytes.clone(),
            (None, None) => {
                return Err(FieldError::new(
                    "key_source",
                    "the key file's content was not loaded with the resource",
                ));
            }
        };
        let file = |path: PathBuf| ManagedFile {
            path,
            ownership: Ownership {
                owner: Some("root".into()),
                group: Some("root".into()),
                mode: Some(0o644),
            },
            backup: 0,
            diff: None,
        };
        Ok(AptRepository {
            key,
            sources: render_sources(&spec),
            key_file: file(key_path(&spec.repo_name)),
            sources_file: file(
                PathBuf::from(SOURCES_DIR).join(format!("{}.sources", spec.repo_name)),
            ),
        })
    }

    fn converge(
        &mut self,
        action: AptRepositoryAction,
        cx: &mut Cx,
    ) -> Result<Outcome, ProviderError> {
        let out = match action {
            AptRepositoryAction::Add => self.add(cx)?,
            AptRepositoryAction::Remove => self.remove(cx)?,
            AptRepositoryAction::Nothing => Outcome::unchanged(),
        };
        if out.is_changed() {
            cx.apt_sources_changed = true;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_deb822_stanza_signed_by_its_own_key() {
        let spec: AptRepositorySpec = serde_json::from_value(serde_json::json!({
            "repo_name": "pgdg", "uris": ["https://apt.postgresql.org/pub/repos/apt"],
            "suites": ["bookworm-pgdg"], "components": ["main", "contrib"],
            "architectures": ["amd64"],
            "key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n..."
        }))
        .unwrap();
        assert_eq!(
            render_sources(&spec),
            "# Managed by cm: apt_repository[pgdg]. Local changes are overwritten.\n\
             Types: deb\n\
             URIs: https://apt.postgresql.org/pub/repos/apt\n\
             Suites: bookworm-pgdg\n\
             Components: main contrib\n\
             Architectures: amd64\n\
             Signed-By: /etc/apt/keyrings/pgdg.asc\n"
        );
    }

    #[test]
    fn leaves_out_empty_components_and_architectures() {
        let spec: AptRepositorySpec = serde_json::from_value(serde_json::json!({
            "repo_name": "flat", "uris": ["http://a.example/x", "http://b.example/x"],
            "suites": ["./"], "key": "k"
        }))
        .unwrap();
        let text = render_sources(&spec);
        assert!(
            text.contains("URIs: http://a.example/x http://b.example/x\nSuites: ./\nSigned-By")
        );
        assert!(!text.contains("Components") && !text.contains("Architectures"));
    }
}
