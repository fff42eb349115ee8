//! File-like resources converged into a temp root: the first run changes, the
//! second changes nothing, drift is repaired, why-run touches nothing.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{Sandbox, changed, ok};

const RECIPE: &str = r#"
- directory: "{{attrs.root}}/etc/app"
  mode: "0750"
  recursive: true
- directory: "{{attrs.root}}/var/lib/app/data"
  recursive: true
- file: "{{attrs.root}}/etc/app/inline.conf"
  content: "port = {{attrs.app.port}}\n"
  mode: "0640"
- file: "{{attrs.root}}/etc/app/motd"
  source: motd
- template: "{{attrs.root}}/etc/app/app.conf"
  source: app.conf.hbs
  variables:
    greeting: hello
- link: "{{attrs.root}}/etc/app/current"
  to: "{{attrs.root}}/etc/app/app.conf"
- file: "{{attrs.root}}/etc/app/{{item}}.d"
  content: "{{item}}\n"
  for_each: attrs.app.parts
"#;

fn sandbox() -> Sandbox {
    let s = Sandbox::new();
    s.cookbook(
        "app",
        &[
            ("attributes.yaml", "app:\n  port: 8080\n  parts: [a, b]\n  workers: [w1, w2, w3]\n"),
            ("recipes/default.yaml", RECIPE),
            ("files/motd", "welcome\n"),
            (
                "templates/app.conf.hbs",
                "{{vars.greeting}} from {{node.hostname}}\n{{#each attrs.app.workers}}worker {{this}}\n{{/each}}",
            ),
        ],
    );
    s
}

#[test]
fn first_run_creates_second_run_changes_nothing() {
    let s = sandbox();
    let first = s.apply("app");
    ok(&first);
    assert_eq!(first.resources_total, 8);
    assert_eq!(first.resources_changed, 8, "{:?}", changed(&first));
    assert_eq!(
        std::fs::read_to_string(s.path("etc/app/inline.conf")).unwrap(),
        "port = 8080\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.path("etc/app/motd")).unwrap(),
        "welcome\n"
    );
    let conf = std::fs::read_to_string(s.path("etc/app/app.conf")).unwrap();
    assert!(conf.starts_with("hello from "), "{conf}");
    assert!(conf.contains("worker w3\n"), "{conf}");
    assert_eq!(
        std::fs::read_link(s.path("etc/app/current")).unwrap(),
        s.path("etc/app/app.conf")
    );
    assert_eq!(
        std::fs::read_to_string(s.path("etc/app/b.d")).unwrap(),
        "b\n"
    );
    let mode = |p: &str| std::fs::metadata(s.path(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("etc/app"), 0o750);
    assert_eq!(mode("etc/app/inline.conf"), 0o640);
    assert!(s.path("var/lib/app/data").is_dir());

    let second = ok(&s.apply("app")).clone();
    assert_eq!(second.resources_changed, 0, "{:?}", changed(&second));
}

#[test]
fn drift_is_repaired() {
    let s = sandbox();
    ok(&s.apply("app"));
    std::fs::write(s.path("etc/app/app.conf"), "edited by hand\n").unwrap();
    std::fs::set_permissions(
        s.path("etc/app/inline.conf"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    std::fs::remove_file(s.path("etc/app/current")).unwrap();
    std::os::unix::fs::symlink("/elsewhere", s.path("etc/app/current")).unwrap();
    std::fs::remove_dir(s.path("var/lib/app/data")).unwrap();

    let r = s.apply("app");
    ok(&r);
    let mut got = changed(&r);
    got.sort();
    let root = s.root().display().to_string();
    let mut want = vec![
        format!("template[{root}/etc/app/app.conf]"),
        format!("file[{root}/etc/app/inline.conf]"),
        format!("link[{root}/etc/app/current]"),
        format!("directory[{root}/var/lib/app/data]"),
    ];
    want.sort();
    assert_eq!(got, want);
    let tpl = r.resources.iter().find(|x| x.kind == "template").unwrap();
    assert!(
        tpl.diff.as_deref().unwrap().contains("-edited by hand"),
        "{:?}",
        tpl.diff
    );
    let inline = r
        .resources
        .iter()
        .find(|x| x.name.ends_with("inline.conf"))
        .unwrap();
    assert_eq!(inline.changes, ["mode 0666 -> 0640"]);
    assert!(
        std::fs::read_to_string(s.path("etc/app/app.conf"))
            .unwrap()
            .starts_with("hello")
    );
    assert_eq!(ok(&s.apply("app")).resources_changed, 0);
}

#[test]
fn previous_content_is_backed_up() {
    let s = sandbox();
    ok(&s.apply("app"));
    std::fs::write(s.path("etc/app/app.conf"), "edited by hand\n").unwrap();
    ok(&s.apply("app"));
    let backup_dir = s
        .dir
        .path()
        .join("backup")
        .join(s.path("etc/app").strip_prefix("/").unwrap());
    let backups: Vec<_> = std::fs::read_dir(backup_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(
        std::fs::read_to_string(&backups[0]).unwrap(),
        "edited by hand\n"
    );
}

#[test]
fn why_run_shows_diffs_and_changes_nothing() {
    let s = sandbox();
    let r = s.why_run("app");
    ok(&r);
    assert!(r.why_run);
    assert_eq!(r.resources_changed, 8);
    let tpl = r.resources.iter().find(|x| x.kind == "template").unwrap();
    assert!(
        tpl.diff.as_deref().unwrap().contains("+hello from"),
        "{:?}",
        tpl.diff
    );
    assert_eq!(
        std::fs::read_dir(s.root()).unwrap().count(),
        0,
        "why-run wrote something"
    );

    ok(&s.apply("app"));
    std::fs::write(s.path("etc/app/motd"), "changed\n").unwrap();
    let r = s.why_run("app");
    assert_eq!(
        changed(&r),
        [format!("file[{}]", s.path("etc/app/motd").display())]
    );
    assert_eq!(
        std::fs::read_to_string(s.path("etc/app/motd")).unwrap(),
        "changed\n"
    );
}

#[test]
fn delete_actions_remove_and_then_change_nothing() {
    let s = sandbox();
    ok(&s.apply("app"));
    s.cookbook(
        "app",
        &[(
            "recipes/cleanup.yaml",
            r#"
- file: "{{attrs.root}}/etc/app/motd"
  action: delete
- link: "{{attrs.root}}/etc/app/current"
  action: delete
- directory: "{{attrs.root}}/var/lib/app"
  recursive: true
  action: delete
"#,
        )],
    );
    let r = ok(&s.apply("app::cleanup")).clone();
    assert_eq!(r.resources_changed, 3);
    assert!(!s.path("etc/app/motd").exists());
    assert!(!s.path("var/lib/app").exists());
    assert_eq!(ok(&s.apply("app::cleanup")).resources_changed, 0);
}

#[test]
fn create_if_missing_leaves_an_existing_file_alone() {
    let s = Sandbox::new();
    s.cookbook(
        "seed",
        &[("recipes/default.yaml", "- file: \"{{attrs.root}}/seed\"\n  content: \"initial\\n\"\n  action: create_if_missing\n")],
    );
    ok(&s.apply("seed"));
    std::fs::write(s.path("seed"), "tuned by the app\n").unwrap();
    assert_eq!(ok(&s.apply("seed")).resources_changed, 0);
    assert_eq!(
        std::fs::read_to_string(s.path("seed")).unwrap(),
        "tuned by the app\n"
    );
}
