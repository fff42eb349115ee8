//! Golden tests of the apache_php cookbook: the virtual host, PHP's
//! session settings for an empty, a partly reachable and a full memcached
//! tier, and the application's source for `deploy`.

mod support;

use std::path::Path;
use std::process::Command;

use support::golden::{Inputs, members, rendered, resources};

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

#[test]
fn the_demo_application_is_deployed_from_a_tarball_made_of_its_source() {
    let run = resources("apache_php", &Inputs::default());
    let deploys: Vec<_> = run.iter().filter(|r| r.kind.name == "deploy").collect();
    assert_eq!(deploys.len(), 1, "one source chosen");
    assert_eq!(deploys[0].name, "/var/www/app");
    assert_eq!(deploys[0].properties["file"], "demo-app.tar.gz");

    // The tarball holds exactly files/demo-app/ (README.md, "The application").
    let files = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cookbooks/apache_php/files");
    let out = tempfile::tempdir().unwrap();
    let unpacked = Command::new("tar")
        .arg("-xzf")
        .arg(files.join("demo-app.tar.gz"))
        .arg("-C")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(unpacked.success());
    let listing = |dir: &Path| {
        let out = Command::new("find")
            .arg(".")
            .current_dir(dir)
            .output()
            .unwrap();
        let mut lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(listing(out.path()), listing(&files.join("demo-app")));
    assert_eq!(
        std::fs::read(out.path().join("public/session.php")).unwrap(),
        std::fs::read(files.join("demo-app/public/session.php")).unwrap(),
        "remake the tarball from files/demo-app"
    );
}

#[test]
fn an_application_by_url_replaces_the_demo() {
    let inputs = Inputs {
        attributes: Some(
            "apache_php:\n  app:\n    file: null\n    url: https://releases.example.com/app-1.4.tar.gz\n    sha256: \"0753a735db5c4c7547bafd950fda37e91ce31f794e5f734c647c7bb7ab75f667\"\n",
        ),
        ..Inputs::default()
    };
    let run = resources("apache_php", &inputs);
    let deploys: Vec<_> = run.iter().filter(|r| r.kind.name == "deploy").collect();
    assert_eq!(deploys.len(), 1);
    assert_eq!(
        deploys[0].properties["url"],
        "https://releases.example.com/app-1.4.tar.gz"
    );
}

#[test]
fn an_application_without_its_source_stops_the_run_naming_the_attributes() {
    let first = |attributes: &str| {
        let inputs = Inputs {
            attributes: Some(attributes),
            ..Inputs::default()
        };
        let run = resources("apache_php", &inputs);
        (run[0].kind.name, run[0].name.clone())
    };
    let (kind, name) = first("apache_php:\n  app:\n    file: null\n");
    assert_eq!(kind, "execute");
    assert!(name.contains("set apache_php.app.file, app.url"), "{name}");
    let (_, name) =
        first("apache_php:\n  app:\n    file: null\n    url: https://example.com/a.tgz\n");
    assert!(name.contains("app.url needs app.sha256"), "{name}");
    let (_, name) =
        first("apache_php:\n  app:\n    file: null\n    git: https://example.com/a.git\n");
    assert!(name.contains("app.git needs app.revision"), "{name}");

    // A git source brings Debian's git along.
    let inputs = Inputs {
        attributes: Some(
            "apache_php:\n  app:\n    file: null\n    git: https://example.com/a.git\n    revision: 0123456789abcdef0123456789abcdef01234567\n",
        ),
        ..Inputs::default()
    };
    let run = resources("apache_php", &inputs);
    assert!(
        run.iter()
            .any(|r| r.kind.name == "package" && r.name == "git")
    );
    assert!(
        run.iter()
            .any(|r| r.kind.name == "deploy" && r.properties["git"] == "https://example.com/a.git")
    );
}
