//! Helpers for config files. None of them runs code or touches the system.
//! Built in already: if, unless, each, with, lookup, raw, log, eq, ne, gt,
//! gte, lt, lte, and, or, not, len.
//!
//! `pad` is new in cm-agent 0.2.0, and the cluster helpers (`first`,
//! `addresses`, `cassandra_token`, in [`super::cluster_helpers`]) in 0.3.0:
//! a cookbook that calls them needs that agent (`crate::features`).
//!
//! [`SIGNATURES`] lists every helper a template may call with its arity
//! (and, for the helpers newer than that check, the `key=value` hash
//! arguments it takes), so a cookbook is checked when it is pushed, not
//! when a node renders it.
//! Helpers that can multiply their input (`join`, `indent`, `replace`,
//! `addresses`) refuse a result over [`MAX_OUTPUT_BYTES`] before building it.

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, ScopedJson, handlebars_helper,
};
use serde_json::Value;

use super::output::MAX_OUTPUT_BYTES;

/// Where a helper may stand: `{{#name}}…{{/name}}`, `{{name …}}`, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    Block,
    Inline,
    Either,
}

/// What a helper takes.
#[derive(Debug)]
pub(super) struct Signature {
    pub name: &'static str,
    pub fewest: usize,
    /// `usize::MAX`: any number.
    pub most: usize,
    /// The arguments, for messages: `LIST SEP`.
    pub usage: &'static str,
    pub form: Form,
    /// The hash arguments (`key=value`) it takes. `None`: not checked, for
    /// the helpers older than the check, which accepted any and ignored
    /// them; refusing them now would refuse versions already pushed.
    pub hash: Option<&'static [&'static str]>,
}

const fn sig(
    name: &'static str,
    fewest: usize,
    most: usize,
    usage: &'static str,
    form: Form,
) -> Signature {
    Signature {
        name,
        fewest,
        most,
        usage,
        form,
        hash: None,
    }
}

impl Signature {
    /// The hash arguments it takes, and no others.
    const fn hash(self, keys: &'static [&'static str]) -> Signature {
        Signature {
            hash: Some(keys),
            ..self
        }
    }
}

/// Every helper a cm template may call: handlebars' built-ins, then ours.
pub(super) const SIGNATURES: &[Signature] = &[
    sig("if", 1, 1, "VALUE", Form::Block),
    sig("unless", 1, 1, "VALUE", Form::Block),
    sig("each", 1, 1, "LIST", Form::Block),
    sig("with", 1, 1, "VALUE", Form::Block),
    sig("lookup", 2, 2, "VALUE KEY", Form::Either),
    sig("raw", 0, 0, "", Form::Block),
    sig("log", 1, usize::MAX, "VALUE...", Form::Inline),
    sig("eq", 2, 2, "A B", Form::Either),
    sig("ne", 2, 2, "A B", Form::Either),
    sig("gt", 2, 2, "A B", Form::Either),
    sig("gte", 2, 2, "A B", Form::Either),
    sig("lt", 2, 2, "A B", Form::Either),
    sig("lte", 2, 2, "A B", Form::Either),
    sig("and", 2, usize::MAX, "A B...", Form::Either),
    sig("or", 2, usize::MAX, "A B...", Form::Either),
    sig("not", 1, 1, "VALUE", Form::Either),
    sig("len", 1, 1, "VALUE", Form::Inline),
    sig("join", 2, 2, "LIST SEP", Form::Inline),
    sig("default", 2, 2, "VALUE FALLBACK", Form::Inline),
    sig("json", 1, 1, "VALUE", Form::Inline),
    sig("indent", 2, 2, "N TEXT", Form::Inline),
    sig("shell_quote", 1, 1, "VALUE", Form::Inline),
    sig("add", 2, 2, "A B", Form::Inline),
    sig("sub", 2, 2, "A B", Form::Inline),
    sig("mul", 2, 2, "A B", Form::Inline),
    sig("div", 2, 2, "A B", Form::Inline),
    sig("mod", 2, 2, "A B", Form::Inline),
    sig("min", 2, 2, "A B", Form::Inline),
    sig("max", 2, 2, "A B", Form::Inline),
    sig("upper", 1, 1, "S", Form::Inline),
    sig("lower", 1, 1, "S", Form::Inline),
    sig("replace", 3, 3, "S FROM TO", Form::Inline),
    sig("pad", 2, 2, "NUMBER WIDTH", Form::Inline),
    sig("first", 2, 2, "LIST N", Form::Inline).hash(&[]),
    sig(
        "addresses",
        3,
        3,
        "LIST PORT SEP [reachable=true]",
        Form::Inline,
    )
    .hash(&["reachable"]),
    sig(
        "cassandra_token",
        3,
        3,
        "ORDINAL COUNT PARTITIONER",
        Form::Inline,
    )
    .hash(&[]),
    sig("htdigest", 3, 3, "USER REALM PASSWORD", Form::Inline).hash(&[]),
];

pub(super) fn signature(name: &str) -> Option<&'static Signature> {
    SIGNATURES.iter().find(|s| s.name == name)
}

/// Positional argument `i` of `helper`; a missing variable is an error
/// naming it, as everywhere in strict mode.
pub(super) fn arg<'a>(
    h: &'a Helper<'_>,
    helper: &'static str,
    i: usize,
) -> Result<&'a Value, RenderError> {
    let p = h
        .param(i)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex(helper, i))?;
    if p.is_value_missing() {
        return Err(RenderErrorReason::MissingVariable(p.relative_path().cloned()).into());
    }
    Ok(p.value())
}

/// A helper's own error, its message as written.
pub(super) fn fail(message: String) -> RenderError {
    RenderErrorReason::Other(message).into()
}

/// The error a helper returns instead of building a result past the limit.
pub(super) fn too_large(helper: &str) -> RenderError {
    RenderErrorReason::Other(format!(
        "{helper}: the result would be larger than {} MiB",
        MAX_OUTPUT_BYTES >> 20
    ))
    .into()
}

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
    r.register_helper("pad", Box::new(Pad));
    super::cluster_helpers::register(r);
    super::password_helpers::register(r);
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

handlebars_helper!(join: |list: array, sep: str| {
    let mut out = String::new();
    for (i, item) in list.iter().enumerate() {
        let item = text(item);
        if out.len() + sep.len() + item.len() > MAX_OUTPUT_BYTES {
            return Err(too_large("join"));
        }
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&item);
    }
    out
});
handlebars_helper!(json: |v: Json| serde_json::to_string(v).unwrap_or_default());
handlebars_helper!(indent: |n: u64, s: str| {
    let pad = " ".repeat(n.min(1024) as usize);
    let padded_lines = s.lines().filter(|l| !l.is_empty()).count();
    if s.len().saturating_add(padded_lines.saturating_mul(pad.len())) > MAX_OUTPUT_BYTES {
        return Err(too_large("indent"));
    }
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
handlebars_helper!(replace: |s: str, from: str, to: str| {
    // An empty FROM matches between every two characters.
    let matches = if from.is_empty() { s.chars().count() + 1 } else { s.matches(from).count() };
    let size = (s.len() - matches.saturating_mul(from.len()).min(s.len()))
        .saturating_add(matches.saturating_mul(to.len()));
    if size > MAX_OUTPUT_BYTES {
        return Err(too_large("replace"));
    }
    s.replace(from, to)
});

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
            arg(h, self.0, i)?
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

/// Most digits `pad` pads to: an i64 has at most 19 and a sign.
pub const MAX_PAD_WIDTH: u64 = 20;

/// `{{pad item 3}}` → `007`: an integer zero-padded to WIDTH characters, the
/// sign included (Chef's `"%03d" % i`, Salt's `'%03d'|format(i)`, Puppet's
/// `sprintf('%03d', $i)`). A wider number is left as it is.
struct Pad;

impl HelperDef for Pad {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let arg = |i: usize| arg(h, "pad", i);
        let number = arg(0)?;
        let n = number.as_i64().ok_or_else(|| {
            RenderErrorReason::Other(format!("pad: NUMBER must be an integer, found {number}"))
        })?;
        let width = arg(1)?;
        let w = width
            .as_u64()
            .filter(|w| *w <= MAX_PAD_WIDTH)
            .ok_or_else(|| {
                RenderErrorReason::Other(format!(
                    "pad: WIDTH must be an integer from 0 to {MAX_PAD_WIDTH}, found {width}"
                ))
            })?;
        let padded = format!("{n:0w$}", w = w as usize);
        Ok(ScopedJson::Derived(Value::String(padded)))
    }
}
