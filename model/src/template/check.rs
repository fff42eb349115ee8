//! Compiling a template and checking it before any node renders it: its
//! nesting (see [`super::depth`]), every helper it calls with how many
//! arguments (and which `key=value` ones, for the helpers that list them),
//! and the partials it includes. The same check runs for a
//! template file and for `{{…}}` in a recipe string, in cmctl, on the server
//! and in the agent.
//!
//! Refused because they cannot be checked or bounded: partial names computed
//! at render time (`{{> (lookup …)}}`, which could include themselves), and
//! partial blocks (`{{#> name}}…{{/name}}`, whose content handlebars renders
//! into a buffer outside the output limit).

use handlebars::template::{
    DecoratorTemplate, HelperTemplate, Parameter, Subexpression, Template, TemplateElement,
};
use std::collections::BTreeSet;

use serde_json::Value;

use super::depth::{self, MAX_DEPTH};
use super::helpers::{Form, SIGNATURES, Signature, signature};

/// A partial a template includes, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PartialRef {
    pub name: String,
    pub line: usize,
    /// How deeply the include itself is nested.
    pub depth: usize,
}

/// What the rest of the registry needs to know about a checked template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Shape {
    /// Deepest nesting of blocks and sub-expressions.
    pub depth: usize,
    pub partials: Vec<PartialRef>,
    /// Every helper the template calls, built-ins included.
    pub helpers: BTreeSet<&'static str>,
}

/// What is wrong, and where in the template (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl Problem {
    fn at((line, column): (usize, usize), message: String) -> Problem {
        Problem {
            line: Some(line),
            column: Some(column),
            message,
        }
    }
}

/// Compile `text` and check it; `name` is the registered name of a template
/// file, `None` for a string in a recipe.
pub(super) fn compile(name: Option<&str>, text: &str) -> Result<(Template, Shape), Problem> {
    let (template, depth) = parse(name, text)?;
    let shape = shape(&template, depth)?;
    Ok((template, shape))
}

/// Parse a template, bounded: the nesting is checked before handlebars'
/// recursive parser sees the text. The template and its depth.
pub(super) fn parse(name: Option<&str>, text: &str) -> Result<(Template, usize), Problem> {
    depth::check(text, MAX_DEPTH).map_err(|e| Problem {
        line: Some(e.line),
        column: Some(e.column),
        message: e.message,
    })?;
    let template = match name {
        Some(n) => Template::compile_with_name(text, n.to_string()),
        None => Template::compile(text),
    }
    .map_err(|e| Problem {
        line: e.pos().map(|p| p.0),
        column: e.pos().map(|p| p.1),
        message: e.reason().to_string(),
    })?;
    // The scan above bounds the parse; this bounds rendering and dropping,
    // whatever the scan might have misread.
    let deepest = tree_depth(&template, MAX_DEPTH);
    if deepest > MAX_DEPTH {
        dismantle(template);
        return Err(Problem {
            line: None,
            column: None,
            message: format!("blocks and sub-expressions nest more than {MAX_DEPTH} deep"),
        });
    }
    Ok((template, deepest))
}

/// The helpers and partials a parsed template calls, checked.
pub(super) fn shape(template: &Template, depth: usize) -> Result<Shape, Problem> {
    let mut walk = Walk::default();
    walk.template(template, 0, (1, 1))?;
    Ok(Shape {
        depth,
        partials: walk.partials,
        helpers: walk.helpers,
    })
}

/// One level of the tree, for the walks that must not recurse.
enum Node<'a> {
    Template(&'a Template),
    Element(&'a TemplateElement),
}

/// The children of an element: templates one level down, sub-expressions one level down.
fn children(e: &TemplateElement) -> (Vec<&Template>, Vec<&TemplateElement>) {
    match e {
        TemplateElement::Expression(h)
        | TemplateElement::HelperBlock(h)
        | TemplateElement::HtmlExpression(h) => helper_children(h),
        TemplateElement::DecoratorExpression(d)
        | TemplateElement::DecoratorBlock(d)
        | TemplateElement::PartialExpression(d)
        | TemplateElement::PartialBlock(d) => decorator_children(d),
        _ => (Vec::new(), Vec::new()),
    }
}

fn helper_children(h: &HelperTemplate) -> (Vec<&Template>, Vec<&TemplateElement>) {
    let templates = h.template.iter().chain(&h.inverse).collect();
    let params = std::iter::once(&h.name)
        .chain(&h.params)
        .chain(h.hash.values());
    (templates, subexpressions(params))
}

fn decorator_children(d: &DecoratorTemplate) -> (Vec<&Template>, Vec<&TemplateElement>) {
    let templates = d.template.iter().collect();
    let params = std::iter::once(&d.name)
        .chain(&d.params)
        .chain(d.hash.values());
    (templates, subexpressions(params))
}

fn subexpressions<'a>(params: impl Iterator<Item = &'a Parameter>) -> Vec<&'a TemplateElement> {
    params
        .filter_map(|p| match p {
            Parameter::Subexpression(s) => Some(s.as_element()),
            _ => None,
        })
        .collect()
}

/// The deepest nesting in `t`, without recursion; stops counting past `limit`.
fn tree_depth(t: &Template, limit: usize) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(Node::Template(t), 0usize)];
    while let Some((node, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        if deepest > limit {
            break;
        }
        match node {
            Node::Template(t) => stack.extend(t.elements.iter().map(|e| (Node::Element(e), depth))),
            Node::Element(e) => {
                let (templates, subs) = children(e);
                stack.extend(
                    templates
                        .into_iter()
                        .map(|t| (Node::Template(t), depth + 1)),
                );
                stack.extend(subs.into_iter().map(|s| (Node::Element(s), depth + 1)));
            }
        }
    }
    deepest
}

/// Drop a template of any depth without recursing (dropping it whole would).
fn dismantle(t: Template) {
    let mut templates = vec![t];
    let mut elements: Vec<TemplateElement> = Vec::new();
    let take = |p: Parameter, elements: &mut Vec<TemplateElement>| {
        if let Parameter::Subexpression(mut s) = p {
            let empty = TemplateElement::Comment(String::new());
            elements.push(std::mem::replace(&mut *s.element, empty));
        }
    };
    loop {
        if let Some(mut t) = templates.pop() {
            elements.append(&mut t.elements);
            continue;
        }
        let Some(mut e) = elements.pop() else { break };
        match &mut e {
            TemplateElement::Expression(h)
            | TemplateElement::HtmlExpression(h)
            | TemplateElement::HelperBlock(h) => {
                templates.extend(h.template.take());
                templates.extend(h.inverse.take());
                let name = std::mem::replace(&mut h.name, Parameter::Name(String::new()));
                take(name, &mut elements);
                for p in std::mem::take(&mut h.params) {
                    take(p, &mut elements);
                }
                for (_, p) in std::mem::take(&mut h.hash) {
                    take(p, &mut elements);
                }
            }
            TemplateElement::DecoratorExpression(d)
            | TemplateElement::DecoratorBlock(d)
            | TemplateElement::PartialExpression(d)
            | TemplateElement::PartialBlock(d) => {
                templates.extend(d.template.take());
                let name = std::mem::replace(&mut d.name, Parameter::Name(String::new()));
                take(name, &mut elements);
                for p in std::mem::take(&mut d.params) {
                    take(p, &mut elements);
                }
                for (_, p) in std::mem::take(&mut d.hash) {
                    take(p, &mut elements);
                }
            }
            _ => {}
        }
    }
}

/// The checking walk; recursive, which is safe once the depth is known.
#[derive(Default)]
struct Walk {
    partials: Vec<PartialRef>,
    helpers: BTreeSet<&'static str>,
}

type At = (usize, usize);

impl Walk {
    fn template(&mut self, t: &Template, depth: usize, at: At) -> Result<(), Problem> {
        for (i, e) in t.elements.iter().enumerate() {
            let at = t.mapping.get(i).map_or(at, |m| (m.0, m.1));
            self.element(e, depth, at)?;
        }
        Ok(())
    }

    fn element(&mut self, e: &TemplateElement, depth: usize, at: At) -> Result<(), Problem> {
        match e {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                self.expression(h, depth, at)
            }
            TemplateElement::HelperBlock(h) => {
                let name = h.name.as_name().ok_or_else(|| {
                    Problem::at(at, "a block must name its helper: {{#if …}}".into())
                })?;
                self.call(name, h, true, at)?;
                self.parameters(h, depth, at)?;
                for t in h.template.iter().chain(&h.inverse) {
                    self.template(t, depth + 1, at)?;
                }
                Ok(())
            }
            TemplateElement::DecoratorExpression(d) | TemplateElement::DecoratorBlock(d) => {
                if d.name.as_name() != Some("inline") {
                    return Err(Problem::at(
                        at,
                        format!(
                            "decorator {} is not supported (only *inline)",
                            display(&d.name)
                        ),
                    ));
                }
                self.decorator_parameters(d, depth, at)?;
                match &d.template {
                    Some(t) => self.template(t, depth + 1, at),
                    None => Ok(()),
                }
            }
            TemplateElement::PartialExpression(d) => {
                let name = match &d.name {
                    Parameter::Subexpression(_) => {
                        return Err(Problem::at(
                            at,
                            "partial names computed at render time are not supported: name the partial, {{> COOKBOOK/FILE.hbs}}".into(),
                        ));
                    }
                    Parameter::Literal(Value::String(s)) => s.clone(),
                    other => display(other),
                };
                self.partials.push(PartialRef {
                    name,
                    line: at.0,
                    depth,
                });
                self.decorator_parameters(d, depth, at)
            }
            TemplateElement::PartialBlock(d) => Err(Problem::at(
                at,
                format!(
                    "partial blocks ({{{{#> {0}}}}}…{{{{/{0}}}}}) are not supported: include the partial with {{{{> {0}}}}}",
                    display(&d.name)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `{{name}}` is a variable unless `name` is a helper; with arguments it
    /// must be a helper.
    fn expression(&mut self, h: &HelperTemplate, depth: usize, at: At) -> Result<(), Problem> {
        let name_only = h.params.is_empty() && h.hash.is_empty();
        match &h.name {
            Parameter::Subexpression(s) => self.subexpression(s, depth + 1, at)?,
            name => {
                if let Some(n) = name.as_name()
                    && (!name_only || signature(n).is_some())
                {
                    self.call(n, h, false, at)?;
                }
            }
        }
        self.parameters(h, depth, at)
    }

    fn subexpression(&mut self, s: &Subexpression, depth: usize, at: At) -> Result<(), Problem> {
        match s.as_element() {
            TemplateElement::Expression(h) => {
                if let Some(n) = h.name.as_name() {
                    self.call(n, h, false, at)?;
                }
                self.parameters(h, depth, at)
            }
            other => self.element(other, depth, at),
        }
    }

    /// Check a helper call and note the helper as used.
    fn call(&mut self, name: &str, h: &HelperTemplate, block: bool, at: At) -> Result<(), Problem> {
        let sig = check_call(name, h, block, at)?;
        self.helpers.insert(sig.name);
        Ok(())
    }

    fn parameters(&mut self, h: &HelperTemplate, depth: usize, at: At) -> Result<(), Problem> {
        for p in h.params.iter().chain(h.hash.values()) {
            if let Parameter::Subexpression(s) = p {
                self.subexpression(s, depth + 1, at)?;
            }
        }
        Ok(())
    }

    fn decorator_parameters(
        &mut self,
        d: &DecoratorTemplate,
        depth: usize,
        at: At,
    ) -> Result<(), Problem> {
        for p in d.params.iter().chain(d.hash.values()) {
            if let Parameter::Subexpression(s) = p {
                self.subexpression(s, depth + 1, at)?;
            }
        }
        Ok(())
    }
}

fn display(p: &Parameter) -> String {
    match p {
        Parameter::Literal(v) => v.to_string(),
        Parameter::Subexpression(_) => "(…)".to_string(),
        other => other.as_name().unwrap_or_default().to_string(),
    }
}

/// A call `h` of helper `name`, as a block or not; the helper's signature
/// when the call is right.
fn check_call(
    name: &str,
    h: &HelperTemplate,
    block: bool,
    at: At,
) -> Result<&'static Signature, Problem> {
    let args = h.params.len();
    let Some(sig) = signature(name) else {
        let known: Vec<_> = SIGNATURES.iter().map(|s| s.name).collect();
        return Err(Problem::at(
            at,
            format!("unknown helper {name:?} (helpers: {})", known.join(", ")),
        ));
    };
    match (sig.form, block) {
        (Form::Block, false) => {
            return Err(Problem::at(
                at,
                format!("{name} takes a block: {{{{#{name} …}}}}…{{{{/{name}}}}}"),
            ));
        }
        (Form::Inline, true) => {
            return Err(Problem::at(
                at,
                format!("{name} is not a block helper: write {{{{{name} …}}}}"),
            ));
        }
        _ => {}
    }
    if args < sig.fewest || args > sig.most {
        return Err(Problem::at(at, arity_message(sig, args)));
    }
    if let Some(allowed) = sig.hash {
        // The hash is a HashMap: the first unknown key in order, so the
        // message is the same on every run.
        let mut unknown: Vec<&str> = h
            .hash
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        unknown.sort_unstable();
        if let Some(key) = unknown.first() {
            return Err(Problem::at(
                at,
                format!("helper {name} does not take {key}=… ({name} {})", sig.usage),
            ));
        }
    }
    Ok(sig)
}

fn arity_message(sig: &Signature, args: usize) -> String {
    let wanted = match (sig.fewest, sig.most) {
        (min, max) if min == max => format!("{min}"),
        (min, usize::MAX) => format!("at least {min}"),
        (min, max) => format!("{min} to {max}"),
    };
    let plural = if sig.most == 1 { "" } else { "s" };
    format!(
        "helper {} takes {wanted} argument{plural} ({} {}), found {args}",
        sig.name, sig.name, sig.usage
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> Problem {
        compile(Some("c/t.hbs"), text).unwrap_err()
    }

    #[test]
    fn unknown_helpers_and_wrong_arity_are_refused_with_the_line() {
        let p = problem("ok\n{{frobnicate attrs.x}}\n");
        assert_eq!(p.line, Some(2), "{p:?}");
        assert!(p.message.contains("unknown helper \"frobnicate\""), "{p:?}");
        let p = problem("{{join attrs.list}}");
        assert!(
            p.message
                .contains("join takes 2 arguments (join LIST SEP), found 1"),
            "{p:?}"
        );
        assert!(
            problem("{{#if (eq a)}}x{{/if}}")
                .message
                .contains("eq takes 2")
        );
        assert!(problem("{{upper (frob x)}}").message.contains("frob"));
        assert!(problem("{{#frob x}}y{{/frob}}").message.contains("frob"));
        assert!(problem("{{len}}").message.contains("len takes 1"));
        assert!(problem("{{if x}}").message.contains("takes a block"));
        assert!(
            problem("{{#join a b}}x{{/join}}")
                .message
                .contains("not a block")
        );
    }

    #[test]
    fn variables_and_well_formed_calls_pass() {
        let text = "{{attrs.x}} {{this}} {{@index}} {{#each attrs.l}}{{name}}{{/each}}\n{{#if (and (gte a 1) (not b))}}{{join l \",\"}}{{else if c}}y{{/if}}{{{{raw}}}}{{x y}}{{{{/raw}}}}";
        let (_, shape) = compile(Some("c/t.hbs"), text).unwrap();
        assert_eq!(shape.depth, 2);
    }

    #[test]
    fn partials_are_collected_with_their_depth_and_dynamic_ones_refused() {
        let (_, shape) = compile(
            Some("c/t.hbs"),
            "{{> c/a.hbs}}\n{{#if x}}{{> c/b.hbs}}{{/if}}",
        )
        .unwrap();
        let found: Vec<_> = shape
            .partials
            .iter()
            .map(|p| (p.name.as_str(), p.line, p.depth))
            .collect();
        assert_eq!(found, [("c/a.hbs", 1, 0), ("c/b.hbs", 2, 1)]);
        assert!(
            problem("{{> (lookup attrs \"p\")}}")
                .message
                .contains("computed")
        );
        assert!(
            problem("{{#> c/a.hbs}}x{{/c/a.hbs}}")
                .message
                .contains("partial blocks")
        );
        assert!(problem("{{*frob}}").message.contains("decorator"));
    }

    #[test]
    fn a_tree_deeper_than_the_scan_saw_is_refused_and_dropped_without_recursion() {
        // Build the deep tree where the stack allows it, then measure and
        // drop it on a stack far too small to drop it recursively.
        let n = 3_000;
        let text = format!("{}x{}", "{{#if a}}".repeat(n), "{{/if}}".repeat(n));
        let big = std::thread::Builder::new()
            .stack_size(1 << 30)
            .spawn(move || Template::compile(&text).unwrap())
            .unwrap()
            .join()
            .unwrap();
        let measured = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                let d = tree_depth(&big, MAX_DEPTH);
                dismantle(big);
                d
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(measured > MAX_DEPTH);
    }
}
