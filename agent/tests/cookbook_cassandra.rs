//! Golden tests of the cassandra cookbook: seeds for rings of 1, 2, 3 and 6
//! nodes, single-token mode over a fixed ring size, a replacement booted
//! with the address of the node it replaces and never its own seed, the
//! heap from the memory fact,
//! what restarts a running node, and what `install: none` leaves out.

mod support;

use support::golden::{Inputs, members, rendered, resources};

const YAML: &str = "/etc/cassandra/cassandra.yaml";
const RESTART: &str = "/etc/cassandra/cm-restart-inputs.yaml";
const DEFAULT: &str = "/etc/default/cassandra";

fn ring(n: usize) -> String {
    format!("cassandra:\n{}", members("cass", n, &[]))
}

fn member(ordinal: usize) -> String {
    format!("cassandra: {{ordinal: {ordinal}}}\n")
}

/// `cassandra.apt_key` set: an armored key block (not checked further here).
const APT: &str = "cassandra:\n  apt_key: \"-----BEGIN PGP PUBLIC KEY BLOCK-----\\nmQINBF\\n-----END PGP PUBLIC KEY BLOCK-----\\n\"\n";

const SINGLE: &str = "cassandra:\n  tokens: single\n  ring_size: 6\n";

/// The value of `key: ` in a rendered file.
fn value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in\n{text}"))
        .trim()
}

#[test]
fn a_ring_of_one_seeds_itself_with_vnodes() {
    // The node of agent/tests/fixtures/node-4g.yaml, alone in the ring.
    let cluster = "cassandra:\n  - {name: cache-1, ordinal: 0, address: 10.0.1.15, reachable: true, state: active}\n";
    let inputs = Inputs {
        cluster: Some(cluster),
        member: Some("cassandra: {ordinal: 0}\n"),
        ..Inputs::default()
    };
    let yaml = rendered("cassandra", &inputs, YAML);
    insta::assert_snapshot!(yaml);
    assert!(!yaml.contains("initial_token:"), "vnodes: no token");
    assert_eq!(value(&yaml, "num_tokens:"), "16");
    assert_eq!(
        value(&yaml, "listen_address:"),
        "10.0.1.15",
        "its own address"
    );
    assert_eq!(value(&yaml, "- seeds:"), "\"10.0.1.15:7000\"");
}

#[test]
fn the_seeds_are_the_first_seed_count_members_of_any_ring() {
    for (n, seeds) in [
        (1, "10.0.2.1:7000"),
        (2, "10.0.2.1:7000,10.0.2.2:7000"),
        (3, "10.0.2.1:7000,10.0.2.2:7000"),
        (6, "10.0.2.1:7000,10.0.2.2:7000"),
    ] {
        let cluster = ring(n);
        let inputs = Inputs {
            cluster: Some(&cluster),
            ..Inputs::default()
        };
        let yaml = rendered("cassandra", &inputs, YAML);
        assert_eq!(
            value(&yaml, "- seeds:"),
            format!("\"{seeds}\""),
            "{n} nodes"
        );
    }
    let cluster = ring(6);
    let three = Inputs {
        cluster: Some(&cluster),
        attributes: Some("cassandra:\n  seed_count: 3\n"),
        ..Inputs::default()
    };
    let yaml = rendered("cassandra", &three, YAML);
    assert_eq!(
        value(&yaml, "- seeds:"),
        "\"10.0.2.1:7000,10.0.2.2:7000,10.0.2.3:7000\""
    );
}

#[test]
fn single_token_mode_spaces_tokens_over_the_ring_size_not_the_member_count() {
    let token = |n: usize, ordinal: usize| {
        let cluster = ring(n);
        let member = member(ordinal);
        let inputs = Inputs {
            cluster: Some(&cluster),
            member: Some(&member),
            attributes: Some(SINGLE),
            ..Inputs::default()
        };
        let yaml = rendered("cassandra", &inputs, YAML);
        assert_eq!(value(&yaml, "num_tokens:"), "1");
        value(&yaml, "initial_token:").parse::<i128>().unwrap()
    };
    let six: Vec<i128> = (0..6).map(|o| token(6, o)).collect();
    assert_eq!(
        six[0],
        i128::from(i64::MIN),
        "Murmur3's ring starts at -2^63"
    );
    let step = six[1] - six[0];
    assert!(
        six.windows(2).all(|w| w[1] - w[0] == step),
        "evenly spaced: {six:?}"
    );
    assert_eq!(step, (1i128 << 64) / 6);
    // Two or three live members keep the tokens of their ordinals.
    assert_eq!(token(2, 1), six[1]);
    assert_eq!(token(3, 2), six[2]);
    assert_eq!(token(1, 0), six[0]);
}

#[test]
fn a_replacement_boots_with_the_address_of_the_node_it_replaces() {
    let cluster = ring(3);
    let fresh = Inputs {
        cluster: Some(&cluster),
        member: Some("cassandra: {ordinal: 1}\n"),
        ..Inputs::default()
    };
    let default = rendered("cassandra", &fresh, DEFAULT);
    insta::assert_snapshot!(default);
    assert!(!default.contains("replace_address"));
    // The tarball's own conf/ would hold another rack file.
    assert!(default.contains(
        "-Dcassandra-rackdc.properties=file:///etc/cassandra/cassandra-rackdc.properties"
    ));

    let replacing = Inputs {
        member: Some("cassandra: {ordinal: 1, replaces: {name: cass-old, address: 10.0.9.7}}\n"),
        ..fresh
    };
    let default = rendered("cassandra", &replacing, DEFAULT);
    assert!(
        default.contains("-Dcassandra.replace_address_first_boot=10.0.9.7\"\n"),
        "{default}"
    );
    // A departed node without an address cannot be replaced by address.
    let unknown = Inputs {
        member: Some("cassandra: {ordinal: 1, replaces: {name: cass-old, address: null}}\n"),
        ..fresh
    };
    let default = rendered("cassandra", &unknown, DEFAULT);
    assert!(!default.contains("replace_address"), "{default}");
}

#[test]
fn a_replacement_is_never_its_own_seed() {
    let seeds = |n: usize, ordinal: usize, seed_count: usize, replaces: bool| {
        let cluster = ring(n);
        let attributes = format!("cassandra:\n  seed_count: {seed_count}\n");
        let member = match replaces {
            true => format!(
                "cassandra: {{ordinal: {ordinal}, replaces: {{name: cass-old, address: 10.0.9.7}}}}\n"
            ),
            false => member(ordinal),
        };
        let inputs = Inputs {
            cluster: Some(&cluster),
            member: Some(&member),
            attributes: Some(&attributes),
            ..Inputs::default()
        };
        value(&rendered("cassandra", &inputs, YAML), "- seeds:").to_string()
    };
    // The first seed's replacement: the next two members.
    assert_eq!(seeds(6, 0, 2, true), "\"10.0.2.2:7000,10.0.2.3:7000\"");
    // The second seed's: the first and the third.
    assert_eq!(seeds(6, 1, 2, true), "\"10.0.2.1:7000,10.0.2.3:7000\"");
    // A replacement past the seeds lists them as every node does.
    assert_eq!(seeds(6, 4, 2, true), "\"10.0.2.1:7000,10.0.2.2:7000\"");
    // One seed: its replacement's is the member after it.
    assert_eq!(seeds(3, 0, 1, true), "\"10.0.2.2:7000\"");
    assert_eq!(seeds(3, 2, 1, true), "\"10.0.2.1:7000\"");
    // Three of a ring of three: only the two others exist.
    assert_eq!(seeds(3, 2, 3, true), "\"10.0.2.1:7000,10.0.2.2:7000\"");
    assert_eq!(seeds(3, 0, 3, true), "\"10.0.2.2:7000,10.0.2.3:7000\"");
    // Everyone else, the seeds included, lists the first seed_count.
    assert_eq!(seeds(6, 0, 2, false), "\"10.0.2.1:7000,10.0.2.2:7000\"");
    assert_eq!(seeds(6, 1, 2, false), "\"10.0.2.1:7000,10.0.2.2:7000\"");
}

#[test]
fn the_heap_follows_cassandras_rule_unless_set() {
    // 4 GiB and 2 CPUs: a quarter (1 GiB) beats half capped at 1 GiB; new
    // generation 100 MiB per CPU.
    let default = rendered("cassandra", &Inputs::default(), DEFAULT);
    assert!(
        default.contains("export MAX_HEAP_SIZE=\"1024M\"\nexport HEAP_NEWSIZE=\"200M\"\n"),
        "{default}"
    );
    let set = Inputs {
        attributes: Some("cassandra:\n  heap_mb: 600\n"),
        ..Inputs::default()
    };
    let default = rendered("cassandra", &set, DEFAULT);
    assert!(
        default.contains("export MAX_HEAP_SIZE=\"600M\"\nexport HEAP_NEWSIZE=\"150M\"\n"),
        "{default}"
    );
}

#[test]
fn seeds_and_tokens_change_cassandra_yaml_but_never_what_restarts_it() {
    let (two, six) = (ring(2), ring(6));
    // Node 1 of a ring in single-token mode, with more attributes.
    let render = |cluster: &str, more: &str| {
        let member = member(1);
        let attributes = format!("cassandra:\n  tokens: single\n{more}");
        let inputs = Inputs {
            cluster: Some(cluster),
            member: Some(&member),
            attributes: Some(&attributes),
            ..Inputs::default()
        };
        (
            rendered("cassandra", &inputs, YAML),
            rendered("cassandra", &inputs, RESTART),
        )
    };
    let (yaml, restart) = render(&two, "  seed_count: 1\n");
    let (other_seeds, same) = render(&six, "  seed_count: 3\n");
    assert_ne!(yaml, other_seeds);
    assert_eq!(restart, same, "seeds alone: no restart");
    let (other_token, same) = render(&two, "  seed_count: 1\n  ring_size: 12\n");
    assert_ne!(yaml, other_token);
    assert_eq!(restart, same, "initial_token alone: no restart");
    let (_, changed) = render(
        &two,
        "  seed_count: 1\n  settings: {concurrent_reads: 64}\n",
    );
    assert_ne!(restart, changed, "any other setting restarts");
    assert!(changed.contains("concurrent_reads: 64\n"), "{changed}");

    // The service restarts on the restart inputs, never on cassandra.yaml.
    let inputs = Inputs {
        cluster: Some(&two),
        member: Some("cassandra: {ordinal: 0}\n"),
        attributes: Some(APT),
        ..Inputs::default()
    };
    let all = resources("cassandra", &inputs);
    let index = |kind: &str, name: &str| {
        all.iter()
            .position(|r| r.kind.name == kind && r.name == name)
            .unwrap()
    };
    let service = index("service", "cassandra");
    let restarting: Vec<&str> = all
        .iter()
        .filter(|r| {
            r.notifies
                .iter()
                .any(|(i, a, _)| *i == service && a == "restart")
        })
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        restarting,
        [
            RESTART,
            "/etc/cassandra/cassandra-rackdc.properties",
            DEFAULT
        ]
    );
    assert!(index("template", YAML) < index("package", "cassandra"));
}

/// `(type, name)` of every resource of a run.
fn names(inputs: &Inputs) -> Vec<(String, String)> {
    resources("cassandra", inputs)
        .into_iter()
        .map(|r| (r.kind.name.to_string(), r.name))
        .collect()
}

#[test]
fn install_none_converges_everything_but_the_binaries_and_the_service() {
    let cluster = ring(3);
    let none = Inputs {
        cluster: Some(&cluster),
        attributes: Some("cassandra:\n  install: none\n"),
        ..Inputs::default()
    };
    let run = names(&none);
    let has = |kind: &str, name: &str| run.iter().any(|(k, n)| k == kind && n == name);
    assert!(has("package", "openjdk-17-jre-headless"), "{run:?}");
    assert!(has("user", "cassandra") && has("template", YAML) && has("template", DEFAULT));
    assert!(
        !has("package", "cassandra") && !has("service", "cassandra"),
        "{run:?}"
    );
    assert!(
        !run.iter().any(|(k, _)| k == "execute" || k == "deploy"),
        "{run:?}"
    );

    // With apt, the package and the service, after the configuration.
    let apt = Inputs {
        attributes: Some(APT),
        ..none
    };
    let run = names(&apt);
    let at = |kind: &str, name: &str| run.iter().position(|(k, n)| k == kind && n == name);
    assert!(at("template", YAML) < at("package", "cassandra"), "{run:?}");
    assert!(at("apt_repository", "cassandra") < at("package", "cassandra"));
    assert!(at("service", "cassandra").is_some());

    // Not a member yet (no seeds): no package, no service.
    let alone = Inputs {
        cluster: Some("cassandra: []\n"),
        ..apt
    };
    let run = names(&alone);
    assert!(
        !run.iter()
            .any(|(k, n)| (k == "package" || k == "service") && n == "cassandra"),
        "{run:?}"
    );
    assert!(run.iter().any(|(k, n)| k == "template" && n == YAML));
}

#[test]
fn a_missing_install_input_stops_the_run_naming_the_attribute() {
    let cluster = ring(1);
    let run = names(&Inputs {
        cluster: Some(&cluster),
        ..Inputs::default()
    });
    assert_eq!(
        run[0],
        (
            "execute".to_string(),
            "cassandra: install is apt, and attribute cassandra.apt_key is not set".to_string()
        )
    );
    let run = names(&Inputs {
        cluster: Some(&cluster),
        attributes: Some(
            "cassandra:\n  install: tarball\n  tarball_url: https://example.com/c.tgz\n",
        ),
        ..Inputs::default()
    });
    assert!(
        run[0].1.contains("cassandra.tarball_sha256 is not set"),
        "{run:?}"
    );
    let run = names(&Inputs {
        cluster: Some(&cluster),
        attributes: Some("cassandra:\n  install: none\n  tokens: vnode\n"),
        ..Inputs::default()
    });
    assert!(run[0].1.contains("must be vnodes or single"), "{run:?}");
}
