//! Helpers for the cluster view, new in cm-agent 0.3.0. `cluster.<role>` is
//! a list of members sorted by ordinal, each a map like `{name, ordinal,
//! address, zone, reachable, state, facts}`:
//!
//! - `first LIST N`: the first N items, for seeds (`{{#each (first
//!   cluster.cassandra 3)}}`).
//! - `addresses LIST PORT SEP [reachable=true]`: the members' addresses
//!   with a port, IPv6 in brackets, as one string (memcached's server list,
//!   Cassandra's seeds). `join` would write each member as JSON.
//! - `cassandra_token ORDINAL COUNT PARTITIONER`: a node's initial token in
//!   a ring of COUNT evenly spaced ones.
//!
//! Their signatures are in [`super::helpers::SIGNATURES`].

use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson,
};
use serde_json::Value;

use super::helpers::{arg, fail, too_large};
use super::output::MAX_OUTPUT_BYTES;

pub(super) fn register(r: &mut Handlebars<'static>) {
    r.register_helper("first", Box::new(First));
    r.register_helper("addresses", Box::new(Addresses));
    r.register_helper("cassandra_token", Box::new(CassandraToken));
}

/// A value for a message: scalars as written, lists and maps by their kind
/// (a whole cluster list would drown the message).
fn shown(v: &Value) -> String {
    match v {
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a map".to_string(),
        scalar => scalar.to_string(),
    }
}

/// `{{#each (first cluster.cassandra 3)}}`: the first N items of LIST, all
/// of them when it is shorter.
struct First;

impl HelperDef for First {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let list = arg(h, "first", 0)?;
        let Value::Array(items) = list else {
            return Err(fail(format!(
                "first: LIST must be a list, found {}",
                shown(list)
            )));
        };
        let n = arg(h, "first", 1)?;
        let count = n.as_u64().ok_or_else(|| {
            fail(format!(
                "first: N must be a non-negative integer, found {}",
                shown(n)
            ))
        })?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let taken = items.iter().take(count).cloned().collect();
        Ok(ScopedJson::Derived(Value::Array(taken)))
    }
}

/// `{{addresses cluster.memcached 11211 ","}}` → `10.0.0.5:11211,[fd00::1]:11211`.
struct Addresses;

impl HelperDef for Addresses {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let list = arg(h, "addresses", 0)?;
        let Value::Array(members) = list else {
            return Err(fail(format!(
                "addresses: LIST must be a list of members, found {}",
                shown(list)
            )));
        };
        let port = port(arg(h, "addresses", 1)?)?;
        let sep = arg(h, "addresses", 2)?;
        let Value::String(sep) = sep else {
            return Err(fail(format!(
                "addresses: SEP must be a string, found {}",
                shown(sep)
            )));
        };
        let only_reachable = match h.hash_get("reachable") {
            None => false,
            Some(p) if p.is_value_missing() => {
                return Err(RenderErrorReason::MissingVariable(p.relative_path().cloned()).into());
            }
            Some(p) => p.value().as_bool().ok_or_else(|| {
                fail(format!(
                    "addresses: reachable must be true or false, found {}",
                    shown(p.value())
                ))
            })?,
        };
        let mut out = String::new();
        let mut written = 0;
        for (i, member) in members.iter().enumerate() {
            // Every member is checked, kept or not: a broken list fails the
            // same way whichever members are reachable.
            let Some(address) = address(i, member)? else {
                continue;
            };
            // Missing or anything but false counts as reachable: a list
            // written by hand for `cm-agent apply` need not say it.
            if only_reachable && member.get("reachable") == Some(&Value::Bool(false)) {
                continue;
            }
            let item = match port {
                Some(p) if is_ipv6(address) => format!("[{address}]:{p}"),
                Some(p) => format!("{address}:{p}"),
                None => address.to_string(),
            };
            if out.len() + sep.len() + item.len() > MAX_OUTPUT_BYTES {
                return Err(too_large("addresses"));
            }
            if written > 0 {
                out.push_str(sep);
            }
            out.push_str(&item);
            written += 1;
        }
        Ok(ScopedJson::Derived(Value::String(out)))
    }
}

/// PORT: 1 to 65535, as a number or a string of digits; `""` for none.
fn port(v: &Value) -> Result<Option<u16>, RenderError> {
    let port = match v {
        Value::String(s) if s.is_empty() => return Ok(None),
        Value::String(s) if s.bytes().all(|b| b.is_ascii_digit()) => s.parse::<u16>().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    };
    match port {
        Some(p) if p > 0 => Ok(Some(p)),
        _ => Err(fail(format!(
            "addresses: PORT must be a port from 1 to 65535, or \"\" for none, found {}",
            shown(v)
        ))),
    }
}

/// Member `i`'s `address` (`None`: `null`, a node without an IP, left
/// out), or an error naming the member.
fn address(i: usize, member: &Value) -> Result<Option<&str>, RenderError> {
    let Value::Object(fields) = member else {
        return Err(fail(format!(
            "addresses: member {i} is {}, not a map with an address",
            shown(member)
        )));
    };
    let who = match fields.get("name").and_then(Value::as_str) {
        Some(name) => format!("member {i} ({name})"),
        None => format!("member {i}"),
    };
    match fields.get("address") {
        Some(Value::String(a)) => Ok(Some(a)),
        Some(Value::Null) => Ok(None),
        None => Err(fail(format!("addresses: {who} has no address"))),
        Some(other) => Err(fail(format!(
            "addresses: {who} has address {}, not a string",
            shown(other)
        ))),
    }
}

/// An IPv6 address takes brackets before a port. Only IPv6 has a colon
/// (hostnames and IPv4 do not), zone ids (`fe80::1%eth0`) included, which
/// `Ipv6Addr` does not parse; one already in brackets is left as it is.
fn is_ipv6(address: &str) -> bool {
    address.contains(':') && !address.starts_with('[')
}

/// Cassandra's token ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Partitioner {
    /// Tokens 0 to 2^127.
    Random,
    /// Tokens -2^63 to 2^63 - 1.
    Murmur3,
}

impl Partitioner {
    /// The short name or the class name cassandra.yaml writes.
    fn named(name: &str) -> Option<Partitioner> {
        match name
            .strip_prefix("org.apache.cassandra.dht.")
            .unwrap_or(name)
        {
            "RandomPartitioner" => Some(Partitioner::Random),
            "Murmur3Partitioner" => Some(Partitioner::Murmur3),
            _ => None,
        }
    }
}

/// The initial token of node `ordinal` of `count` evenly spaced in the
/// partitioner's range, in decimal: `(2^127 / count) * ordinal` for
/// RandomPartitioner, `(2^64 / count) * ordinal - 2^63` for Murmur3.
/// Division first, as in the formula Cassandra's documentation gives, so
/// the tokens are the ones existing rings were set up with. The caller
/// checks `ordinal < count`, so neither product reaches 2^127 or 2^64.
pub(super) fn cassandra_token(ordinal: u64, count: u64, partitioner: Partitioner) -> String {
    match partitioner {
        Partitioner::Random => {
            ((1u128 << 127) / u128::from(count) * u128::from(ordinal)).to_string()
        }
        Partitioner::Murmur3 => {
            ((1i128 << 64) / i128::from(count) * i128::from(ordinal) - (1i128 << 63)).to_string()
        }
    }
}

/// `initial_token: {{cassandra_token ordinal 6 "Murmur3Partitioner"}}`.
struct CassandraToken;

impl HelperDef for CassandraToken {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let whole = |i: usize, what: &str| -> Result<u64, RenderError> {
            let v = arg(h, "cassandra_token", i)?;
            v.as_u64().ok_or_else(|| {
                fail(format!(
                    "cassandra_token: {what} must be a non-negative integer, found {}",
                    shown(v)
                ))
            })
        };
        let ordinal = whole(0, "ORDINAL")?;
        let count = whole(1, "COUNT")?;
        if count == 0 {
            return Err(fail(
                "cassandra_token: COUNT must be at least 1, found 0".to_string(),
            ));
        }
        if ordinal >= count {
            return Err(fail(format!(
                "cassandra_token: ORDINAL must be less than COUNT (ordinals start at 0), found ORDINAL {ordinal} and COUNT {count}"
            )));
        }
        let name = arg(h, "cassandra_token", 2)?;
        let partitioner = name.as_str().and_then(Partitioner::named).ok_or_else(|| {
            fail(format!(
                "cassandra_token: PARTITIONER must be RandomPartitioner or Murmur3Partitioner (or org.apache.cassandra.dht.RandomPartitioner, org.apache.cassandra.dht.Murmur3Partitioner), found {}",
                shown(name)
            ))
        })?;
        let token = cassandra_token(ordinal, count, partitioner);
        Ok(ScopedJson::Derived(Value::String(token)))
    }
}
