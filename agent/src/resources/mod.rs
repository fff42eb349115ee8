//! Providers: for each resource type, read the current state, compare it with
//! the compiled resource, and act only on the difference. One file per type,
//! implementing [`Provider`] for its spec and registered in [`PROVIDERS`];
//! the specs they read live in cm-model.
//!
//! Providers never print. They return what changed (and a diff for files),
//! or a [`ProviderError`]; the engine reports. Why-run is the same code path
//! with the apply step skipped (`cx.why_run`), so it cannot drift from a
//! real run.

use std::collections::BTreeSet;
use std::path::PathBuf;

use cm_model::resources::{Action, FieldError, Spec, parse_spec};

use crate::engine::CompiledResource;

mod error;

pub mod accounts;
pub mod apt_repository;
pub mod cron;
pub mod deploy;
pub mod directory;
pub mod download;
pub mod dpkg;
pub mod dpkg_status;
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

pub use error::{CommandFailed, ExecuteError, ProviderError};

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

/// Converges one resource type: built from its spec, then told its
/// actions one at a time, as the spec's typed [`Action`]s.
pub trait Provider: Sized + 'static {
    /// The spec this provider converges; its actions are what `converge` is told.
    type Spec: Spec;

    /// Build from the resource's spec (properties rendered) and the rest of
    /// the compiled resource (its content, its declared actions).
    fn build(spec: Self::Spec, resource: &CompiledResource) -> Result<Self, FieldError>;

    /// Bring the resource to `action`: read state, compare, and unless
    /// `cx.why_run`, apply.
    fn converge(&mut self, action: ActionOf<Self>, cx: &mut Cx) -> Result<Outcome, ProviderError>;

    /// A package this resource installs, so the run reads the state of all
    /// of them at once.
    fn package_request(&self) -> Option<package::Request> {
        None
    }

    /// May this resource's install share one apt-get with its neighbours
    /// (the engine adds: when none of them has a guard)?
    fn joins_install_batch(&self) -> bool {
        false
    }
}

/// The actions of provider `P`'s resource type.
pub type ActionOf<P> = <<P as Provider>::Spec as Spec>::Action;

/// A built provider as the engine holds it, whatever its type: actions by
/// the names recipes and reports use.
pub trait DynProvider {
    /// [`Provider::converge`] with the action by name; a name the type does
    /// not have is an error, never a silent "unchanged".
    fn converge(&mut self, action: &str, cx: &mut Cx) -> Result<Outcome, ProviderError>;
    fn package_request(&self) -> Option<package::Request>;
    fn joins_install_batch(&self) -> bool;
}

impl<P: Provider> DynProvider for P {
    fn converge(&mut self, action: &str, cx: &mut Cx) -> Result<Outcome, ProviderError> {
        let action =
            action
                .parse::<ActionOf<P>>()
                .map_err(|source| ProviderError::UnknownAction {
                    kind: P::Spec::TYPE,
                    source,
                })?;
        Provider::converge(self, action, cx)
    }

    fn package_request(&self) -> Option<package::Request> {
        Provider::package_request(self)
    }

    fn joins_install_batch(&self) -> bool {
        Provider::joins_install_batch(self)
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
    /// The first package resource looked whether dpkg was interrupted.
    pub dpkg_checked: bool,
    /// Show new files whole, not their first lines (`--full-diff`).
    pub full_diff: bool,
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
            dpkg_checked: false,
            full_diff: false,
        }
    }
}

/// Builds a provider from a compiled resource (properties already rendered).
pub type Build = fn(&CompiledResource) -> Result<Box<dyn DynProvider>, FieldError>;

/// A registered provider.
pub struct ProviderType {
    pub name: &'static str,
    pub build: Build,
}

const fn register<P: Provider>() -> ProviderType {
    ProviderType {
        name: P::Spec::TYPE,
        build: build::<P>,
    }
}

fn build<P: Provider>(r: &CompiledResource) -> Result<Box<dyn DynProvider>, FieldError> {
    let spec = parse_spec::<P::Spec>(r.properties.clone())?;
    Ok(Box::new(P::build(spec, r)?))
}

/// Every provider, one per resource type of cm-model.
pub static PROVIDERS: &[ProviderType] = &[
    register::<file::File>(),
    register::<directory::Directory>(),
    register::<template::Template>(),
    register::<link::Link>(),
    register::<package::Package>(),
    register::<service::Service>(),
    register::<user::User>(),
    register::<group::Group>(),
    register::<execute::Execute>(),
    register::<cron::Cron>(),
    register::<remote_file::RemoteFile>(),
    register::<apt_repository::AptRepository>(),
    register::<deploy::Deploy>(),
];

pub fn lookup(name: &str) -> Option<&'static ProviderType> {
    PROVIDERS.iter().find(|p| p.name == name)
}

/// The resource's declared actions, typed (recipes were checked when loaded).
pub fn declared_actions<A: Action>(r: &CompiledResource) -> Result<Vec<A>, FieldError> {
    r.actions
        .iter()
        .map(|a| {
            a.parse()
                .map_err(|e| FieldError::new("action", format!("{e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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

    /// Properties a resource of `kind` needs to build, under a temp dir.
    fn minimal(kind: &str, dir: &std::path::Path) -> serde_json::Value {
        let path = dir.join("x").display().to_string();
        match kind {
            "file" | "directory" | "link" => json!({ "path": path }),
            "template" => json!({ "path": path, "source": "t.hbs" }),
            "remote_file" => json!({
                "path": path, "url": "http://127.0.0.1:9/x", "sha256": "0".repeat(64)
            }),
            "package" => json!({ "package_name": "cm-no-such-package" }),
            "service" => json!({ "service_name": "cm-no-such-service" }),
            "user" => json!({ "username": "cmnosuchuser" }),
            "group" => json!({ "group_name": "cmnosuchgroup" }),
            "execute" => json!({ "command": format!("touch {path}") }),
            "cron" => json!({ "cron_name": "cm-no-such-job", "command": "true" }),
            "deploy" => json!({ "path": path, "file": "app.tar.gz" }),
            "apt_repository" => json!({
                "repo_name": "cm-no-such-repo", "uris": ["http://127.0.0.1:9/x"],
                "suites": ["s"], "key": "-----BEGIN PGP PUBLIC KEY BLOCK-----"
            }),
            other => panic!("no minimal properties for {other}: add them here"),
        }
    }

    #[test]
    fn every_provider_refuses_an_action_its_type_lacks_instead_of_changing_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for t in cm_model::resources::TYPES {
            let properties = minimal(t.name, dir.path()).as_object().unwrap().clone();
            let r = CompiledResource {
                content: Some(Vec::new()),
                ..CompiledResource::bare(t, "x", properties, "resources/mod.rs")
            };
            let mut p = (super::lookup(t.name).unwrap().build)(&r)
                .unwrap_or_else(|e| panic!("{}: {} {}", t.name, e.field, e.message));
            let mut cx = Cx::new(false, dir.path().join("backup"));
            let e = p.converge("frobnicate", &mut cx).unwrap_err().to_string();
            let expected = format!(
                "{} has no action \"frobnicate\" (it has {})",
                t.name,
                t.actions.join(", ")
            );
            assert_eq!(e, expected);
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing was touched"
        );
    }
}
