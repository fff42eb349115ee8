//! Cookbook version resolution: which version of every cookbook a node's run
//! list needs, given the versions pushed, the environment's pins, the roles'
//! cookbook constraints and the `depends` of the versions chosen.
//!
//! The rule is Chef's: every needed cookbook (the run list's cookbooks and,
//! transitively, what their chosen versions depend on) gets its newest
//! version that satisfies every constraint that applies to it, and when a
//! newer choice's depends cannot be met an older one is tried. Cookbooks are
//! chosen in run-list order, then in the order depends name them, so when two
//! cookbooks cannot both have their newest version, the one earlier in the run
//! list keeps it. Same inputs, same answer.
//!
//! Constraints only restrict: a pin or role constraint on a cookbook nothing
//! needs is ignored and does not add it. A prerelease (`2.0.0-rc.1`) is chosen
//! only when an environment pin or a role constraint admits it (semver's rule:
//! the constraint names a prerelease of the same x.y.z), so a release candidate
//! reaches only the environments that ask for it; depends cannot opt in.
//!
//! This module owns the search ([`search`]) and its error messages. It does
//! not know where versions, roles or pins are stored, and it does not cache:
//! the server resolves once per change of inputs and caches the plan.

mod search;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use semver::{Op, Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::metadata::Metadata;

/// How many versions the search may try before giving up: a typical fleet
/// needs a few dozen; a pathological universe fails in milliseconds instead
/// of stalling the server's plan computation.
pub const DEFAULT_STEP_LIMIT: usize = 20_000;

/// Where a constraint or a need comes from, so errors can say whom to ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `environment production pins memcached = 1.2.0`
    EnvironmentPin(String),
    /// `role web wants apache_php >= 2`
    Role(String),
    /// `apache_php 2.1.0 depends on memcached >= 1.4`
    DependsOf { cookbook: String, version: Version },
    /// A run list names the cookbook: a role's (`Some(role)`) or a node's own.
    RunList(Option<String>),
}

impl Origin {
    /// The origin as the subject of "needed by …".
    fn needer(&self) -> String {
        match self {
            Origin::DependsOf { cookbook, version } => format!("{cookbook} {version}"),
            other => other.to_string(),
        }
    }
}

/// The origin as the source of a constraint: `= 1.2.0 (environment production pin)`.
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::EnvironmentPin(env) => write!(f, "environment {env} pin"),
            Origin::Role(role) => write!(f, "role {role} constraint"),
            Origin::DependsOf { cookbook, version } => write!(f, "{cookbook} {version} depends"),
            Origin::RunList(Some(role)) => write!(f, "role {role}'s run list"),
            Origin::RunList(None) => f.write_str("the run list"),
        }
    }
}

/// A pin or role constraint on one cookbook (depends come with the versions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    pub cookbook: String,
    pub req: VersionReq,
    pub origin: Origin,
}

/// `>= 2.0 (apache_php 2.1.0 depends)`
impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", Req(&self.req), self.origin)
    }
}

/// One pushed version of a cookbook, with what it depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub version: Version,
    #[serde(default)]
    pub depends: BTreeMap<String, VersionReq>,
}

impl From<&Metadata> for Candidate {
    fn from(m: &Metadata) -> Self {
        Candidate {
            version: m.version.clone(),
            depends: m.depends.clone(),
        }
    }
}

/// The answer: one version per needed cookbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// Every needed cookbook and its chosen version.
    pub versions: BTreeMap<String, Version>,
    /// Needed cookbooks the environment does not pin (sorted), for `cmctl env
    /// show`: their version moves whenever a newer one is pushed.
    pub unpinned: Vec<String>,
}

/// Why no resolution exists, worded for the operator who must fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SolveError {
    #[error("no cookbook named {cookbook} has been pushed; needed by {}", .needed_by.needer())]
    Missing { cookbook: String, needed_by: Origin },
    /// The constraints on `cookbook` that exclude some version (pins, role
    /// constraints and the depends of the versions chosen so far) leave none.
    #[error("{cookbook}: {}", unsatisfiable(.constraints, .available))]
    Unsatisfiable {
        cookbook: String,
        constraints: Vec<Constraint>,
        /// Every pushed version, oldest first.
        available: Vec<Version>,
    },
    /// A version's depends rule out the version chosen for another cookbook
    /// (though not all of its versions), and every other combination failed
    /// too: typically depends that point at each other (a 2 needs b 1, b 1
    /// needs a 1, a 1 needs b 2, b 2 needs a 2).
    #[error("{0}")]
    Incompatible(Box<Clash>),
    #[error(
        "gave up after trying {steps} cookbook versions without finding a combination that satisfies every constraint; pin the versions you want in the environment to narrow the search"
    )]
    StepLimit { steps: usize },
}

/// Resolve with [`DEFAULT_STEP_LIMIT`]; see [`resolve_with_limit`].
pub fn resolve(
    roots: &[(String, Origin)],
    constraints: &[Constraint],
    available: &BTreeMap<String, Vec<Candidate>>,
) -> Result<Resolution, SolveError> {
    resolve_with_limit(roots, constraints, available, DEFAULT_STEP_LIMIT)
}

/// Choose a version for each of `roots` (the run list's cookbooks, in order,
/// each with who named it) and everything they depend on, satisfying
/// `constraints` (pins and role constraints) and the depends of every chosen
/// version, from the versions in `available` (any order; a repeated version
/// counts once). Gives up with [`SolveError::StepLimit`] after `step_limit`
/// versions tried.
pub fn resolve_with_limit(
    roots: &[(String, Origin)],
    constraints: &[Constraint],
    available: &BTreeMap<String, Vec<Candidate>>,
    step_limit: usize,
) -> Result<Resolution, SolveError> {
    search::Search::new(roots, constraints, available, step_limit)?.run()
}

/// A version requirement as operators write it: `= 1.2.0`, `>= 2.0, < 3`, `~1.2`.
struct Req<'a>(&'a VersionReq);

impl fmt::Display for Req<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.comparators.is_empty() {
            return f.write_str("*");
        }
        for (i, c) in self.0.comparators.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let text = c.to_string();
            let spaced = matches!(
                c.op,
                Op::Exact | Op::Greater | Op::GreaterEq | Op::Less | Op::LessEq
            );
            match text.find(|ch: char| ch.is_ascii_digit()) {
                Some(at) if spaced => write!(f, "{} {}", &text[..at], &text[at..])?,
                _ => f.write_str(&text)?,
            }
        }
        Ok(())
    }
}

/// `cookbook version` depends on `dep req`, which rules out the `chosen` version of `dep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    pub cookbook: String,
    pub version: Version,
    pub dep: String,
    pub req: VersionReq,
    pub chosen: Version,
}

impl fmt::Display for Clash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Clash {
            cookbook,
            version,
            dep,
            req,
            chosen,
        } = self;
        let req = Req(req);
        if cookbook == dep && version == chosen {
            write!(
                f,
                "{cookbook} {version} depends on {dep} {req}, which excludes itself, and no other version works either"
            )
        } else {
            write!(
                f,
                "{cookbook} {version} depends on {dep} {req}, but {dep} {chosen} was chosen first, and no other combination of versions works either"
            )
        }
    }
}

/// The body of [`SolveError::Unsatisfiable`]; long version lists keep both ends.
fn unsatisfiable(constraints: &[Constraint], available: &[Version]) -> String {
    let mut out = if constraints.is_empty() {
        "no version can be chosen".to_string()
    } else {
        let all: Vec<String> = constraints.iter().map(ToString::to_string).collect();
        format!("no version satisfies all of: {}", all.join(", "))
    };
    let shown: Vec<String> = if available.len() <= 10 {
        available.iter().map(ToString::to_string).collect()
    } else {
        let n = available.len();
        let mut ends: Vec<String> = available[..2].iter().map(ToString::to_string).collect();
        ends.push(format!("… {} more …", n - 8));
        ends.extend(available[n - 6..].iter().map(ToString::to_string));
        ends
    };
    out.push_str("; available: ");
    out.push_str(&shown.join(", "));
    if available.iter().any(|v| !v.pre.is_empty()) {
        out.push_str(
            " (a prerelease is chosen only when an environment pin or role constraint names it)",
        );
    }
    out
}
