//! `when:` conditions: a small, side-effect-free expression language.
//!
//! ```text
//! expr    := or
//! or      := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | compare
//! compare := operand (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in") operand)?
//! operand := path | "string" | 'string' | number | true | false | null
//!          | "[" operand ("," operand)* "]" | "(" expr ")" | "defined(" path ")"
//! path    := ("attrs" | "node" | "cluster" | "cluster_nodes" | "member" | "item") ("." name | "[" integer "]")*
//! ```
//!
//! A path that does not exist is an error (never silently false), except
//! inside `defined(...)`. Truthiness: false, null, 0, "", [] and {} are false.
//! `secrets` is not readable here, so a condition can never leak one.

use std::fmt;

use serde_json::Value;

/// A parsed `when` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    source: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Path(Vec<Segment>),
    Literal(Value),
    List(Vec<Expr>),
    Defined(Vec<Segment>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Op, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

const ROOTS: &[&str] = &[
    "attrs",
    "node",
    "cluster",
    "cluster_nodes",
    "member",
    "item",
];

impl Condition {
    pub fn parse(source: &str) -> Result<Condition, String> {
        let tokens = tokenize(source)?;
        let mut p = Parser { tokens, at: 0 };
        let expr = p.or()?;
        if let Some(t) = p.tokens.get(p.at) {
            return Err(format!("unexpected {t} in condition {source:?}"));
        }
        Ok(Condition {
            source: source.to_string(),
            expr,
        })
    }

    /// Evaluate against a context object with `attrs`, `node`, `cluster` and maybe `item`.
    pub fn eval(&self, ctx: &Value) -> Result<bool, String> {
        eval(&self.expr, ctx)
            .map(|v| truthy(&v))
            .map_err(|e| format!("when {:?}: {e}", self.source))
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64),
    Sym(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => write!(f, "'{s}'"),
            Token::Str(s) => write!(f, "{s:?}"),
            Token::Num(n) => write!(f, "{n}"),
            Token::Sym(s) => write!(f, "'{s}'"),
        }
    }
}

fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        if let Some(sym) = ["==", "!=", "<=", ">="].into_iter().find(|s| *s == two) {
            out.push(Token::Sym(sym));
            i += 2;
            continue;
        }
        if let Some(sym) = ["<", ">", "(", ")", "[", "]", ".", ","]
            .into_iter()
            .find(|s| s.starts_with(c))
        {
            out.push(Token::Sym(sym));
            i += 1;
            continue;
        }
        if c == '"' || c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|&d| d == c)
                .ok_or_else(|| format!("unterminated string in condition {src:?}"))?;
            out.push(Token::Str(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
            continue;
        }
        if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                // A '.' followed by a non-digit ends the number (path after index).
                if chars[i] == '.' && !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    break;
                }
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            out.push(Token::Num(
                text.parse().map_err(|_| format!("bad number {text:?}"))?,
            ));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '-')
            {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
            continue;
        }
        return Err(format!("unexpected character {c:?} in condition {src:?}"));
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn eat_ident(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Ident(w)) if w == word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, sym: &str) -> Result<(), String> {
        match self.next() {
            Some(Token::Sym(s)) if s == sym => Ok(()),
            Some(t) => Err(format!("expected '{sym}', found {t}")),
            None => Err(format!("expected '{sym}' at the end")),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat_ident("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.eat_ident("and") {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat_ident("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, String> {
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Token::Sym("==")) => Op::Eq,
            Some(Token::Sym("!=")) => Op::Ne,
            Some(Token::Sym("<")) => Op::Lt,
            Some(Token::Sym("<=")) => Op::Le,
            Some(Token::Sym(">")) => Op::Gt,
            Some(Token::Sym(">=")) => Op::Ge,
            Some(Token::Ident(w)) if w == "in" => Op::In,
            _ => return Ok(left),
        };
        self.at += 1;
        let right = self.operand()?;
        Ok(Expr::Compare(op, Box::new(left), Box::new(right)))
    }

    fn operand(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Expr::Literal(Value::String(s))),
            Some(Token::Num(n)) => Ok(Expr::Literal(number(n))),
            Some(Token::Sym("(")) => {
                let e = self.or()?;
                self.expect(")")?;
                Ok(e)
            }
            Some(Token::Sym("[")) => {
                let mut items = Vec::new();
                if !matches!(self.peek(), Some(Token::Sym("]"))) {
                    loop {
                        items.push(self.operand()?);
                        if matches!(self.peek(), Some(Token::Sym(","))) {
                            self.at += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.expect("]")?;
                Ok(Expr::List(items))
            }
            Some(Token::Ident(w)) => match w.as_str() {
                "true" => Ok(Expr::Literal(Value::Bool(true))),
                "false" => Ok(Expr::Literal(Value::Bool(false))),
                "null" => Ok(Expr::Literal(Value::Null)),
                "defined" => {
                    self.expect("(")?;
                    let root = match self.next() {
                        Some(Token::Ident(r)) => r,
                        other => {
                            return Err(format!("defined() takes a path, found {}", show(other)));
                        }
                    };
                    let path = self.path(root)?;
                    self.expect(")")?;
                    Ok(Expr::Defined(path))
                }
                _ => Ok(Expr::Path(self.path(w)?)),
            },
            other => Err(format!("expected a value, found {}", show(other))),
        }
    }

    fn path(&mut self, root: String) -> Result<Vec<Segment>, String> {
        if root == "secrets" {
            return Err("secrets cannot be used in conditions".into());
        }
        if !ROOTS.contains(&root.as_str()) {
            return Err(format!(
                "unknown name '{root}': paths start with attrs., node., cluster., cluster_nodes, member. or item"
            ));
        }
        let mut path = vec![Segment::Key(root)];
        loop {
            match self.peek() {
                Some(Token::Sym(".")) => {
                    self.at += 1;
                    match self.next() {
                        Some(Token::Ident(k)) => path.push(Segment::Key(k)),
                        Some(Token::Num(n)) if n.fract() == 0.0 && n >= 0.0 => {
                            path.push(Segment::Index(n as usize))
                        }
                        other => {
                            return Err(format!(
                                "expected a name after '.', found {}",
                                show(other)
                            ));
                        }
                    }
                }
                Some(Token::Sym("[")) => {
                    self.at += 1;
                    match self.next() {
                        Some(Token::Num(n)) if n.fract() == 0.0 && n >= 0.0 => {
                            path.push(Segment::Index(n as usize))
                        }
                        Some(Token::Str(k)) => path.push(Segment::Key(k)),
                        other => return Err(format!("expected an index, found {}", show(other))),
                    }
                    self.expect("]")?;
                }
                _ => return Ok(path),
            }
        }
    }
}

fn show(t: Option<Token>) -> String {
    t.map_or_else(|| "the end".to_string(), |t| t.to_string())
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

fn lookup<'a>(ctx: &'a Value, path: &[Segment]) -> Option<&'a Value> {
    path.iter().try_fold(ctx, |v, seg| match seg {
        Segment::Key(k) => v.get(k),
        Segment::Index(i) => v.get(*i),
    })
}

fn display_path(path: &[Segment]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) if s.is_empty() => s.push_str(k),
            Segment::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Segment::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn eval(e: &Expr, ctx: &Value) -> Result<Value, String> {
    Ok(match e {
        Expr::Literal(v) => v.clone(),
        Expr::Path(p) => lookup(ctx, p).cloned().ok_or_else(|| {
            format!(
                "{} is not defined (use defined(...) to test for it)",
                display_path(p)
            )
        })?,
        Expr::Defined(p) => Value::Bool(lookup(ctx, p).is_some()),
        Expr::List(items) => Value::Array(
            items
                .iter()
                .map(|i| eval(i, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Not(inner) => Value::Bool(!truthy(&eval(inner, ctx)?)),
        Expr::And(a, b) => Value::Bool(truthy(&eval(a, ctx)?) && truthy(&eval(b, ctx)?)),
        Expr::Or(a, b) => Value::Bool(truthy(&eval(a, ctx)?) || truthy(&eval(b, ctx)?)),
        Expr::Compare(op, a, b) => Value::Bool(compare(*op, &eval(a, ctx)?, &eval(b, ctx)?)?),
    })
}

fn compare(op: Op, a: &Value, b: &Value) -> Result<bool, String> {
    use std::cmp::Ordering;
    let ordering = || -> Result<Ordering, String> {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                x.partial_cmp(&y)
                    .ok_or_else(|| "cannot order NaN".to_string())
            }
            (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
            _ => Err(format!(
                "cannot order {a} and {b}: compare numbers with numbers, strings with strings"
            )),
        }
    };
    Ok(match op {
        Op::Eq => loose_eq(a, b),
        Op::Ne => !loose_eq(a, b),
        Op::Lt => ordering()? == Ordering::Less,
        Op::Le => ordering()? != Ordering::Greater,
        Op::Gt => ordering()? == Ordering::Greater,
        Op::Ge => ordering()? != Ordering::Less,
        Op::In => match b {
            Value::Array(items) => items.iter().any(|i| loose_eq(a, i)),
            Value::Object(map) => a.as_str().is_some_and(|k| map.contains_key(k)),
            Value::String(s) => a.as_str().is_some_and(|sub| s.contains(sub)),
            _ => {
                return Err(format!(
                    "'in' needs a list, map or string on its right, found {b}"
                ));
            }
        },
    })
}

/// 1 == 1.0: numbers compare by value, everything else structurally.
fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// false, null, 0, "", [] and {} are false; everything else is true.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({
            "attrs": {"memcached": {"enabled": true, "port": 11211, "tags": ["a", "b"]}, "empty": ""},
            "node": {"os": {"id": "debian", "version_id": "12"}, "memory_mib": 2048},
            "cluster": {"memcached": [{"name": "m1"}]},
        })
    }

    fn when(src: &str) -> Result<bool, String> {
        Condition::parse(src)?.eval(&ctx())
    }

    #[test]
    fn paths_literals_and_operators() {
        assert_eq!(when("attrs.memcached.enabled"), Ok(true));
        assert_eq!(
            when("node.os.id == 'debian' and node.memory_mib >= 1024"),
            Ok(true)
        );
        assert_eq!(when("not attrs.empty"), Ok(true));
        assert_eq!(when("node.os.id in [\"debian\", \"ubuntu\"]"), Ok(true));
        assert_eq!(when("'a' in attrs.memcached.tags"), Ok(true));
        assert_eq!(when("cluster.memcached[0].name == 'm1' or false"), Ok(true));
        assert_eq!(when("attrs.memcached.port != 11211"), Ok(false));
        assert_eq!(when("(true or false) and not (1 > 2)"), Ok(true));
        assert_eq!(when("defined(attrs.nope)"), Ok(false));
    }

    #[test]
    fn missing_path_is_an_error_not_false() {
        let err = when("attrs.memcached.enabeld").unwrap_err();
        assert!(
            err.contains("attrs.memcached.enabeld is not defined"),
            "{err}"
        );
    }

    #[test]
    fn bad_syntax_and_secrets_are_refused_at_parse() {
        assert!(Condition::parse("attrs.x ==").is_err());
        assert!(Condition::parse("secrets.db_password == 'x'").is_err());
        assert!(Condition::parse("foo.bar").is_err());
        assert!(Condition::parse("attrs.x = 1").is_err());
        assert!(Condition::parse("'open").is_err());
    }

    #[test]
    fn ordering_mixed_types_is_an_error() {
        assert!(when("node.os.version_id > 11").is_err());
    }
}
