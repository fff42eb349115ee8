//! Handlebars templates as cm renders them: strict (a missing variable is an
//! error naming the template, line and variable), no HTML escaping, the
//! helpers config files need and none that runs code.
//!
//! Templates are registered as `COOKBOOK/PATH` (`memcached/memcached.conf.hbs`)
//! and can include each other as partials under the same name:
//! `{{> memcached/header.hbs}}`. Partials that include each other are refused
//! when the cookbook is loaded, because they would overflow the stack.

mod helpers;

use std::collections::{BTreeMap, BTreeSet};

use handlebars::{Context, Handlebars, RenderErrorReason};

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

impl Templates {
    pub fn new() -> Templates {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        helpers::register(&mut registry);
        Templates { registry }
    }

    /// Register one cookbook's templates (path under `templates/` → source).
    /// Refuses syntax errors, missing partials and partial cycles.
    pub fn add_cookbook(
        &mut self,
        cookbook: &str,
        sources: &BTreeMap<String, String>,
    ) -> Result<(), TemplateError> {
        for (path, text) in sources {
            let name = format!("{cookbook}/{path}");
            self.registry
                .register_template_string(&name, text)
                .map_err(|e| TemplateError {
                    template: Some(name.clone()),
                    line: e.pos().map(|p| p.0),
                    column: e.pos().map(|p| p.1),
                    message: format!("template {name}: {}", e.reason()),
                })?;
        }
        check_partials(cookbook, sources, &|n| self.registry.has_template(n))
    }

    pub fn has(&self, name: &str) -> bool {
        self.registry.has_template(name)
    }

    /// Render a registered template.
    pub fn render(&self, name: &str, ctx: &Context) -> Result<String, TemplateError> {
        self.registry
            .render_with_context(name, ctx)
            .map_err(|e| render_error(Some(name), e))
    }

    /// Render an inline string (a property); strings without `{{` are returned as they are.
    pub fn render_str(&self, text: &str, ctx: &Context) -> Result<String, TemplateError> {
        if !text.contains("{{") {
            return Ok(text.to_string());
        }
        self.registry
            .render_template_with_context(text, ctx)
            .map_err(|e| render_error(None, e))
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

/// Partial names a template includes (`{{> name}}` and `{{#> name}}`), with their lines.
fn partial_refs(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("{{") {
            rest = &rest[at + 2..];
            let body = rest.trim_start_matches(['~', '#']).trim_start();
            if let Some(after) = body.strip_prefix('>') {
                let name: String = after
                    .trim_start()
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '}' && *c != '~')
                    .collect();
                if !name.is_empty() && !name.starts_with('(') {
                    out.push((name, i + 1));
                }
            }
        }
    }
    out
}

fn check_partials(
    cookbook: &str,
    sources: &BTreeMap<String, String>,
    exists: &dyn Fn(&str) -> bool,
) -> Result<(), TemplateError> {
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, text) in sources {
        let name = format!("{cookbook}/{path}");
        for (partial, line) in partial_refs(text) {
            if !exists(&partial) {
                return Err(TemplateError {
                    template: Some(name.clone()),
                    line: Some(line),
                    column: None,
                    message: format!(
                        "template {name} line {line}: partial {partial:?} does not exist (name partials COOKBOOK/FILE.hbs)"
                    ),
                });
            }
            graph.entry(name.clone()).or_default().push(partial);
        }
    }
    // Depth-first search for a cycle, reporting it as a path.
    fn visit(
        n: &str,
        graph: &BTreeMap<String, Vec<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(cycle) = visit(n, &graph, &mut Vec::new(), &mut done) {
            return Err(TemplateError {
                template: Some(n.clone()),
                line: None,
                column: None,
                message: format!("partials include each other: {}", cycle.join(" -> ")),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
