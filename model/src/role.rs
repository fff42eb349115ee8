//! Roles and environments as admins write them (`roles/web.yaml`,
//! `environments/production.yaml`), validated the same way by cmctl before a
//! push and by the server when it stores them.
//!
//! ```yaml
//! # roles/memcached.yaml
//! name: memcached
//! description: session cache
//! run_list: [memcached]
//! attributes:
//!   memcached: {memory_mb: 512}
//! cookbooks:            # optional constraints on versions
//!   memcached: ">= 1.0"
//! checks:               # how to tell it works (crate::checks)
//!   - tcp: {port: 11211}
//! ```
//!
//! ```yaml
//! # environments/production.yaml
//! name: production
//! cookbooks:            # pins: a bare version is exact, or a range
//!   memcached: 1.0.0
//! attributes: {}
//! splay_seconds: 30     # spread plan-change wake-ups over this many seconds
//! unreachable_after_seconds: 180  # silent this long: listed, reachable: false
//! expire_after_seconds: 900       # silent this long: out of the cluster view
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use semver::VersionReq;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

use crate::checks::{Check, RawCheck};
use crate::error::{LoadError, Pos};
use crate::metadata::check_name;
use crate::runlist::RecipeRef;
use crate::yaml::Reading;

/// A role: what a node of it runs, and the attributes it sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub run_list: Vec<RecipeRef>,
    pub attributes: Map<String, Value>,
    /// Cookbook name → version constraint.
    pub cookbooks: BTreeMap<String, VersionReq>,
    /// How to tell a node of the role works ([`crate::checks`]).
    #[serde(default)]
    pub checks: Vec<Check>,
}

/// An environment: version pins, attributes and timing for its nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub name: String,
    pub description: String,
    /// Cookbook name → pin; a bare version means exactly that version.
    pub cookbooks: BTreeMap<String, VersionReq>,
    pub attributes: Map<String, Value>,
    /// Agents wait a random 0..splay seconds before converging a new plan.
    pub splay_seconds: u32,
    /// A node silent this long is unreachable (still in the cluster view).
    pub unreachable_after_seconds: u32,
    /// A node silent this long expires: out of the view, ordinals freed.
    pub expire_after_seconds: u32,
}

/// Agents send a heartbeat every minute: two missed ones at least before a
/// node is called unreachable.
pub const MIN_UNREACHABLE_AFTER: u32 = 120;
pub const DEFAULT_UNREACHABLE_AFTER: u32 = 180;
pub const DEFAULT_EXPIRE_AFTER: u32 = 900;
/// Thirty days.
const MAX_TIMER: u32 = 30 * 24 * 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    run_list: Vec<Spanned<String>>,
    #[serde(default)]
    attributes: Map<String, Value>,
    #[serde(default)]
    cookbooks: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    checks: Vec<Spanned<RawCheck>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    cookbooks: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    attributes: Map<String, Value>,
    #[serde(default)]
    splay_seconds: u32,
    #[serde(default = "default_unreachable_after")]
    unreachable_after_seconds: u32,
    #[serde(default = "default_expire_after")]
    expire_after_seconds: u32,
}

fn default_unreachable_after() -> u32 {
    DEFAULT_UNREACHABLE_AFTER
}

fn default_expire_after() -> u32 {
    DEFAULT_EXPIRE_AFTER
}

fn pos(s: &Spanned<String>) -> Pos {
    Pos::of(&s.referenced)
}

fn check_own_name(file: &Path, name: &Spanned<String>) -> Result<(), LoadError> {
    check_name(&name.value).map_err(|e| LoadError::new(file, pos(name), format!("name: {e}")))
}

/// Parse cookbook constraints; with `bare_is_exact`, `1.2.0` means `=1.2.0`
/// (a pin), where semver alone would read it as `^1.2.0`.
fn constraints(
    file: &Path,
    raw: BTreeMap<String, Spanned<String>>,
    bare_is_exact: bool,
) -> Result<BTreeMap<String, VersionReq>, LoadError> {
    let mut out = BTreeMap::new();
    for (name, req) in raw {
        check_name(&name)
            .map_err(|e| LoadError::new(file, pos(&req), format!("cookbooks: {e}")))?;
        let text = req.value.trim();
        crate::metadata::check_no_build_metadata(text)
            .map_err(|e| LoadError::new(file, pos(&req), format!("cookbooks.{name}: {e}")))?;
        let text = if bare_is_exact && semver::Version::parse(text).is_ok() {
            format!("={text}")
        } else {
            text.to_string()
        };
        let parsed = VersionReq::parse(&text).map_err(|e| {
            LoadError::new(
                file,
                pos(&req),
                format!(
                    "cookbooks.{name}: {:?} is not a version or range: {e}",
                    req.value
                ),
            )
        })?;
        out.insert(name, parsed);
    }
    Ok(out)
}

impl Role {
    /// Parse and validate a role as an admin wrote it (strictly).
    pub fn parse(file: &Path, text: &str) -> Result<Role, LoadError> {
        Role::parse_with(file, text, Reading::Strict)
    }

    /// [`Role::parse`] with the given reading of ambiguous scalars: a role
    /// stored before cm refused them is read as it was then.
    pub fn parse_with(file: &Path, text: &str, reading: Reading) -> Result<Role, LoadError> {
        let raw: RawRole = crate::yaml::parse_with(file, text, reading)?;
        check_own_name(file, &raw.name)?;
        let run_list = raw
            .run_list
            .iter()
            .map(|r| {
                RecipeRef::parse(&r.value)
                    .map_err(|e| LoadError::new(file, pos(r), format!("run_list: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Role {
            name: raw.name.value,
            description: raw.description,
            run_list,
            attributes: raw.attributes,
            cookbooks: constraints(file, raw.cookbooks, false)?,
            checks: crate::checks::parse(file, raw.checks)?,
        })
    }
}

impl Environment {
    /// Parse and validate an environment as an admin wrote it (strictly).
    pub fn parse(file: &Path, text: &str) -> Result<Environment, LoadError> {
        Environment::parse_with(file, text, Reading::Strict)
    }

    /// [`Environment::parse`] with the given reading of ambiguous scalars:
    /// an environment stored before cm refused them is read as it was then.
    pub fn parse_with(file: &Path, text: &str, reading: Reading) -> Result<Environment, LoadError> {
        let raw: RawEnvironment = crate::yaml::parse_with(file, text, reading)?;
        check_own_name(file, &raw.name)?;
        if raw.splay_seconds > 3600 {
            return Err(LoadError::in_file(file, "splay_seconds: at most 3600"));
        }
        let (unreachable, expire) = (raw.unreachable_after_seconds, raw.expire_after_seconds);
        if !(MIN_UNREACHABLE_AFTER..=MAX_TIMER).contains(&unreachable) {
            return Err(LoadError::in_file(
                file,
                format!(
                    "unreachable_after_seconds: {unreachable} is outside \
                     {MIN_UNREACHABLE_AFTER}..={MAX_TIMER} (agents beat every 60 s)"
                ),
            ));
        }
        if expire <= unreachable || expire > MAX_TIMER {
            return Err(LoadError::in_file(
                file,
                format!(
                    "expire_after_seconds: {expire} must be over unreachable_after_seconds \
                     ({unreachable}) and at most {MAX_TIMER}"
                ),
            ));
        }
        Ok(Environment {
            name: raw.name.value,
            description: raw.description,
            cookbooks: constraints(file, raw.cookbooks, true)?,
            attributes: raw.attributes,
            splay_seconds: raw.splay_seconds,
            unreachable_after_seconds: unreachable,
            expire_after_seconds: expire,
        })
    }

    /// The environment every node is in until an admin says otherwise.
    pub fn default_named(name: &str) -> Environment {
        Environment {
            name: name.to_string(),
            description: String::new(),
            cookbooks: BTreeMap::new(),
            attributes: Map::new(),
            splay_seconds: 0,
            unreachable_after_seconds: DEFAULT_UNREACHABLE_AFTER,
            expire_after_seconds: DEFAULT_EXPIRE_AFTER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_timers_default_and_are_checked() {
        let f = Path::new("environments/prod.yaml");
        let e = Environment::parse(f, "name: prod\n").unwrap();
        assert_eq!(
            (e.unreachable_after_seconds, e.expire_after_seconds),
            (180, 900)
        );
        let e = Environment::parse(
            f,
            "name: prod\nunreachable_after_seconds: 300\nexpire_after_seconds: 3600\n",
        )
        .unwrap();
        assert_eq!(
            (e.unreachable_after_seconds, e.expire_after_seconds),
            (300, 3600)
        );
        let err = Environment::parse(f, "name: prod\nunreachable_after_seconds: 60\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unreachable_after_seconds: 60 is outside 120"),
            "{err}"
        );
        let err = Environment::parse(f, "name: prod\nexpire_after_seconds: 180\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expire_after_seconds: 180 must be over"),
            "{err}"
        );
        assert!(err.contains("environments/prod.yaml"), "{err}");
    }

    #[test]
    fn role_parses_run_list_attributes_and_constraints() {
        let r = Role::parse(
            Path::new("roles/web.yaml"),
            "name: web\nrun_list: [apache_php, 'apache_php::sessions']\nattributes: {apache: {port: 80}}\ncookbooks: {apache_php: '>= 2'}\n",
        )
        .unwrap();
        assert_eq!(r.run_list[1].to_string(), "apache_php::sessions");
        assert!(r.cookbooks["apache_php"].matches(&semver::Version::new(2, 1, 0)));
    }

    #[test]
    fn bare_environment_pin_is_exact() {
        let e = Environment::parse(
            Path::new("e.yaml"),
            "name: production\ncookbooks: {memcached: 1.2.0}\n",
        )
        .unwrap();
        assert!(e.cookbooks["memcached"].matches(&semver::Version::new(1, 2, 0)));
        assert!(!e.cookbooks["memcached"].matches(&semver::Version::new(1, 3, 0)));
        let r = Environment::parse(
            Path::new("e.yaml"),
            "name: staging\ncookbooks: {memcached: '~1.2'}\n",
        )
        .unwrap();
        assert!(r.cookbooks["memcached"].matches(&semver::Version::new(1, 2, 9)));
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let err = Role::parse(
            Path::new("roles/web.yaml"),
            "name: web\nrun_list:\n  - ok\n  - 'Bad Name'\n",
        )
        .unwrap_err();
        assert_eq!(err.pos.line, 4, "{err}");
        assert!(err.message.starts_with("run_list"), "{err}");
        let err = Environment::parse(Path::new("e.yaml"), "name: p\nsplay: 3\n").unwrap_err();
        assert!(err.message.contains("splay"), "{err}");
        let err = Environment::parse(
            Path::new("e.yaml"),
            "name: p\ncookbooks:\n  memcached: latest\n",
        )
        .unwrap_err();
        assert_eq!(err.pos.line, 3, "{err}");
    }

    #[test]
    fn pins_and_constraints_refuse_build_metadata() {
        let err = Environment::parse(
            Path::new("e.yaml"),
            "name: production\ncookbooks:\n  memcached: 1.2.0+b\n",
        )
        .unwrap_err();
        assert_eq!(err.pos.line, 3, "{err}");
        assert!(err.message.contains("build metadata"), "{err}");
        let err = Role::parse(
            Path::new("r.yaml"),
            "name: web\ncookbooks: {memcached: '>= 1.0.0+x'}\n",
        )
        .unwrap_err();
        assert!(err.message.starts_with("cookbooks.memcached: "), "{err}");
    }

    #[test]
    fn yaml_tags_are_refused_in_roles_and_environments() {
        let err = Role::parse(
            Path::new("roles/web.yaml"),
            "name: web\nattributes:\n  cmd: !!python/object/apply:os.system [id]\n",
        )
        .unwrap_err();
        assert_eq!(err.pos.line, 3, "{err}");
        assert!(
            err.to_string().starts_with("roles/web.yaml:3:8: YAML tag"),
            "{err}"
        );
        let err =
            Environment::parse(Path::new("e.yaml"), "name: !custom production\n").unwrap_err();
        assert!(err.message.contains("!custom"), "{err}");
    }

    #[test]
    fn ambiguous_scalars_are_refused_in_roles_and_environments_unless_stored_before() {
        let role = "name: web\nattributes:\n  apache:\n    keepalive: On\n";
        let err = Role::parse(Path::new("roles/web.yaml"), role).unwrap_err();
        assert_eq!(
            err.to_string(),
            "roles/web.yaml:4:16: On is read as the boolean true: write true/false, or \"On\" quoted for the string"
        );
        let stored = Role::parse_with(Path::new("roles/web"), role, Reading::AsBefore).unwrap();
        assert_eq!(stored.attributes["apache"]["keepalive"], true);

        let env = "name: production\nattributes:\n  umask: 0022\n";
        let err = Environment::parse(Path::new("e.yaml"), env).unwrap_err();
        assert_eq!((err.pos.line, err.pos.column), (3, 10), "{err}");
        assert!(err.message.contains("or 22 for the number"), "{err}");
        let stored = Environment::parse_with(Path::new("e"), env, Reading::AsBefore).unwrap();
        assert_eq!(stored.attributes["umask"], serde_json::json!(22.0));
    }

    #[test]
    fn the_bundled_role_and_environment_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let role = root.join("roles/memcached.yaml");
        Role::parse(&role, &std::fs::read_to_string(&role).unwrap()).unwrap();
        let env = root.join("environments/production.yaml");
        Environment::parse(&env, &std::fs::read_to_string(&env).unwrap()).unwrap();
    }
}
