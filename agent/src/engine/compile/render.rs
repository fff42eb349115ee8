//! Rendering one resource declaration: its name, properties and guards
//! through handlebars, then its spec's checks and content
//! ([`cm_model::resources::Spec::content`]), and whether a secret ended up
//! in any of it.
//!
//! Every error names the resource as the run does, `type[rendered name]`,
//! whatever went wrong (a property, a guard, a template, a file): one
//! declaration expanded by `for_each` is several resources, and the
//! declaration's `{{item}}` would not say which. Only a name that does not
//! render is named as written, with its item.

use std::cell::RefCell;
use std::path::PathBuf;

use cm_model::LoadError;
use cm_model::cookbook::Cookbook;
use cm_model::recipe::ResourceDecl;
use cm_model::resources::{CookbookContent, CookbookRefs};
use cm_model::secrets::Secrets;
use cm_model::template::{TemplateError, Templates};

use handlebars::Context;
use serde_json::{Map, Value};

use super::CompiledResource;
use super::scope::Scope;

/// One resource declaration in its cookbook, being rendered (for one
/// `for_each` item: see [`Unit::for_item`]).
#[derive(Clone)]
pub(super) struct Unit<'a> {
    pub(super) cookbook: &'a Cookbook,
    pub(super) decl: &'a ResourceDecl,
    pub(super) file: &'a PathBuf,
    pub(super) templates: &'a Templates,
    pub(super) secrets: &'a Secrets,
    /// How errors name the resource: `type[name]`.
    pub(super) label: String,
}

impl<'a> Unit<'a> {
    /// The declaration as a whole, named as written (a `for_each` that
    /// fails before any item).
    pub(super) fn new(
        cookbook: &'a Cookbook,
        decl: &'a ResourceDecl,
        file: &'a PathBuf,
        templates: &'a Templates,
        secrets: &'a Secrets,
    ) -> Unit<'a> {
        Unit {
            cookbook,
            decl,
            file,
            templates,
            secrets,
            label: format!("{}[{}]", decl.kind.name, decl.name),
        }
    }

    /// The resource of one item, named by its rendered `name`; a name that
    /// did not render is named as written, with the item.
    pub(super) fn for_item(&self, name: Option<&str>, item: Option<&Value>) -> Unit<'a> {
        let label = match (name, item) {
            // As the run's output names it: a secret in it redacted.
            (Some(name), _) => format!("{}[{}]", self.decl.kind.name, self.secrets.redact(name)),
            (None, Some(item)) => format!("{} (for_each item {})", self.label, brief(item)),
            (None, None) => self.label.clone(),
        };
        Unit {
            label,
            ..self.clone()
        }
    }

    /// An error about the resource as a whole, at its first line.
    pub(super) fn error(&self, message: impl std::fmt::Display) -> LoadError {
        LoadError::new(
            self.file,
            self.decl.at,
            format!("{}: {message}", self.label),
        )
    }

    pub(super) fn error_at(&self, key: &str, message: impl std::fmt::Display) -> LoadError {
        LoadError::new(
            self.file,
            self.decl.pos_of(key),
            format!("{} {key}: {message}", self.label),
        )
    }

    /// The resource's name rendered with `ctx`, or why it does not render.
    pub(super) fn render_name(&self, ctx: &Context) -> Result<String, String> {
        self.templates
            .render_str(&self.decl.name, ctx)
            .map_err(|e| e.message)
    }

    fn render_str(&self, key: &str, text: &str, ctx: &Context) -> Result<String, LoadError> {
        self.templates
            .render_str(text, ctx)
            .map_err(|e| self.error_at(key, e.message))
    }

    fn render_value(&self, key: &str, v: &Value, ctx: &Context) -> Result<Value, LoadError> {
        Ok(match v {
            Value::String(s) => Value::String(self.render_str(key, s, ctx)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.render_value(key, i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_value(key, v, ctx)?)))
                    .collect::<Result<_, LoadError>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Render the resource; `name` is its name rendered with `ctx` (by
    /// [`Unit::render_name`]).
    pub(super) fn render(
        &self,
        scope: &mut Scope,
        name: Result<String, String>,
    ) -> Result<CompiledResource, LoadError> {
        let d = self.decl;
        let name = name.map_err(|m| self.error_at(d.kind.name, m))?;
        let mut properties = Map::new();
        for (k, v) in &d.properties {
            properties.insert(k.clone(), self.render_value(k, v, scope.ctx())?);
        }
        properties
            .entry(d.kind.name_property)
            .or_insert_with(|| Value::String(name.clone()));
        let content = {
            let cookbook = CookbookView {
                cookbook: self.cookbook,
                templates: self.templates,
                scope: RefCell::new(&mut *scope),
            };
            d.kind.compile(properties.clone(), &cookbook)
        };
        let ctx = scope.ctx();
        let content = content.map_err(|e| {
            let key = if e.field.is_empty() {
                d.kind.name
            } else {
                e.field.as_str()
            };
            LoadError::new(
                self.file,
                d.pos_of(key),
                format!("{} {}: {}", self.label, e.field, e.message),
            )
        })?;
        let guard = |k: &str, v: &Option<String>| {
            v.as_ref().map(|s| self.render_str(k, s, ctx)).transpose()
        };
        let (only_if, not_if, creates) = (
            guard("only_if", &d.only_if)?,
            guard("not_if", &d.not_if)?,
            guard("creates", &d.creates)?,
        );
        if let Some(path) = &creates {
            cm_model::paths::check_absolute_path(path).map_err(|e| self.error_at("creates", e))?;
        }
        let secrets = self.secrets;
        let holds_secret = !secrets.is_empty()
            && (properties.values().any(|v| value_holds_secret(v, secrets))
                || content
                    .as_ref()
                    .is_some_and(|c| secrets.appear_in(&String::from_utf8_lossy(c)))
                || [&only_if, &not_if]
                    .into_iter()
                    .flatten()
                    .any(|g| secrets.appear_in(g)));
        Ok(CompiledResource {
            kind: d.kind,
            name,
            properties,
            content,
            actions: d.actions.clone(),
            only_if,
            not_if,
            creates,
            notifies: Vec::new(),
            ignore_failure: d.ignore_failure,
            sensitive: d.sensitive || holds_secret,
            holds_secret,
            origin: format!("{}:{}", self.file.display(), d.at.line),
        })
    }
}

/// A value in a message: short, whatever its size.
pub(super) fn brief(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// Does any string inside `v` contain a secret's value?
fn value_holds_secret(v: &Value, secrets: &Secrets) -> bool {
    match v {
        Value::String(s) => secrets.appear_in(s),
        Value::Array(items) => items.iter().any(|i| value_holds_secret(i, secrets)),
        Value::Object(m) => m.values().any(|i| value_holds_secret(i, secrets)),
        _ => false,
    }
}

/// The resource's cookbook as its spec sees it at compile time: its files,
/// and its templates rendered with the run's data.
struct CookbookView<'a, 's> {
    cookbook: &'a Cookbook,
    templates: &'a Templates,
    /// A template's `vars` are set in the run's scope while it renders.
    scope: RefCell<&'s mut Scope>,
}

impl CookbookRefs for CookbookView<'_, '_> {
    fn has_template(&self, name: &str) -> bool {
        self.cookbook.templates.contains_key(name)
    }
    fn has_file(&self, name: &str) -> bool {
        self.cookbook.files.contains_key(name)
    }
}

impl CookbookContent for CookbookView<'_, '_> {
    fn file(&self, name: &str) -> Option<&[u8]> {
        self.cookbook.files.get(name).map(|f| f.bytes.as_slice())
    }

    fn render_template(
        &self,
        name: &str,
        vars: &Map<String, Value>,
    ) -> Result<String, TemplateError> {
        let mut scope = self.scope.borrow_mut();
        scope.set("vars", Some(Value::Object(vars.clone())));
        let registered = format!("{}/{name}", self.cookbook.name());
        let rendered = self.templates.render(&registered, scope.ctx());
        scope.set("vars", None);
        rendered
    }
}
