//! Partials across a cookbook's templates: each one included must exist in
//! the same cookbook, none may include itself through others (handlebars
//! would recurse until the stack overflows), and nesting counted through
//! every include stays within [`MAX_DEPTH`].

use std::collections::BTreeMap;

use super::TemplateError;
use super::check::Shape;
use super::depth::MAX_DEPTH;

/// Check the partials of one cookbook's templates (registered name → shape).
pub(super) fn check(cookbook: &str, shapes: &BTreeMap<String, Shape>) -> Result<(), TemplateError> {
    for (name, shape) in shapes {
        for p in &shape.partials {
            if !shapes.contains_key(&p.name) {
                let line = p.line;
                return Err(TemplateError {
                    template: Some(name.clone()),
                    line: Some(line),
                    column: None,
                    message: format!(
                        "template {name} line {line}: partial {:?} does not exist in cookbook {cookbook} (name partials COOKBOOK/FILE.hbs)",
                        p.name
                    ),
                });
            }
        }
    }
    let mut memo = BTreeMap::new();
    for name in shapes.keys() {
        let depth = effective_depth(name, shapes, &mut Vec::new(), &mut memo)?;
        if depth > MAX_DEPTH {
            return Err(TemplateError {
                template: Some(name.clone()),
                line: None,
                column: None,
                message: format!(
                    "template {name}: with the partials it includes, blocks nest {depth} deep; at most {MAX_DEPTH} are allowed"
                ),
            });
        }
    }
    Ok(())
}

/// The deepest nesting of `name` with its partials expanded, each include
/// one level deeper than the place it stands. Refuses cycles, and stops
/// following a chain of includes longer than the limit, so its own
/// recursion stays shallow.
fn effective_depth(
    name: &str,
    shapes: &BTreeMap<String, Shape>,
    stack: &mut Vec<String>,
    memo: &mut BTreeMap<String, usize>,
) -> Result<usize, TemplateError> {
    if let Some(d) = memo.get(name) {
        return Ok(*d);
    }
    if let Some(i) = stack.iter().position(|s| s == name) {
        let mut cycle = stack[i..].to_vec();
        cycle.push(name.to_string());
        return Err(TemplateError {
            template: Some(stack[i].clone()),
            line: None,
            column: None,
            message: format!("partials include each other: {}", cycle.join(" -> ")),
        });
    }
    let Some(shape) = shapes.get(name) else {
        return Ok(0);
    };
    if stack.len() > MAX_DEPTH {
        // Each include adds a level: this chain alone is too deep.
        return Ok(stack.len());
    }
    stack.push(name.to_string());
    let mut deepest = shape.depth;
    for p in &shape.partials {
        let inner = effective_depth(&p.name, shapes, stack, memo)?;
        deepest = deepest.max(p.depth + 1 + inner);
    }
    stack.pop();
    memo.insert(name.to_string(), deepest);
    Ok(deepest)
}
