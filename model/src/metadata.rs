//! `metadata.yaml`: a cookbook's name, version, dependencies, and the roles
//! of the cluster view its templates and recipes read (`cluster:`).

use std::collections::BTreeMap;
use std::path::Path;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::error::{LoadError, Pos};
use crate::yaml::Reading;

/// What `metadata.yaml` declares about a cookbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
    pub version: Version,
    #[serde(default)]
    pub description: String,
    /// Cookbook name → version constraint (`">= 1.2, < 2"`, `"~1.4"`, `"*"`).
    #[serde(default)]
    pub depends: BTreeMap<String, VersionReq>,
    /// The roles whose members plans using this cookbook carry.
    #[serde(default)]
    pub cluster: ClusterRoles,
}

/// `cluster:` in `metadata.yaml`: which roles' members a plan carries for
/// this cookbook. Only those: a node is woken by a membership change only
/// when its plan reads the role that changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterRoles {
    /// None (the default).
    #[default]
    None,
    /// `cluster: [memcached, web]`.
    Roles(Vec<String>),
    /// `cluster: all`: every role of the environment (monitoring).
    All,
}

impl ClusterRoles {
    pub fn is_none(&self) -> bool {
        matches!(self, ClusterRoles::None)
    }

    /// Whether a plan with this declaration carries `role`.
    pub fn reads(&self, role: &str) -> bool {
        match self {
            ClusterRoles::None => false,
            ClusterRoles::Roles(roles) => roles.iter().any(|r| r == role),
            ClusterRoles::All => true,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCluster {
    Word(String),
    Roles(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetadata {
    name: Spanned<String>,
    version: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    depends: BTreeMap<String, Spanned<String>>,
    cluster: Option<Spanned<RawCluster>>,
}

impl Metadata {
    /// Parse and validate `metadata.yaml`; `file` is used in error messages.
    pub fn parse(file: &Path, text: &str) -> Result<Metadata, LoadError> {
        Metadata::parse_with(file, text, Reading::Strict)
    }

    /// [`Metadata::parse`] with the given reading of ambiguous scalars.
    pub fn parse_with(file: &Path, text: &str, reading: Reading) -> Result<Metadata, LoadError> {
        let raw: RawMetadata = crate::yaml::parse_with(file, text, reading)?;
        let at = |s: &Spanned<String>| Pos::of(&s.referenced);
        check_name(&raw.name.value)
            .map_err(|m| LoadError::new(file, at(&raw.name), format!("name: {m}")))?;
        let version = Version::parse(&raw.version.value).map_err(|e| {
            let v = &raw.version.value;
            LoadError::new(
                file,
                at(&raw.version),
                format!("version: {v:?} is not a semantic version like 1.2.3: {e}"),
            )
        })?;
        check_no_build_metadata(&raw.version.value)
            .map_err(|m| LoadError::new(file, at(&raw.version), format!("version: {m}")))?;
        let mut depends = BTreeMap::new();
        for (dep, req) in raw.depends {
            check_name(&dep)
                .map_err(|m| LoadError::new(file, at(&req), format!("depends: {dep:?}: {m}")))?;
            check_no_build_metadata(&req.value)
                .map_err(|m| LoadError::new(file, at(&req), format!("depends.{dep}: {m}")))?;
            let parsed = VersionReq::parse(&req.value).map_err(|e| {
                LoadError::new(
                    file,
                    at(&req),
                    format!(
                        "depends.{dep}: {:?} is not a version constraint: {e}",
                        req.value
                    ),
                )
            })?;
            depends.insert(dep, parsed);
        }
        let cluster = match raw.cluster {
            None => ClusterRoles::None,
            Some(c) => cluster_roles(c.value).map_err(|m| {
                LoadError::new(file, Pos::of(&c.referenced), format!("cluster: {m}"))
            })?,
        };
        Ok(Metadata {
            name: raw.name.value,
            version,
            description: raw.description,
            depends,
            cluster,
        })
    }
}

fn cluster_roles(raw: RawCluster) -> Result<ClusterRoles, String> {
    match raw {
        RawCluster::Word(w) if w == "all" => Ok(ClusterRoles::All),
        RawCluster::Word(w) => Err(format!(
            "{w:?}: write `all` or a list of roles (cluster: [memcached])"
        )),
        RawCluster::Roles(mut roles) => {
            for r in &roles {
                check_name(r)?;
            }
            roles.sort();
            roles.dedup();
            Ok(ClusterRoles::Roles(roles))
        }
    }
}

/// Build metadata (`1.2.3+a`) is refused in cookbook versions and in every
/// constraint: semver ignores it when comparing, so `1.2.3+a` and `1.2.3+b`
/// would be two versions no pin could tell apart.
pub fn check_no_build_metadata(text: &str) -> Result<(), String> {
    if text.contains('+') {
        return Err(format!(
            "{text:?}: build metadata (+...) is not allowed: versions that differ only after '+' cannot be told apart by pins; use a prerelease (1.2.3-rc.1) or a new patch version"
        ));
    }
    Ok(())
}

/// Cookbook, role and environment names: what is safe in a path, a URL and a log.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must start with a lowercase letter and hold only a-z, 0-9, '_' and '-' (at most 64)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Metadata, LoadError> {
        Metadata::parse(Path::new("memcached/metadata.yaml"), text)
    }

    #[test]
    fn parses_name_version_and_depends() {
        let m = parse("name: web\nversion: 1.2.3\ndepends:\n  memcached: '>= 1.0, < 2'\n").unwrap();
        assert_eq!(m.version, Version::new(1, 2, 3));
        assert!(m.depends["memcached"].matches(&Version::new(1, 9, 0)));
    }

    #[test]
    fn cluster_names_roles_or_all() {
        let m = parse("name: web\nversion: 1.0.0\n").unwrap();
        assert!(m.cluster.is_none() && !m.cluster.reads("web"));
        let m = parse("name: web\nversion: 1.0.0\ncluster: [memcached, web, memcached]\n").unwrap();
        assert_eq!(
            m.cluster,
            ClusterRoles::Roles(vec!["memcached".into(), "web".into()])
        );
        assert!(m.cluster.reads("memcached") && !m.cluster.reads("nagios"));
        let m = parse("name: nagios\nversion: 1.0.0\ncluster: all\n").unwrap();
        assert!(m.cluster.reads("anything"));
        let err = parse("name: web\nversion: 1.0.0\ncluster: some\n").unwrap_err();
        assert_eq!(err.pos.line, 3);
        assert!(err.message.contains("write `all` or a list"), "{err}");
        let err = parse("name: web\nversion: 1.0.0\ncluster: [Web]\n").unwrap_err();
        assert!(
            err.message.starts_with("cluster: \"Web\" must start"),
            "{err}"
        );
    }

    #[test]
    fn bad_semver_names_line_and_field() {
        let err = parse("name: web\nversion: 1.2\n").unwrap_err();
        assert_eq!(err.pos.line, 2);
        assert!(err.message.starts_with("version:"), "{err}");
    }

    #[test]
    fn bad_constraint_names_the_dependency() {
        let err =
            parse("name: web\nversion: 1.0.0\ndepends:\n  memcached: 'about 2'\n").unwrap_err();
        assert_eq!(err.pos.line, 4);
        assert!(err.message.contains("depends.memcached"), "{err}");
    }

    #[test]
    fn build_metadata_is_refused_in_versions_and_constraints() {
        let err = parse("name: web\nversion: 1.2.3+build.5\n").unwrap_err();
        assert_eq!(err.pos.line, 2, "{err}");
        assert!(err.message.contains("build metadata"), "{err}");
        let err =
            parse("name: web\nversion: 1.0.0\ndepends:\n  memcached: '= 1.2.3+a'\n").unwrap_err();
        assert_eq!(err.pos.line, 4, "{err}");
        assert!(err.message.starts_with("depends.memcached: "), "{err}");
        assert!(parse("name: web\nversion: 1.2.3-rc.1\n").is_ok());
    }

    #[test]
    fn ambiguous_scalars_are_refused_in_metadata() {
        let err = parse("name: web\nversion: 1.0.0\ndescription: no\n").unwrap_err();
        assert_eq!((err.pos.line, err.pos.column), (3, 14), "{err}");
        assert!(err.message.contains("\"no\" quoted"), "{err}");
    }

    #[test]
    fn unsafe_name_is_refused() {
        assert!(parse("name: ../x\nversion: 1.0.0\n").is_err());
        assert!(check_name("apache_php").is_ok());
        assert!(check_name("Apache").is_err());
    }
}
