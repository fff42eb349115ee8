//! Golden tests of the memcached cookbook's rendered configuration, with fixed
//! facts so the output is the same on every machine.

mod support;

use support::golden::{Inputs, rendered};

fn rendered_conf(attributes: Option<&str>) -> String {
    let inputs = Inputs {
        attributes,
        ..Inputs::default()
    };
    rendered("memcached", &inputs, "/etc/memcached.conf")
}

#[test]
fn memory_defaults_to_a_quarter_of_ram() {
    insta::assert_snapshot!(rendered_conf(None));
}

#[test]
fn explicit_memory_port_and_options() {
    let conf = rendered_conf(Some(
        "memcached:\n  memory_mb: 1500\n  port: 11311\n  listen: 127.0.0.1\n  extra_options: ['-v']\n",
    ));
    insta::assert_snapshot!(conf);
}

#[test]
fn share_of_ram_never_goes_below_the_minimum() {
    let conf = rendered_conf(Some("memcached:\n  memory_percent: 1\n"));
    assert!(conf.contains("\n-m 64\n"), "{conf}");
}
