//! `package` provider: apt and dpkg. The state of every package of a run is
//! read at once, from dpkg's status file ([`super::dpkg_status`]) or with one
//! `dpkg-query`; adjacent installs go into one `apt-get install`;
//! the package lists are refreshed only when stale, when a source changed, or
//! when apt cannot find what it was asked for. An interrupted dpkg is
//! repaired before the first package action of a run ([`super::dpkg`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

use cm_model::resources::FieldError;
use cm_model::resources::package::{PackageAction, PackageSpec};

use super::dpkg::{self, DpkgError};
use super::dpkg_status;
use super::{CommandFailed, Cx, Outcome, Provider, ProviderError, declared_actions};
use crate::command::{Cmd, CommandError, Finished};
use crate::engine::CompiledResource;

/// Package lists older than this are refreshed before an install.
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// An apt-get run may take this long (downloads on a slow mirror).
const APT_TIMEOUT: Duration = Duration::from_secs(1800);
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a package could not be installed, upgraded or removed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// apt-get or apt-cache could not be started or waited for.
    #[error(transparent)]
    Run(#[from] CommandError),
    /// apt-get install, remove or purge failed.
    #[error(transparent)]
    Apt(#[from] CommandFailed),
    #[error("apt-get update failed ({0}): is the package mirror or cache reachable?")]
    Update(#[source] CommandError),
    #[error(
        "apt-get install {packages} failed: the package mirror or cache could not be reached \
         when the lists were refreshed ({}); apt said: {source}", .warnings.join("; ")
    )]
    Unreachable {
        packages: String,
        warnings: Vec<String>,
        source: CommandError,
    },
    #[error("apt-get succeeded but dpkg reports {package} as {state}")]
    NotInstalled { package: String, state: String },
    #[error("apt knows no candidate for {0}")]
    NoCandidate(String),
    #[error(transparent)]
    Dpkg(#[from] DpkgError),
}

impl PackageError {
    pub(super) fn without_output(&self) -> String {
        match self {
            PackageError::Apt(e) => e.without_output(),
            PackageError::Update(e) => format!(
                "apt-get update failed ({}): is the package mirror or cache reachable?",
                e.status()
            ),
            PackageError::Unreachable { packages, .. } => format!(
                "apt-get install {packages} failed: the package mirror or cache could not be reached"
            ),
            PackageError::Dpkg(DpkgError::Repair(e)) => {
                format!(
                    "dpkg was interrupted, and `dpkg --configure -a` failed: {}",
                    e.status()
                )
            }
            other => other.to_string(),
        }
    }
}

/// A package to install, as batching sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub version: Option<String>,
    pub lock_timeout: u64,
}

impl Request {
    /// `name` or `name=version` for apt-get.
    fn arg(&self) -> String {
        match &self.version {
            Some(v) => format!("{}={v}", self.name),
            None => self.name.clone(),
        }
    }
}

/// dpkg's view of the packages of a run.
#[derive(Debug, Default)]
pub struct Cache {
    /// Package → installed version (None: known to dpkg but not installed, or unknown).
    state: BTreeMap<String, Option<String>>,
}

impl Cache {
    /// Read every name from dpkg's status file, or when it cannot answer
    /// alone ([`dpkg_status`]), in one `dpkg-query -W`.
    pub fn load(&mut self, names: &[String]) {
        let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        if let Some(found) = dpkg_status::installed_versions(&dpkg_status::admin_dir(), &wanted) {
            self.state.extend(found);
            return;
        }
        let mut args = vec!["-W", "-f", "${Package}\t${Version}\t${db:Status-Status}\n"];
        args.extend(names.iter().map(String::as_str));
        for n in names {
            self.state.insert(base_name(n).to_string(), None);
        }
        // Exit 1 only means some names are unknown; the known ones are still printed.
        if let Ok(f) = Cmd::new("dpkg-query", &args).timeout(QUERY_TIMEOUT).run() {
            for line in f.stdout.lines() {
                let mut parts = line.split('\t');
                if let (Some(p), Some(v), Some(status)) = (parts.next(), parts.next(), parts.next())
                {
                    // Several instances of one name (multi-arch): any
                    // installed one counts, as in `dpkg_status`.
                    let slot = self.state.entry(p.to_string()).or_default();
                    if slot.is_none() && status == "installed" {
                        *slot = Some(v.to_string());
                    }
                }
            }
        }
    }

    /// The installed version, querying dpkg for names not loaded yet.
    pub fn installed(&mut self, name: &str) -> Option<String> {
        let base = base_name(name);
        if !self.state.contains_key(base) {
            self.load(&[name.to_string()]);
        }
        self.state.get(base).cloned().flatten()
    }

    /// Query again every name known, in one `dpkg-query` (dpkg changed them).
    fn reload(&mut self) {
        let names: Vec<String> = std::mem::take(&mut self.state).into_keys().collect();
        if !names.is_empty() {
            self.load(&names);
        }
    }

    fn forget(&mut self, names: &[String]) {
        for n in names {
            self.state.remove(base_name(n));
        }
    }
}

fn base_name(name: &str) -> &str {
    name.split_once(':').map_or(name, |(b, _)| b)
}

pub struct Package {
    request: Request,
    spec: PackageSpec,
    /// Its actions are a plain `install`: it may share an apt-get with its neighbours.
    installs_only: bool,
}

/// Are the package lists missing or older than [`LISTS_MAX_AGE`]?
fn lists_stale() -> bool {
    let newest = std::fs::read_dir("/var/lib/apt/lists")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("_Packages"))
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max();
    match newest {
        None => true,
        Some(t) => SystemTime::now().duration_since(t).unwrap_or_default() > LISTS_MAX_AGE,
    }
}

fn apt_get(args: &[&str], lock_timeout: u64) -> Result<Finished, CommandError> {
    let lock = format!("DPkg::Lock::Timeout={lock_timeout}");
    let mut full = vec![
        "-q",
        "-y",
        "-o",
        &lock,
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
    ];
    full.extend_from_slice(args);
    Cmd::new("apt-get", &full)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .timeout(APT_TIMEOUT)
        .run()
}

/// Refresh the lists. apt exits 0 when a source cannot be fetched (it only
/// warns, and a partial refresh is still useful): the warnings are returned
/// so a later failure can say the mirror was unreachable.
fn apt_update(lock_timeout: u64) -> Result<Vec<String>, PackageError> {
    let f = apt_get(&["update"], lock_timeout)?;
    if f.success() {
        Ok(fetch_warnings(&f))
    } else {
        Err(PackageError::Update(f.error()))
    }
}

/// `W: Failed to fetch ...` lines, at most three.
fn fetch_warnings(f: &Finished) -> Vec<String> {
    f.stderr
        .lines()
        .chain(f.stdout.lines())
        .filter(|l| l.starts_with("W: Failed to fetch") || l.starts_with("E: Failed to fetch"))
        .take(3)
        .map(str::to_string)
        .collect()
}

/// apt-get's way of saying the lists do not know the package or version.
fn needs_lists(f: &Finished) -> bool {
    [
        "Unable to locate package",
        "has no installation candidate",
        "was not found",
        "404  Not Found",
        "Failed to fetch",
    ]
    .iter()
    .any(|m| f.stderr.contains(m) || f.stdout.contains(m))
}

/// Install `requests` in one apt-get, refreshing the lists first when needed
/// and once more if apt cannot find something.
fn install(requests: &[Request], cx: &mut Cx) -> Result<(), PackageError> {
    let lock_timeout = requests.iter().map(|r| r.lock_timeout).max().unwrap_or(300);
    let mut warnings = Vec::new();
    if cx.apt_sources_changed || lists_stale() {
        warnings = apt_update(lock_timeout)?;
        cx.apt_sources_changed = false;
    }
    let args: Vec<String> = requests.iter().map(Request::arg).collect();
    let mut full = vec!["install", "--allow-downgrades"];
    full.extend(args.iter().map(String::as_str));
    let mut f = apt_get(&full, lock_timeout)?;
    // Refresh once more if apt cannot find something, unless the refresh
    // just made already could not reach the mirror.
    if !f.success() && needs_lists(&f) && warnings.is_empty() {
        warnings = apt_update(lock_timeout)?;
        f = apt_get(&full, lock_timeout)?;
    }
    let names: Vec<String> = requests.iter().map(|r| r.name.clone()).collect();
    cx.packages.forget(&names);
    if f.success() {
        Ok(())
    } else if !warnings.is_empty() {
        Err(PackageError::Unreachable {
            packages: args.join(" "),
            warnings,
            source: f.error(),
        })
    } else {
        Err(CommandFailed::new(format!("apt-get install {}", args.join(" ")), f.error()).into())
    }
}

impl Package {
    fn wanted_differs(&self, installed: &Option<String>) -> bool {
        match (installed, &self.request.version) {
            (None, _) => true,
            (Some(have), Some(want)) => have != want,
            (Some(_), None) => false,
        }
    }

    fn install(&mut self, cx: &mut Cx) -> Result<Outcome, PackageError> {
        let name = self.request.name.clone();
        if cx.installed_in_batch.contains(&name) {
            return Ok(Outcome::changed(
                "installed (in one apt-get with the packages before it)",
            ));
        }
        let installed = cx.packages.installed(&name);
        if !self.wanted_differs(&installed) {
            return Ok(Outcome::unchanged());
        }
        let what = match (&installed, &self.request.version) {
            (Some(have), Some(want)) => format!("version {have} -> {want}"),
            (None, Some(want)) => format!("installed {want}"),
            _ => "installed".to_string(),
        };
        if cx.why_run {
            return Ok(Outcome::changed(what));
        }
        // This package and the rest of its batch that is missing, in one apt-get.
        let mut batch: Vec<Request> = vec![self.request.clone()];
        for r in cx.batch.clone() {
            if r.name != name && !cx.installed_in_batch.contains(&r.name) {
                let have = cx.packages.installed(&r.name);
                let differs = have.is_none() || (r.version.is_some() && have != r.version);
                if differs {
                    batch.push(r);
                }
            }
        }
        install(&batch, cx)?;
        for r in &batch[1..] {
            cx.installed_in_batch.insert(r.name.clone());
        }
        let now = cx.packages.installed(&name);
        if self.wanted_differs(&now) {
            return Err(PackageError::NotInstalled {
                package: name,
                state: now.unwrap_or_else(|| "not installed".into()),
            });
        }
        Ok(Outcome::changed(what))
    }

    fn upgrade(&mut self, cx: &mut Cx) -> Result<Outcome, PackageError> {
        let name = &self.request.name;
        let installed = cx.packages.installed(name);
        let policy = Cmd::new("apt-cache", &["policy", name])
            .timeout(QUERY_TIMEOUT)
            .run()?;
        let candidate = policy
            .stdout
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Candidate:")
                    .map(|c| c.trim().to_string())
            })
            .filter(|c| c != "(none)");
        let Some(candidate) = candidate else {
            return Err(PackageError::NoCandidate(name.clone()));
        };
        if installed.as_deref() == Some(candidate.as_str()) {
            return Ok(Outcome::unchanged());
        }
        let what = format!("{} -> {candidate}", installed.as_deref().unwrap_or("none"));
        if !cx.why_run {
            install(
                &[Request {
                    version: Some(candidate.clone()),
                    ..self.request.clone()
                }],
                cx,
            )?;
        }
        Ok(Outcome::changed(what))
    }

    fn remove(&mut self, purge: bool, cx: &mut Cx) -> Result<Outcome, PackageError> {
        let name = self.request.name.clone();
        let installed = cx.packages.installed(&name);
        // Purge also removes what a plain remove leaves: config files.
        let leftover = purge
            && installed.is_none()
            && Path::new(&format!("/var/lib/dpkg/info/{name}.list")).exists();
        if installed.is_none() && !leftover {
            return Ok(Outcome::unchanged());
        }
        let verb = if purge { "purge" } else { "remove" };
        if !cx.why_run {
            let f = apt_get(&[verb, &name], self.spec.lock_timeout)?;
            cx.packages.forget(std::slice::from_ref(&name));
            if !f.success() {
                return Err(CommandFailed::new(format!("apt-get {verb} {name}"), f.error()).into());
            }
        }
        Ok(Outcome::changed(if purge { "purged" } else { "removed" }))
    }
}

impl Package {
    /// Once per run, before the first package action: repair an
    /// interrupted dpkg (in why-run, only say it would). The change line
    /// to report, if it was interrupted.
    fn repair_dpkg(&self, cx: &mut Cx) -> Result<Option<String>, DpkgError> {
        if std::mem::replace(&mut cx.dpkg_checked, true) {
            return Ok(None);
        }
        let repaired = if cx.why_run {
            dpkg::interrupted(Path::new(dpkg::ADMIN_DIR))
        } else {
            let wait = Duration::from_secs(self.spec.lock_timeout);
            dpkg::repair_if_interrupted(wait)?
        };
        if repaired && !cx.why_run {
            cx.packages.reload();
        }
        Ok(repaired.then(|| dpkg::REPAIRED.to_string()))
    }
}

impl Package {
    fn act(&mut self, action: PackageAction, cx: &mut Cx) -> Result<Outcome, PackageError> {
        if action == PackageAction::Nothing {
            return Ok(Outcome::unchanged());
        }
        let repaired = self.repair_dpkg(cx)?;
        let mut outcome = match action {
            PackageAction::Install => self.install(cx)?,
            PackageAction::Upgrade => self.upgrade(cx)?,
            PackageAction::Remove => self.remove(false, cx)?,
            PackageAction::Purge => self.remove(true, cx)?,
            PackageAction::Nothing => Outcome::unchanged(),
        };
        if let Some(line) = repaired {
            outcome.changes.insert(0, line);
        }
        Ok(outcome)
    }
}

impl Provider for Package {
    type Spec = PackageSpec;

    fn build(spec: PackageSpec, r: &CompiledResource) -> Result<Self, FieldError> {
        let request = Request {
            name: spec.package_name.clone(),
            version: spec.version.clone(),
            lock_timeout: spec.lock_timeout,
        };
        let installs_only = declared_actions::<PackageAction>(r)? == [PackageAction::Install];
        Ok(Package {
            request,
            spec,
            installs_only,
        })
    }

    fn converge(&mut self, action: PackageAction, cx: &mut Cx) -> Result<Outcome, ProviderError> {
        Ok(self.act(action, cx)?)
    }

    fn package_request(&self) -> Option<Request> {
        Some(self.request.clone())
    }

    fn joins_install_batch(&self) -> bool {
        self.installs_only
    }
}
