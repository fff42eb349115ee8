//! Resource types as the cookbook author writes them: each type's properties,
//! actions and validation, and what it loads from its cookbook at compile
//! time, one file per type, registered in [`TYPES`].
//!
//! The same checks run when cmctl pushes a cookbook, when the server accepts
//! it and when the agent compiles it, so they all refuse the same mistakes.
//! The providers that converge these specs live in the agent.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::template::TemplateError;

mod actions;
mod introspect;

pub mod apt_repository;
pub mod cron;
pub mod deploy;
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

pub use actions::{Action, UnknownAction};

/// What a spec may ask of the cookbook it lives in.
pub trait CookbookRefs {
    /// Is there a template `templates/<name>`?
    fn has_template(&self, name: &str) -> bool;
    /// Is there a file `files/<name>`?
    fn has_file(&self, name: &str) -> bool;
}

/// What a spec may read of its cookbook when the agent compiles a run.
pub trait CookbookContent: CookbookRefs {
    /// The bytes of `files/<name>`.
    fn file(&self, name: &str) -> Option<&[u8]>;
    /// `templates/<name>` rendered with the run's data, `vars` seen as `vars.*`.
    fn render_template(
        &self,
        name: &str,
        vars: &Map<String, Value>,
    ) -> Result<String, TemplateError>;
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
    /// What a resource of this type may be told to do (see [`actions!`](crate::actions)).
    type Action: Action;
    /// The actions of a resource that names none.
    const DEFAULT_ACTIONS: &'static [Self::Action];
    /// The property that the resource's name fills when it is not set.
    const NAME_PROPERTY: &'static str;

    /// Checks beyond types. Templated strings (holding `{{`) are checked again
    /// after rendering, so checks must skip them via [`is_templated`].
    fn validate(&self, _refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        Ok(())
    }

    /// The bytes the resource writes that its properties only name (a
    /// template to render, a file of the cookbook), loaded when the agent
    /// compiles the run so that a bad one fails it before anything is
    /// touched. The provider finds them in the compiled resource's `content`.
    fn content(&self, _cookbook: &dyn CookbookContent) -> Result<Option<Vec<u8>>, FieldError> {
        Ok(None)
    }
}

/// A registered resource type, with its spec's checks behind plain functions.
pub struct ResourceType {
    pub name: &'static str,
    /// Action names, from the spec's [`Action`] enum.
    pub actions: &'static [&'static str],
    pub name_property: &'static str,
    /// Property names the type accepts.
    pub properties: fn() -> &'static [&'static str],
    default_actions: fn() -> Vec<String>,
    check: CheckFn,
    compile: CompileFn,
}

type CheckFn = fn(Map<String, Value>, &dyn CookbookRefs) -> Result<(), FieldError>;
type CompileFn =
    fn(Map<String, Value>, &dyn CookbookContent) -> Result<Option<Vec<u8>>, FieldError>;

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

    /// [`ResourceType::check`] on rendered properties, then load the
    /// resource's content from its cookbook ([`Spec::content`]).
    pub fn compile(
        &self,
        properties: Map<String, Value>,
        cookbook: &dyn CookbookContent,
    ) -> Result<Option<Vec<u8>>, FieldError> {
        (self.compile)(properties, cookbook)
    }

    pub fn accepts_action(&self, action: &str) -> bool {
        self.actions.contains(&action)
    }

    /// [`ResourceType::accepts_action`], with the list of those it has when not.
    pub fn check_action(&self, action: &str) -> Result<(), UnknownAction> {
        match self.accepts_action(action) {
            true => Ok(()),
            false => Err(UnknownAction {
                action: action.to_string(),
                valid: self.actions,
            }),
        }
    }

    /// The actions of a resource that names none, by name.
    pub fn default_actions(&self) -> Vec<String> {
        (self.default_actions)()
    }
}

const fn register<S: Spec>() -> ResourceType {
    ResourceType {
        name: S::TYPE,
        actions: <S::Action as Action>::NAMES,
        name_property: S::NAME_PROPERTY,
        properties: introspect::fields::<S>,
        default_actions: default_actions::<S>,
        check: check_spec::<S>,
        compile: compile_spec::<S>,
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

fn default_actions<S: Spec>() -> Vec<String> {
    S::DEFAULT_ACTIONS
        .iter()
        .map(|a| a.as_str().to_string())
        .collect()
}

fn check_spec<S: Spec>(
    properties: Map<String, Value>,
    refs: &dyn CookbookRefs,
) -> Result<(), FieldError> {
    parse_spec::<S>(properties)?.validate(refs)
}

fn compile_spec<S: Spec>(
    properties: Map<String, Value>,
    cookbook: &dyn CookbookContent,
) -> Result<Option<Vec<u8>>, FieldError> {
    let spec = parse_spec::<S>(properties)?;
    spec.validate(cookbook)?;
    spec.content(cookbook)
}

/// The bytes of the cookbook file `files/<name>` that property `field` names.
pub(crate) fn cookbook_file(
    cookbook: &dyn CookbookContent,
    field: &str,
    name: &str,
) -> Result<Vec<u8>, FieldError> {
    cookbook
        .file(name)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| FieldError::new(field, format!("no file {name:?} in files/")))
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
    register::<deploy::DeploySpec>(),
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
mod tests;
