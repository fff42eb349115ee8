//! The cluster helpers (`cluster_helpers.rs`), rendered as a node renders
//! them, and checked as a push checks them.

use super::cluster_helpers::{Partitioner, cassandra_token};
use super::*;
use serde_json::json;

/// A cluster view as the server sends it: members sorted by ordinal.
fn ctx() -> Context {
    let member = |name: &str, ordinal: u32, address: &str, reachable: bool| {
        json!({
            "name": name, "ordinal": ordinal, "address": address, "zone": "us-east-1a",
            "reachable": reachable, "state": "active",
            "facts": {"memory_mb": 4096, "cpus": 2, "os": "debian 12"},
        })
    };
    Context::wraps(json!({
        "cluster": {
            "cassandra": [
                member("cass-1", 0, "10.0.0.5", true),
                member("cass-2", 1, "10.0.0.6", true),
                member("cass-3", 2, "fd00::7", true),
                member("cass-4", 3, "10.0.0.8", true),
            ],
            "memcached": [
                member("m1", 0, "10.0.0.1", true),
                member("m2", 1, "fd00::1", false),
                {"name": "m3", "address": "10.0.0.3"},
            ],
            "web": [],
        },
        "attrs": {"l": [1, 2, 3], "port": "11211", "yes": true, "text": "x"},
        "node": {"ordinal": 2},
    }))
    .unwrap()
}

fn render(text: &str) -> Result<String, TemplateError> {
    Templates::new().render_str(text, &ctx())
}

fn error(text: &str) -> String {
    render(text).unwrap_err().message
}

#[test]
fn first_takes_the_first_n_items() {
    assert_eq!(
        render("{{#each (first cluster.cassandra 3)}}{{name}}={{address}} {{/each}}").unwrap(),
        "cass-1=10.0.0.5 cass-2=10.0.0.6 cass-3=fd00::7 "
    );
    assert_eq!(render("{{join (first attrs.l 2) \",\"}}").unwrap(), "1,2");
    assert_eq!(
        render("{{join (first attrs.l 10) \",\"}}").unwrap(),
        "1,2,3"
    );
    assert_eq!(render("{{len (first attrs.l 0)}}").unwrap(), "0");
    assert_eq!(render("{{len (first cluster.web 3)}}").unwrap(), "0");
    // join writes a member as JSON: addresses is the helper for members.
    assert!(
        render("{{join (first cluster.cassandra 1) \",\"}}")
            .unwrap()
            .starts_with("{\"address\":\"10.0.0.5\"")
    );
    assert_eq!(
        error("{{len (first attrs.l -1)}}"),
        "first: N must be a non-negative integer, found -1"
    );
    assert_eq!(
        error("{{len (first attrs.l \"2\")}}"),
        "first: N must be a non-negative integer, found \"2\""
    );
    assert_eq!(
        error("{{len (first attrs.l 1.5)}}"),
        "first: N must be a non-negative integer, found 1.5"
    );
    assert_eq!(
        error("{{len (first attrs 1)}}"),
        "first: LIST must be a list, found a map"
    );
    assert!(error("{{len (first cluster.nope 1)}}").contains("cluster.nope"));
}

#[test]
fn addresses_joins_members_with_a_port_and_ipv6_in_brackets() {
    assert_eq!(
        render("{{addresses cluster.memcached 11211 \",\"}}").unwrap(),
        "10.0.0.1:11211,[fd00::1]:11211,10.0.0.3:11211"
    );
    assert_eq!(
        render("{{addresses cluster.memcached attrs.port \" \"}}").unwrap(),
        "10.0.0.1:11211 [fd00::1]:11211 10.0.0.3:11211"
    );
    assert_eq!(
        render("{{addresses cluster.memcached \"\" \",\"}}").unwrap(),
        "10.0.0.1,fd00::1,10.0.0.3"
    );
    assert_eq!(
        render("{{addresses cluster.memcached 1 \"\"}}").unwrap(),
        "10.0.0.1:1[fd00::1]:110.0.0.3:1"
    );
    assert_eq!(
        render("[{{addresses cluster.web 80 \",\"}}]").unwrap(),
        "[]"
    );
    // Cassandra's seeds: the first three, no port.
    assert_eq!(
        render("seeds: \"{{addresses (first cluster.cassandra 3) \"\" \",\"}}\"").unwrap(),
        "seeds: \"10.0.0.5,10.0.0.6,fd00::7\""
    );
    // Zone ids and addresses already in brackets.
    let c = Context::wraps(json!({"l": [{"address": "fe80::1%eth0"}, {"address": "[fd00::2]"}]}))
        .unwrap();
    assert_eq!(
        Templates::new()
            .render_str("{{addresses l 53 \",\"}}", &c)
            .unwrap(),
        "[fe80::1%eth0]:53,[fd00::2]:53"
    );
}

#[test]
fn addresses_reachable_true_keeps_members_not_marked_unreachable() {
    // m2 has reachable: false; m3 does not say, and is kept.
    assert_eq!(
        render("{{addresses cluster.memcached 11211 \",\" reachable=true}}").unwrap(),
        "10.0.0.1:11211,10.0.0.3:11211"
    );
    assert_eq!(
        render("{{addresses cluster.memcached 11211 \",\" reachable=attrs.yes}}").unwrap(),
        "10.0.0.1:11211,10.0.0.3:11211"
    );
    assert_eq!(
        render("{{addresses cluster.memcached \"\" \",\" reachable=false}}").unwrap(),
        "10.0.0.1,fd00::1,10.0.0.3"
    );
    assert_eq!(
        error("{{addresses cluster.memcached 1 \",\" reachable=\"yes\"}}"),
        "addresses: reachable must be true or false, found \"yes\""
    );
    assert!(
        error("{{addresses cluster.memcached 1 \",\" reachable=attrs.nope}}")
            .contains("attrs.nope")
    );
}

#[test]
fn addresses_refuses_bad_ports_and_members_naming_them() {
    for port in [
        "0", "65536", "-1", "\"0\"", "\"80a\"", "\" 80\"", "1.5", "true",
    ] {
        let err = error(&format!("{{{{addresses cluster.memcached {port} \",\"}}}}"));
        assert!(
            err.starts_with(
                "addresses: PORT must be a port from 1 to 65535, or \"\" for none, found "
            ),
            "{port}: {err}"
        );
    }
    assert!(render("{{addresses cluster.memcached 65535 \",\"}}").is_ok());
    assert!(render("{{addresses cluster.memcached \"1\" \",\"}}").is_ok());
    assert_eq!(
        error("{{addresses attrs.text 1 \",\"}}"),
        "addresses: LIST must be a list of members, found \"x\""
    );
    assert_eq!(
        error("{{addresses cluster.memcached 1 2}}"),
        "addresses: SEP must be a string, found 2"
    );
    let broken = |list: serde_json::Value| {
        let c = Context::wraps(json!({ "l": list })).unwrap();
        Templates::new()
            .render_str("{{addresses l 1 \",\" reachable=true}}", &c)
            .unwrap_err()
            .message
    };
    assert_eq!(
        broken(json!([{"address": "10.0.0.1"}, {"name": "n2", "reachable": false}])),
        "addresses: member 1 (n2) has no address"
    );
    // A node without an IP (`address: null` in the view) is left out, so
    // one such member does not break its peers' files.
    let c = Context::wraps(json!({ "l": [{"address": null}, {"address": "10.0.0.2"}] })).unwrap();
    assert_eq!(
        Templates::new()
            .render_str("{{addresses l 1 \",\"}}", &c)
            .unwrap(),
        "10.0.0.2:1"
    );
    assert_eq!(
        broken(json!([{"address": 10}])),
        "addresses: member 0 has address 10, not a string"
    );
    assert_eq!(
        broken(json!([{"address": "10.0.0.1"}, "10.0.0.2"])),
        "addresses: member 1 is \"10.0.0.2\", not a map with an address"
    );
}

#[test]
fn addresses_refuses_a_result_past_the_limit() {
    let c = Context::wraps(
        json!({"l": [{"address": "10.0.0.1"}, {"address": "10.0.0.2"}],
        "sep": "x".repeat(MAX_OUTPUT_BYTES)}),
    )
    .unwrap();
    let err = Templates::new()
        .render_str("{{addresses l 1 sep}}", &c)
        .unwrap_err();
    assert_eq!(
        err.message,
        "addresses: the result would be larger than 16 MiB"
    );
}

/// Computed apart from the code (Python's integers:
/// `(2**127 // n) * i` and `(2**64 // n) * i - 2**63`).
const GOLDEN: &[(u64, u64, &str, &str)] = &[
    (1, 0, "0", "-9223372036854775808"),
    (2, 0, "0", "-9223372036854775808"),
    (2, 1, "85070591730234615865843651857942052864", "0"),
    (3, 0, "0", "-9223372036854775808"),
    (
        3,
        1,
        "56713727820156410577229101238628035242",
        "-3074457345618258603",
    ),
    (
        3,
        2,
        "113427455640312821154458202477256070484",
        "3074457345618258602",
    ),
    (6, 0, "0", "-9223372036854775808"),
    (
        6,
        1,
        "28356863910078205288614550619314017621",
        "-6148914691236517206",
    ),
    (
        6,
        2,
        "56713727820156410577229101238628035242",
        "-3074457345618258604",
    ),
    (6, 3, "85070591730234615865843651857942052863", "-2"),
    (
        6,
        4,
        "113427455640312821154458202477256070484",
        "3074457345618258600",
    ),
    (
        6,
        5,
        "141784319550391026443072753096570088105",
        "6148914691236517202",
    ),
];

#[test]
fn cassandra_token_matches_the_golden_values() {
    for &(n, i, random, murmur3) in GOLDEN {
        assert_eq!(
            cassandra_token(i, n, Partitioner::Random),
            random,
            "{n} {i}"
        );
        assert_eq!(
            cassandra_token(i, n, Partitioner::Murmur3),
            murmur3,
            "{n} {i}"
        );
        for (name, want) in [
            ("RandomPartitioner", random),
            ("org.apache.cassandra.dht.RandomPartitioner", random),
            ("Murmur3Partitioner", murmur3),
            ("org.apache.cassandra.dht.Murmur3Partitioner", murmur3),
        ] {
            let text = format!("{{{{cassandra_token {i} {n} \"{name}\"}}}}");
            assert_eq!(render(&text).unwrap(), want, "{text}");
        }
    }
    // The largest ring there can be, without overflow.
    assert_eq!(
        cassandra_token(u64::MAX - 1, u64::MAX, Partitioner::Murmur3),
        "9223372036854775806"
    );
    assert_eq!(
        cassandra_token(u64::MAX - 1, u64::MAX, Partitioner::Random),
        "170141183460469231713240559642174554112"
    );
    assert_eq!(
        render("initial_token: {{cassandra_token node.ordinal (len cluster.cassandra) \"Murmur3Partitioner\"}}")
            .unwrap(),
        "initial_token: 0"
    );
}

#[test]
fn cassandra_token_refuses_what_has_no_token() {
    let cases = [
        (
            "{{cassandra_token 3 3 \"RandomPartitioner\"}}",
            "cassandra_token: ORDINAL must be less than COUNT (ordinals start at 0), found ORDINAL 3 and COUNT 3",
        ),
        (
            "{{cassandra_token 0 0 \"RandomPartitioner\"}}",
            "cassandra_token: COUNT must be at least 1, found 0",
        ),
        (
            "{{cassandra_token -1 3 \"RandomPartitioner\"}}",
            "cassandra_token: ORDINAL must be a non-negative integer, found -1",
        ),
        (
            "{{cassandra_token 1 -3 \"RandomPartitioner\"}}",
            "cassandra_token: COUNT must be a non-negative integer, found -3",
        ),
        (
            "{{cassandra_token \"1\" 3 \"RandomPartitioner\"}}",
            "cassandra_token: ORDINAL must be a non-negative integer, found \"1\"",
        ),
        (
            "{{cassandra_token 1 3 \"ByteOrderedPartitioner\"}}",
            "cassandra_token: PARTITIONER must be RandomPartitioner or Murmur3Partitioner (or org.apache.cassandra.dht.RandomPartitioner, org.apache.cassandra.dht.Murmur3Partitioner), found \"ByteOrderedPartitioner\"",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(error(text), message, "{text}");
    }
    assert!(error("{{cassandra_token 1 3 \"murmur3partitioner\"}}").contains("found \"murmur3"));
    assert!(error("{{cassandra_token 1 3 3}}").contains("found 3"));
}

#[test]
fn cluster_helpers_are_checked_at_push() {
    let refused = |text: &str| check_inline(text).unwrap_err().message;
    assert_eq!(
        refused("{{#each (first cluster.cassandra)}}x{{/each}}"),
        "line 1 column 1: helper first takes 2 arguments (first LIST N), found 1"
    );
    assert!(refused("{{addresses cluster.m 11211}}").contains(
        "helper addresses takes 3 arguments (addresses LIST PORT SEP [reachable=true]), found 2"
    ));
    assert!(
        refused("{{cassandra_token 0 3}}").contains(
            "helper cassandra_token takes 3 arguments (cassandra_token ORDINAL COUNT PARTITIONER), found 2"
        )
    );
    assert!(refused("{{cassandra_token 0 3 \"R\" 4}}").contains("found 4"));
    assert!(refused("{{#first l 1}}x{{/first}}").contains("not a block helper"));
    // The new helpers take the hash arguments they list, and no others.
    assert!(check_inline("{{addresses cluster.m 11211 \",\" reachable=true}}").is_ok());
    assert!(
        refused("{{addresses cluster.m 11211 \",\" reachable=true reachble=true}}").contains(
            "helper addresses does not take reachble=… (addresses LIST PORT SEP [reachable=true])"
        )
    );
    assert!(
        refused("{{join (first l 2 reachable=true) \",\"}}")
            .contains("helper first does not take reachable=… (first LIST N)")
    );
    assert!(refused("{{cassandra_token 0 3 \"R\" vnodes=4}}").contains("vnodes=…"));
    // Older helpers accepted and ignored any: still accepted.
    assert!(check_inline("{{join l \",\" z=1}}{{#if x includeZero=true}}y{{/if}}").is_ok());
    let used = helpers_called("{{addresses (first l 2) \"\" \",\"}}{{cassandra_token 0 1 \"R\"}}");
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["addresses", "cassandra_token", "first"]
    );
}

#[test]
fn the_cassandra_example_of_the_docs_renders_as_they_show() {
    // docs/cookbooks.md, "Cluster helpers".
    let text = r#"{{!-- cookbooks/cassandra/templates/cassandra.yaml.hbs --}}
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{{addresses (first cluster.cassandra 3) "" ","}}"
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
initial_token: {{cassandra_token member.cassandra.ordinal attrs.cassandra.ring_size "Murmur3Partitioner"}}
"#;
    let addresses = [
        "10.0.0.5",
        "10.0.0.6",
        "fd00::7",
        "10.0.0.8",
        "10.0.0.9",
        "10.0.0.10",
    ];
    let members: Vec<_> = addresses
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"name": format!("cass-{}", i + 1), "ordinal": i, "address": a, "reachable": true}))
        .collect();
    let c =
        Context::wraps(json!({"cluster": {"cassandra": members}, "member": {"cassandra": {"ordinal": 2}}, "attrs": {"cassandra": {"ring_size": 6}}}))
            .unwrap();
    let mut t = Templates::new();
    t.add_cookbook(
        "cassandra",
        &BTreeMap::from([("cassandra.yaml.hbs".to_string(), text.to_string())]),
    )
    .unwrap();
    assert_eq!(
        t.render("cassandra/cassandra.yaml.hbs", &c).unwrap(),
        r#"seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "10.0.0.5,10.0.0.6,fd00::7"
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
initial_token: -3074457345618258604
"#
    );
}
