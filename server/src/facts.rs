//! Facts a node reports are checked before they can reach any other node's
//! plan (the cluster view): addresses must parse, names must be safe. A node
//! changing its facts can never change its identity or roles.

use serde_json::{Map, Value};

/// Largest facts document accepted from a node.
pub const MAX_FACTS_BYTES: usize = 256 * 1024;

/// Parse and check a node's facts; returns the object to store.
pub fn validate(json: &str) -> Result<Map<String, Value>, String> {
    if json.len() > MAX_FACTS_BYTES {
        return Err(format!("facts larger than {} KiB", MAX_FACTS_BYTES / 1024));
    }
    if json.trim().is_empty() {
        return Ok(Map::new());
    }
    let v: Value = serde_json::from_str(json).map_err(|e| format!("facts are not JSON: {e}"))?;
    let Value::Object(map) = v else {
        return Err("facts must be a JSON object".into());
    };
    for key in ["ipaddress", "ip6address"] {
        if let Some(a) = map.get(key).filter(|a| !a.is_null()) {
            let ok = a
                .as_str()
                .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok());
            if !ok {
                return Err(format!("{key}: {a} is not an IP address"));
            }
        }
    }
    for key in ["hostname", "fqdn"] {
        if let Some(h) = map.get(key).filter(|h| !h.is_null()) {
            let ok = h.as_str().is_some_and(is_hostname);
            if !ok {
                return Err(format!("{key}: {h} is not a host name"));
            }
        }
    }
    if let Some(list) = map.get("interfaces").and_then(Value::as_array) {
        for iface in list {
            for addr in iface
                .get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(a) = addr.get("address")
                    && a.as_str()
                        .is_none_or(|s| s.parse::<std::net::IpAddr>().is_err())
                {
                    return Err(format!("interfaces: {a} is not an IP address"));
                }
            }
        }
    }
    Ok(map)
}

/// RFC 1123 host names: labels of letters, digits and '-', dots between.
pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_facts_pass_and_hostile_ones_do_not() {
        assert!(validate(r#"{"hostname":"web-1","ipaddress":"10.0.0.5","interfaces":[{"addresses":[{"address":"fe80::1"}]}]}"#).is_ok());
        assert!(validate(r#"{"ipaddress":"10.0.0.5; rm -rf /"}"#).is_err());
        assert!(validate(r#"{"hostname":"web 1"}"#).is_err());
        assert!(validate(r#"{"hostname":"$(reboot)"}"#).is_err());
        assert!(validate(r#"{"interfaces":[{"addresses":[{"address":"<script>"}]}]}"#).is_err());
        assert!(validate("[1]").is_err());
        assert!(validate(&"x".repeat(MAX_FACTS_BYTES + 1)).is_err());
    }
}
