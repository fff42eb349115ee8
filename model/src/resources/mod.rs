//! Resource types as the cookbook author writes them: each type's properties,
//! actions and validation, one file per type, registered in [`TYPES`].
//!
//! The same checks run when cmctl pushes a cookbook, when the server accepts
//! it and when the agent compiles it, so they all refuse the same mistakes.
//! The providers that converge these specs live in the agent.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

mod introspect;

pub mod apt_repository;
pub mod cron;
pub mod directory;
pub mod execute;
pub mod file;
pub mod group;
pub mod link;
pub mod package;
pub mod remote_file;
pub mod service;
pub mod template;
pub mod user;

/// What a spec may ask of the cookbook it lives in.
pub trait CookbookRefs {
    /// Is there a template `templates/<name>`?
    fn has_template(&self, name: &str) -> bool;
    /// Is there a file `files/<name>`?
    fn has_file(&self, name: &str) -> bool;
}

/// A property that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// A resource type's properties; implemented by one struct per type.
pub trait Spec: DeserializeOwned + Serialize + std::fmt::Debug + 'static {
    const TYPE: &'static str;
    const ACTIONS: &'static [&'static str];
    const DEFAULT_ACTIONS: &'static [&'static str];
    /// The property that the resource's name fills when it is not set.
    const NAME_PROPERTY: &'static str;

    /// Checks beyond types. Templated strings (holding `{{`) are checked again
    /// after rendering, so checks must skip them via [`is_templated`].
    fn validate(&self, _refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        Ok(())
    }
}

/// A registered resource type, with its spec's checks behind plain functions.
pub struct ResourceType {
    pub name: &'static str,
    pub actions: &'static [&'static str],
    pub default_actions: &'static [&'static str],
    pub name_property: &'static str,
    /// Property names the type accepts.
    pub properties: fn() -> &'static [&'static str],
    check: CheckFn,
}

type CheckFn = fn(Map<String, Value>, &dyn CookbookRefs) -> Result<(), FieldError>;

impl std::fmt::Debug for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl ResourceType {
    /// Type-check `properties` (name property included) and run the spec's own checks.
    pub fn check(
        &self,
        properties: Map<String, Value>,
        refs: &dyn CookbookRefs,
    ) -> Result<(), FieldError> {
        (self.check)(properties, refs)
    }

    pub fn accepts_action(&self, action: &str) -> bool {
        self.actions.contains(&action)
    }
}

const fn register<S: Spec>() -> ResourceType {
    ResourceType {
        name: S::TYPE,
        actions: S::ACTIONS,
        default_actions: S::DEFAULT_ACTIONS,
        name_property: S::NAME_PROPERTY,
        properties: introspect::fields::<S>,
        check: check_spec::<S>,
    }
}

/// Deserialize `properties` into `S`, naming the field that is wrong.
pub fn parse_spec<S: Spec>(properties: Map<String, Value>) -> Result<S, FieldError> {
    serde_path_to_error::deserialize(Value::Object(properties)).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        FieldError {
            field,
            message: e.into_inner().to_string(),
        }
    })
}

fn check_spec<S: Spec>(
    properties: Map<String, Value>,
    refs: &dyn CookbookRefs,
) -> Result<(), FieldError> {
    parse_spec::<S>(properties)?.validate(refs)
}

/// Every resource type cm knows; the agent registers a provider for each.
pub static TYPES: &[ResourceType] = &[
    register::<file::FileSpec>(),
    register::<directory::DirectorySpec>(),
    register::<template::TemplateSpec>(),
    register::<link::LinkSpec>(),
    register::<package::PackageSpec>(),
    register::<service::ServiceSpec>(),
    register::<user::UserSpec>(),
    register::<group::GroupSpec>(),
    register::<execute::ExecuteSpec>(),
    register::<cron::CronSpec>(),
    register::<remote_file::RemoteFileSpec>(),
    register::<apt_repository::AptRepositorySpec>(),
];

/// Look a type up by the name recipes use (`file`, `package`, ...).
pub fn lookup(name: &str) -> Option<&'static ResourceType> {
    TYPES.iter().find(|t| t.name == name)
}

/// Does this string hold a handlebars expression (to be checked after rendering)?
pub fn is_templated(s: &str) -> bool {
    s.contains("{{")
}

/// Parse a file mode written as an octal string ("0644", "755", "2775").
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || digits.len() > 5 || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err(format!("{s:?} is not an octal mode like \"0644\""));
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|e| e.to_string())?;
    if mode > 0o7777 {
        return Err(format!("{s:?} is larger than 07777"));
    }
    Ok(mode)
}

/// Validate an optional mode property unless it is templated.
pub(crate) fn check_mode(field: &str, mode: &Option<String>) -> Result<(), FieldError> {
    match mode {
        Some(m) if !is_templated(m) => parse_mode(m)
            .map(|_| ())
            .map_err(|e| FieldError::new(field, e)),
        _ => Ok(()),
    }
}

/// Validate that an absolute path property is absolute and plain (unless
/// templated: the rendered value is checked again), see [`crate::paths`].
pub(crate) fn check_absolute(field: &str, path: &str) -> Result<(), FieldError> {
    if is_templated(path) {
        return Ok(());
    }
    crate::paths::check_absolute_path(path).map_err(|e| FieldError::new(field, e.to_string()))
}

/// [`check_absolute`] for a path the agent writes, creates or deletes (not `/`).
pub(crate) fn check_managed_path(field: &str, path: &str) -> Result<(), FieldError> {
    if is_templated(path) {
        return Ok(());
    }
    crate::paths::check_managed_path(path).map_err(|e| FieldError::new(field, e.to_string()))
}

/// Owner, group and mode of a file-like resource, as the provider needs them.
/// (Specs repeat the three fields instead of flattening this struct, because
/// serde's `flatten` defeats `deny_unknown_fields`.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Permission bits parsed from the octal string.
    pub mode: Option<u32>,
}

impl Ownership {
    /// Build from rendered properties; a mode that is not octal is an error naming `mode`.
    pub fn from_props(
        owner: &Option<String>,
        group: &Option<String>,
        mode: &Option<String>,
    ) -> Result<Self, FieldError> {
        let mode = mode
            .as_deref()
            .map(parse_mode)
            .transpose()
            .map_err(|e| FieldError::new("mode", e))?;
        Ok(Ownership {
            owner: owner.clone(),
            group: group.clone(),
            mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_type_has_its_default_actions_among_its_actions() {
        for t in TYPES {
            for a in t.default_actions {
                assert!(t.accepts_action(a), "{}: {a}", t.name);
            }
            assert!((t.properties)().contains(&t.name_property), "{}", t.name);
        }
    }

    #[test]
    fn modes_parse_as_octal() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("755"), Ok(0o755));
        assert_eq!(parse_mode("02775"), Ok(0o2775));
        assert!(parse_mode("0844").is_err());
        assert!(parse_mode("").is_err());
        assert!(parse_mode("77777").is_err());
        assert!(parse_mode("rw-r--r--").is_err());
    }

    struct NoRefs;
    impl CookbookRefs for NoRefs {
        fn has_template(&self, _: &str) -> bool {
            true
        }
        fn has_file(&self, _: &str) -> bool {
            true
        }
    }

    fn check(kind: &str, props: serde_json::Value) -> Result<(), FieldError> {
        let Value::Object(map) = props else {
            panic!("properties are a map")
        };
        lookup(kind).unwrap().check(map, &NoRefs)
    }

    #[test]
    fn path_properties_must_be_plain_absolute_paths() {
        let e = check("directory", serde_json::json!({"path": "/a/../.."})).unwrap_err();
        assert_eq!(e.field, "path");
        assert!(e.message.contains("'..'"), "{e:?}");
        let e = check("directory", serde_json::json!({"path": "/"})).unwrap_err();
        assert!(e.message.contains("refusing to manage"), "{e:?}");
        for kind in ["file", "remote_file", "link"] {
            let mut props = serde_json::json!({"path": "/srv/app/../x"});
            if kind == "remote_file" {
                props["url"] = "http://example.com/x".into();
                props["sha256"] = "0".repeat(64).into();
            }
            assert_eq!(check(kind, props).unwrap_err().field, "path", "{kind}");
        }
        let hard = serde_json::json!({"path": "/l", "to": "etc/x", "link_type": "hard"});
        assert_eq!(check("link", hard).unwrap_err().field, "to");
        let climbing = serde_json::json!({"path": "/l", "to": "/etc/../x"});
        assert_eq!(check("link", climbing).unwrap_err().field, "to");
        assert_eq!(
            check("link", serde_json::json!({"path": "/l", "to": "../x"})),
            Ok(())
        );
        let cwd = serde_json::json!({"command": "true", "cwd": "/srv/./app"});
        assert_eq!(check("execute", cwd).unwrap_err().field, "cwd");
        assert_eq!(
            check(
                "execute",
                serde_json::json!({"command": "true", "cwd": "/"})
            ),
            Ok(())
        );
        // Templated values wait for rendering.
        assert_eq!(
            check("file", serde_json::json!({"path": "{{attrs.p}}"})),
            Ok(())
        );
    }

    proptest! {
        #[test]
        fn any_mode_round_trips(bits in 0u32..=0o7777) {
            prop_assert_eq!(parse_mode(&format!("{bits:04o}")), Ok(bits));
            prop_assert_eq!(parse_mode(&format!("{bits:o}")), Ok(bits));
        }

        #[test]
        fn non_octal_strings_are_refused(s in "[0-9]*[89][0-9]*") {
            prop_assert!(parse_mode(&s).is_err());
        }
    }
}
