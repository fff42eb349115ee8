//! Handlebars templates as cm renders them: strict (a missing variable is an
//! error naming the template, line and variable), no HTML escaping, the
//! helpers config files need and none that runs code.
//!
//! Templates are registered as `COOKBOOK/PATH` (`memcached/memcached.conf.hbs`)
//! and can include each other as partials under the same name:
//! `{{> memcached/header.hbs}}`. Every template is checked when its cookbook
//! is loaded (cmctl, the server and the agent load cookbooks the same way):
//! nesting at most [`MAX_DEPTH`] deep, helpers that exist called with the
//! right number of arguments (and, for the helpers that list them, only the
//! `key=value` arguments they take), partials that exist and do not include
//! each other. Rendering stops with an error past [`MAX_OUTPUT_BYTES`].

mod check;
mod cluster_helpers;
mod depth;
mod helpers;
mod inline;
mod output;
mod partials;
mod password_helpers;

use std::collections::BTreeMap;

use handlebars::{Context, Handlebars, RenderContext, RenderErrorReason, Renderable, WriteOutput};

pub use depth::MAX_DEPTH;
use output::LimitedWriter;
pub use output::MAX_OUTPUT_BYTES;

/// The name of every helper a template may call.
pub fn helper_names() -> impl Iterator<Item = &'static str> {
    helpers::SIGNATURES.iter().map(|s| s.name)
}

/// The registry of every loaded cookbook's templates.
pub struct Templates {
    registry: Handlebars<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

/// A template that failed to parse or render, in words for the cookbook author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// Registered name (`cookbook/file.hbs`) or `None` for an inline property.
    pub template: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl TemplateError {
    /// A problem found by the checks, in the same words as a render error.
    fn checked(name: Option<&str>, p: check::Problem) -> TemplateError {
        let at = match (p.line, p.column) {
            (Some(l), Some(c)) => format!("line {l} column {c}"),
            (Some(l), None) => format!("line {l}"),
            _ => String::new(),
        };
        let message = match (name, at.is_empty()) {
            (Some(n), true) => format!("template {n}: {}", p.message),
            (Some(n), false) => format!("template {n} {at}: {}", p.message),
            (None, true) => p.message,
            (None, false) => format!("{at}: {}", p.message),
        };
        TemplateError {
            template: name.map(str::to_string),
            line: p.line,
            column: p.column,
            message,
        }
    }
}

/// Check a `{{…}}` string of a recipe as a node would render it: nesting,
/// helpers and their arguments.
pub fn check_inline(text: &str) -> Result<(), TemplateError> {
    inline_shape(text).map(drop)
}

/// The helpers a template (or a `{{…}}` string) calls, built-ins included;
/// empty when it does not compile (loading refuses it then).
pub fn helpers_called(text: &str) -> std::collections::BTreeSet<&'static str> {
    inline_shape(text)
        .map(|shape| shape.helpers)
        .unwrap_or_default()
}

/// The checked shape of a `{{…}}` string (parsed once: [`inline`]).
fn inline_shape(text: &str) -> Result<check::Shape, TemplateError> {
    if !text.contains("{{") {
        return Ok(check::Shape::default());
    }
    inline::parse(text)
        .and_then(|p| check::shape(&p.template, p.depth))
        .map_err(|p| TemplateError::checked(None, p))
}

impl Templates {
    pub fn new() -> Templates {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        helpers::register(&mut registry);
        Templates { registry }
    }

    /// Register one cookbook's templates (path under `templates/` → source).
    /// Refuses syntax errors, nesting past [`MAX_DEPTH`] (partials
    /// included), unknown helpers, wrong arity, missing partials and
    /// partial cycles.
    pub fn add_cookbook(
        &mut self,
        cookbook: &str,
        sources: &BTreeMap<String, String>,
    ) -> Result<(), TemplateError> {
        let mut shapes = BTreeMap::new();
        let mut compiled = Vec::with_capacity(sources.len());
        for (path, text) in sources {
            let name = format!("{cookbook}/{path}");
            let (template, shape) = check::compile(Some(&name), text)
                .map_err(|p| TemplateError::checked(Some(&name), p))?;
            shapes.insert(name.clone(), shape);
            compiled.push((name, template));
        }
        partials::check(cookbook, &shapes)?;
        for (name, template) in compiled {
            self.registry.register_template(&name, template);
        }
        Ok(())
    }

    pub fn has(&self, name: &str) -> bool {
        self.registry.has_template(name)
    }

    /// Render a registered template.
    pub fn render(&self, name: &str, ctx: &Context) -> Result<String, TemplateError> {
        let mut out = LimitedWriter::new(MAX_OUTPUT_BYTES);
        match self
            .registry
            .render_with_context_to_write(name, ctx, &mut out)
        {
            Ok(()) => Ok(out.into_string()),
            Err(_) if out.exceeded => Err(too_large(Some(name))),
            Err(e) => Err(render_error(Some(name), e)),
        }
    }

    /// Render an inline string (a property); strings without `{{` are returned as they are.
    pub fn render_str(&self, text: &str, ctx: &Context) -> Result<String, TemplateError> {
        if !text.contains("{{") {
            return Ok(text.to_string());
        }
        let parsed = inline::parse(text).map_err(|p| TemplateError::checked(None, p))?;
        let mut out = LimitedWriter::new(MAX_OUTPUT_BYTES);
        let mut rc = RenderContext::new(None);
        match parsed.template.render(
            &self.registry,
            ctx,
            &mut rc,
            &mut WriteOutput::new(&mut out),
        ) {
            Ok(()) => Ok(out.into_string()),
            Err(_) if out.exceeded => Err(too_large(None)),
            Err(e) => Err(render_error(None, e)),
        }
    }
}

fn too_large(name: Option<&str>) -> TemplateError {
    let what = format!(
        "the rendered output would be larger than {} MiB",
        MAX_OUTPUT_BYTES >> 20
    );
    TemplateError {
        template: name.map(str::to_string),
        line: None,
        column: None,
        message: match name {
            Some(n) => format!("template {n}: {what}"),
            None => what,
        },
    }
}

fn render_error(name: Option<&str>, e: handlebars::RenderError) -> TemplateError {
    let what = match e.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => format!("variable {path} is not defined"),
        RenderErrorReason::MissingVariable(None) => "a variable is not defined".to_string(),
        RenderErrorReason::TemplateError(t) => format!("{}", t.reason()),
        other => other.to_string(),
    };
    let at = match (e.line_no, e.column_no) {
        (Some(l), Some(c)) => format!(" line {l} column {c}"),
        _ => String::new(),
    };
    let message = match name {
        Some(n) => format!("template {n}{at}: {what}"),
        None => what,
    };
    TemplateError {
        template: name.map(str::to_string),
        line: e.line_no,
        column: e.column_no,
        message,
    }
}

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod tests;
