//! Golden tests of the apache_php cookbook: the virtual host, and PHP's
//! session settings for an empty, a partly reachable and a full memcached
//! tier.

mod support;

use support::golden::{Inputs, members, rendered};

const SESSIONS: &str = "/etc/php/8.2/apache2/conf.d/60-cm-sessions.ini";

fn sessions(cluster: Option<&str>) -> String {
    let inputs = Inputs {
        cluster,
        ..Inputs::default()
    };
    rendered("apache_php", &inputs, SESSIONS)
}

#[test]
fn an_empty_tier_keeps_sessions_in_files() {
    let none = sessions(None);
    insta::assert_snapshot!(none);
    let empty = sessions(Some("memcached: []\n"));
    assert_eq!(empty, none, "no role and an empty role read alike");
    let all_down = sessions(Some(&format!(
        "memcached:\n{}",
        members("cache", 2, &[0, 1])
    )));
    assert_eq!(
        all_down, none,
        "no reachable member: files, never a broken save_path"
    );
}

#[test]
fn a_full_tier_lists_every_member_with_two_copies_of_each_session() {
    let full = sessions(Some(&format!("memcached:\n{}", members("cache", 3, &[]))));
    insta::assert_snapshot!(full);
}

#[test]
fn an_unreachable_member_is_left_out_of_the_save_path() {
    let text = sessions(Some(&format!("memcached:\n{}", members("cache", 3, &[1]))));
    assert!(
        text.contains("session.save_path = \"10.0.2.1:11211,10.0.2.3:11211\""),
        "{text}"
    );
}

#[test]
fn the_virtual_host_serves_the_docroot_and_the_health_page() {
    let vhost = rendered(
        "apache_php",
        &Inputs {
            attributes: Some("apache_php:\n  port: 8080\n  server_name: www.example.com\n"),
            ..Inputs::default()
        },
        "/etc/apache2/sites-available/app.conf",
    );
    insta::assert_snapshot!(vhost);
}
