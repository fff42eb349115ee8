//! Helpers for config files. None of them runs code or touches the system.
//! Built in already: if, unless, each, with, lookup, raw, log, eq, ne, gt,
//! gte, lt, lte, and, or, not, len.

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, ScopedJson, handlebars_helper,
};
use serde_json::Value;

pub(super) fn register(r: &mut Handlebars<'static>) {
    r.register_helper("join", Box::new(join));
    r.register_helper("default", Box::new(DefaultHelper));
    r.register_helper("json", Box::new(json));
    r.register_helper("indent", Box::new(indent));
    r.register_helper("shell_quote", Box::new(shell_quote));
    r.register_helper("add", Box::new(add));
    r.register_helper("sub", Box::new(sub));
    r.register_helper("mul", Box::new(mul));
    r.register_helper("div", Box::new(IntOp("div")));
    r.register_helper("mod", Box::new(IntOp("mod")));
    r.register_helper("min", Box::new(min));
    r.register_helper("max", Box::new(max));
    r.register_helper("upper", Box::new(upper));
    r.register_helper("lower", Box::new(lower));
    r.register_helper("replace", Box::new(replace));
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

handlebars_helper!(join: |list: array, sep: str| list.iter().map(text).collect::<Vec<_>>().join(sep));
handlebars_helper!(json: |v: Json| serde_json::to_string(v).unwrap_or_default());
handlebars_helper!(indent: |n: u64, s: str| {
    let pad = " ".repeat(n.min(1024) as usize);
    s.lines().map(|l| if l.is_empty() { String::new() } else { format!("{pad}{l}") }).collect::<Vec<_>>().join("\n")
});
handlebars_helper!(shell_quote: |v: Json| quote(&text(v)));
handlebars_helper!(add: |a: i64, b: i64| a.saturating_add(b));
handlebars_helper!(sub: |a: i64, b: i64| a.saturating_sub(b));
handlebars_helper!(mul: |a: i64, b: i64| a.saturating_mul(b));
handlebars_helper!(min: |a: i64, b: i64| a.min(b));
handlebars_helper!(max: |a: i64, b: i64| a.max(b));
handlebars_helper!(upper: |s: str| s.to_uppercase());
handlebars_helper!(lower: |s: str| s.to_lowercase());
handlebars_helper!(replace: |s: str, from: str, to: str| s.replace(from, to));

/// POSIX shell single-quoting: safe for any string, including quotes and newlines.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `{{default attrs.x "fallback"}}`: the value if defined, not null and not "";
/// the one helper that accepts a missing variable in strict mode.
struct DefaultHelper;

impl HelperDef for DefaultHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let fallback = h
            .param(1)
            .ok_or_else(|| RenderErrorReason::ParamNotFoundForIndex("default", 1))?;
        let chosen = match h.param(0) {
            Some(p)
                if !p.is_value_missing()
                    && !matches!(p.value(), Value::Null)
                    && p.value() != "" =>
            {
                p.value()
            }
            _ => fallback.value(),
        };
        out.write(&text(chosen))?;
        Ok(())
    }
}

/// Integer division and remainder, with division by zero as an error, not a panic.
struct IntOp(&'static str);

impl HelperDef for IntOp {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let arg = |i: usize| -> Result<i64, RenderError> {
            let p = h
                .param(i)
                .ok_or(RenderErrorReason::ParamNotFoundForIndex(self.0, i))?;
            if p.is_value_missing() {
                return Err(RenderErrorReason::MissingVariable(p.relative_path().cloned()).into());
            }
            p.value()
                .as_i64()
                .ok_or_else(|| RenderErrorReason::InvalidParamType("integer").into())
        };
        let (a, b) = (arg(0)?, arg(1)?);
        if b == 0 {
            return Err(RenderErrorReason::Other(format!("{}: division by zero", self.0)).into());
        }
        let v = if self.0 == "div" {
            a.div_euclid(b)
        } else {
            a.rem_euclid(b)
        };
        Ok(ScopedJson::Derived(Value::from(v)))
    }
}
