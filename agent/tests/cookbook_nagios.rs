//! Golden tests of the nagios cookbook: one host per node of the view
//! (a node in two roles once), a host group and its checks per role with
//! members, an unreachable node noted, and the web interface's password
//! file from a secret.

mod support;

use support::golden::{Inputs, rendered, resource};

const FLEET: &str = "memcached:
  - {name: cache-1, ordinal: 0, address: 10.0.2.1, reachable: true, state: active}
  - {name: web-1, ordinal: 1, address: 10.0.3.1, reachable: true, state: active}
web:
  - {name: web-1, ordinal: 0, address: 10.0.3.1, reachable: true, state: active}
  - {name: web-2, ordinal: 1, address: 10.0.3.2, reachable: false, state: unreachable}
monitoring:
  - {name: mon-1, ordinal: 0, address: 10.0.4.1, reachable: true, state: active}
cassandra: []
";

fn inputs(cluster: &str) -> Inputs<'_> {
    Inputs {
        cluster: Some(cluster),
        secrets: Some("nagios_admin_password: s3cret-pw\n"),
        ..Inputs::default()
    }
}

#[test]
fn every_node_is_one_host_and_every_role_with_members_a_host_group() {
    let fleet = rendered("nagios", &inputs(FLEET), "/etc/nagios4/conf.d/cm-fleet.cfg");
    insta::assert_snapshot!(fleet);
    assert_eq!(fleet.matches("define host {").count(), 4, "web-1 once");
    assert!(fleet.contains("hostgroups          memcached,web,cm-fleet"));
    assert!(
        !fleet.contains("hostgroup_name      cassandra"),
        "no members, no group"
    );
}

#[test]
fn an_empty_view_defines_nothing_nagios_would_refuse() {
    let fleet = rendered(
        "nagios",
        &inputs("monitoring: []\n"),
        "/etc/nagios4/conf.d/cm-fleet.cfg",
    );
    assert!(!fleet.contains("define"), "{fleet}");
}

#[test]
fn the_password_file_holds_an_htdigest_line_of_the_secret() {
    let users = resource("nagios", &inputs(FLEET), "/etc/nagios4/htdigest.users");
    assert!(
        users.sensitive,
        "marked: the hash alone does not hold the secret"
    );
    let line = String::from_utf8(users.content.unwrap()).unwrap();
    // md5sum of "nagiosadmin:Nagios4:s3cret-pw"
    let digest = std::process::Command::new("sh")
        .args(["-c", "printf %s nagiosadmin:Nagios4:s3cret-pw | md5sum"])
        .output()
        .unwrap();
    let digest = String::from_utf8(digest.stdout).unwrap();
    let digest = digest.split_whitespace().next().unwrap();
    assert_eq!(line, format!("nagiosadmin:Nagios4:{digest}\n"));
    assert!(!line.contains("s3cret-pw"));
}
