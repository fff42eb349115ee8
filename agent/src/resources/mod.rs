//! Providers: for each resource type, read the current state, compare it with
//! the compiled resource, and act only on the difference. One file per type,
//! registered in [`PROVIDERS`]; the specs they read live in cm-model.
//!
//! Providers never print. They return what changed (and a diff for files);
//! the engine reports. Why-run is the same code path with the apply step
//! skipped (`cx.why_run`), so it cannot drift from a real run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cm_model::resources::{FieldError, Spec, parse_spec};

use crate::engine::CompiledResource;

pub mod accounts;
pub mod apt_repository;
pub mod cron;
pub mod directory;
pub mod dpkg;
pub mod execute;
pub mod file;
pub mod group;
pub mod link;
pub mod managed_file;
pub mod package;
pub mod remote_file;
pub mod service;
pub mod template;
pub mod user;

/// What converging one action did (or, in why-run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Each difference in a few words; empty means the resource was in its desired state.
    pub changes: Vec<String>,
    /// Unified diff of file content, when content changed.
    pub diff: Option<String>,
}

impl Outcome {
    pub fn unchanged() -> Outcome {
        Outcome::default()
    }

    pub fn changed(what: impl Into<String>) -> Outcome {
        Outcome {
            changes: vec![what.into()],
            diff: None,
        }
    }

    pub fn is_changed(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// Converges one compiled resource.
pub trait Provider {
    /// Bring the resource to `action`: read state, compare, and unless
    /// `cx.why_run`, apply. Errors are messages for the report.
    fn converge(&mut self, action: &str, cx: &mut Cx) -> Result<Outcome, String>;

    /// A package this resource installs, so adjacent installs run as one apt-get.
    fn package_request(&self) -> Option<package::Request> {
        None
    }
}

/// How the node runs services; decided once per run (decisions.md, "How the
/// init system is detected").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    Systemd,
    Sysvinit,
    /// PID 1 is neither (a container): init scripts are run directly.
    Direct,
}

impl Init {
    pub fn detect() -> Init {
        if std::path::Path::new("/run/systemd/system").is_dir() {
            Init::Systemd
        } else if std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "init") {
            Init::Sysvinit
        } else {
            Init::Direct
        }
    }
}

/// State shared by the providers during one run.
pub struct Cx {
    pub why_run: bool,
    /// Where previous file contents are kept.
    pub backup_dir: PathBuf,
    pub init: Init,
    /// dpkg state of every package the run manages, read once.
    pub packages: package::Cache,
    /// Packages that may be installed together with the one being converged.
    pub batch: Vec<package::Request>,
    /// An apt source changed: the next install refreshes the package lists first.
    pub apt_sources_changed: bool,
    /// Names the run already installed (as part of a batch).
    pub installed_in_batch: BTreeSet<String>,
    /// Scratch space providers may use across resources, by key.
    pub notes: BTreeMap<String, String>,
    /// The first package resource looked whether dpkg was interrupted.
    pub dpkg_checked: bool,
}

impl Cx {
    pub fn new(why_run: bool, backup_dir: PathBuf) -> Cx {
        Cx {
            why_run,
            backup_dir,
            init: Init::detect(),
            packages: package::Cache::default(),
            batch: Vec::new(),
            apt_sources_changed: false,
            installed_in_batch: BTreeSet::new(),
            notes: BTreeMap::new(),
            dpkg_checked: false,
        }
    }
}

/// Builds a provider from a compiled resource (properties already rendered).
pub type Build = fn(&CompiledResource) -> Result<Box<dyn Provider>, FieldError>;

/// A registered provider.
pub struct ProviderType {
    pub name: &'static str,
    pub build: Build,
}

/// Every provider, one per resource type of cm-model.
pub static PROVIDERS: &[ProviderType] = &[
    file::PROVIDER,
    directory::PROVIDER,
    template::PROVIDER,
    link::PROVIDER,
    package::PROVIDER,
    service::PROVIDER,
    user::PROVIDER,
    group::PROVIDER,
    execute::PROVIDER,
    cron::PROVIDER,
    remote_file::PROVIDER,
    apt_repository::PROVIDER,
];

pub fn lookup(name: &str) -> Option<&'static ProviderType> {
    PROVIDERS.iter().find(|p| p.name == name)
}

/// Parse a compiled resource's properties into its spec.
pub fn spec_of<S: Spec>(r: &CompiledResource) -> Result<S, FieldError> {
    parse_spec::<S>(r.properties.clone())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_resource_type_has_a_provider() {
        for t in cm_model::resources::TYPES {
            assert!(
                super::lookup(t.name).is_some(),
                "no provider for {}",
                t.name
            );
        }
        assert_eq!(super::PROVIDERS.len(), cm_model::resources::TYPES.len());
    }
}
