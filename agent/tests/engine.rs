//! Engine behaviour: notifications, guards, conditions, failures, secrets,
//! and bad cookbooks refused before anything is touched.

mod support;

use support::{Sandbox, changed, ok, write};

/// A cookbook whose `log` execute appends a line per run to a file, so a test
/// can see which commands ran and in what order.
fn sandbox(recipe: &str) -> Sandbox {
    let s = Sandbox::new();
    s.cookbook(
        "t",
        &[
            ("recipes/default.yaml", recipe),
            ("templates/conf.hbs", "v={{attrs.v}}\n"),
        ],
    );
    s.attributes("v: 1\n");
    s
}

fn log(s: &Sandbox) -> String {
    std::fs::read_to_string(s.path("log")).unwrap_or_default()
}

const NOTIFY: &str = r#"
- template: "{{attrs.root}}/conf"
  source: conf.hbs
  notifies:
    - run execute[delayed] delayed
    - run execute[now] immediately
- execute: now
  command: "echo now >> {{attrs.root}}/log"
  action: nothing
- execute: "echo middle >> {{attrs.root}}/log"
- execute: delayed
  command: "echo delayed >> {{attrs.root}}/log"
  action: nothing
- execute: "echo subscriber >> {{attrs.root}}/log"
  action: nothing
  subscribes: run template[{{attrs.root}}/conf]
"#;

#[test]
fn notifications_fire_immediately_or_once_at_the_end() {
    let s = sandbox(NOTIFY);
    ok(&s.apply("t"));
    assert_eq!(log(&s), "now\nmiddle\ndelayed\nsubscriber\n");
    // Nothing changed: only the unguarded command runs.
    std::fs::remove_file(s.path("log")).unwrap();
    ok(&s.apply("t"));
    assert_eq!(log(&s), "middle\n");
}

#[test]
fn guards_and_creates_skip_resources() {
    let s = sandbox(
        r#"
- execute: "echo a >> {{attrs.root}}/log"
  only_if: "test -e /"
- execute: "echo b >> {{attrs.root}}/log"
  only_if: "false"
- execute: "echo c >> {{attrs.root}}/log"
  not_if: "true"
- execute: "echo d >> {{attrs.root}}/log && touch {{attrs.root}}/marker"
  creates: "{{attrs.root}}/marker"
"#,
    );
    let r = ok(&s.apply("t")).clone();
    assert_eq!(log(&s), "a\nd\n");
    let skipped: Vec<_> = r
        .resources
        .iter()
        .filter_map(|x| x.skipped.clone())
        .collect();
    assert_eq!(skipped, ["only_if failed", "not_if succeeded"]);
    ok(&s.apply("t"));
    assert_eq!(log(&s), "a\nd\na\n", "creates must skip the second time");
}

#[test]
fn when_and_for_each_expand_at_compile_time() {
    let s = sandbox(
        r#"
- file: "{{attrs.root}}/{{item.name}}"
  content: "{{item.port}}\n"
  for_each: attrs.sites
  when: item.enabled
- file: "{{attrs.root}}/debian-only"
  when: node.os.id == "debian" and attrs.v >= 1
- file: "{{attrs.root}}/never"
  when: not defined(attrs.v)
"#,
    );
    s.attributes("v: 1\nsites:\n  - {name: a, port: 80, enabled: true}\n  - {name: b, port: 81, enabled: false}\n");
    let r = ok(&s.apply("t")).clone();
    assert_eq!(r.resources_total, 2);
    assert_eq!(std::fs::read_to_string(s.path("a")).unwrap(), "80\n");
    assert!(!s.path("b").exists());
    assert!(s.path("debian-only").exists());
    assert!(!s.path("never").exists());
}

#[test]
fn failure_stops_the_run_but_queued_delayed_notifications_still_run() {
    let s = sandbox(
        r#"
- template: "{{attrs.root}}/conf"
  source: conf.hbs
  notifies: run execute[restart] delayed
- execute: "exit 3"
- file: "{{attrs.root}}/after-failure"
- execute: restart
  command: "echo restart >> {{attrs.root}}/log"
  action: nothing
"#,
    );
    let r = s.apply("t");
    assert!(!r.succeeded());
    assert_eq!(r.resources_failed, 1);
    let failed = r.resources.iter().find(|x| x.error.is_some()).unwrap();
    assert_eq!(
        (failed.kind.as_str(), failed.name.as_str()),
        ("execute", "exit 3")
    );
    assert!(
        failed.error.as_deref().unwrap().contains("exit 3"),
        "{:?}",
        failed.error
    );
    assert!(!s.path("after-failure").exists());
    assert_eq!(log(&s), "restart\n");
}

#[test]
fn ignore_failure_lets_the_run_continue() {
    let s = sandbox(
        r#"
- execute: "exit 1"
  ignore_failure: true
- file: "{{attrs.root}}/after"
- execute: "exit 2"
  returns: [0, 2]
"#,
    );
    let r = s.apply("t");
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(r.resources_failed, 1);
    assert!(s.path("after").exists());
}

#[test]
fn hanging_command_is_killed_at_its_timeout() {
    let s = sandbox("- execute: \"sleep 30\"\n  timeout: 1\n");
    let r = s.apply("t");
    assert!(!r.succeeded());
    assert!(
        r.resources[0].error.as_deref().unwrap().contains("timeout"),
        "{:?}",
        r.resources[0].error
    );
}

#[test]
fn bad_template_variable_fails_before_anything_is_touched() {
    let s = Sandbox::new();
    s.cookbook(
        "t",
        &[
            ("recipes/default.yaml", "- file: \"{{attrs.root}}/first\"\n- template: \"{{attrs.root}}/conf\"\n  source: conf.hbs\n"),
            ("templates/conf.hbs", "ok\nport {{attrs.prot}}\n"),
        ],
    );
    let r = s.apply("t");
    assert!(!r.succeeded());
    let e = r.error.unwrap();
    assert!(
        e.contains("t/conf.hbs line 2") && e.contains("attrs.prot"),
        "{e}"
    );
    assert!(e.contains("recipes/default.yaml:3"), "{e}");
    assert!(
        !s.path("first").exists(),
        "a resource ran before the compile error"
    );
}

#[test]
fn notification_to_a_missing_resource_is_a_compile_error() {
    let s = sandbox("- file: \"{{attrs.root}}/a\"\n  notifies: restart service[nope]\n");
    let r = s.apply("t");
    let e = r.error.unwrap();
    assert!(
        e.contains("no resource service[nope]") && e.contains("default.yaml:2:"),
        "{e}"
    );
    assert!(!s.path("a").exists());
}

#[test]
fn secrets_render_but_never_show() {
    let s = sandbox(
        r#"
- file: "{{attrs.root}}/db.conf"
  content: "password={{secrets.db_password}}\n"
  mode: "0600"
- execute: "echo {{secrets.db_password}} >&2; exit 1"
  ignore_failure: true
"#,
    );
    let mut opts = s.run_opts("t", false);
    let secrets = s.dir.path().join("secrets.yaml");
    write(&secrets, "db_password: s3cr3t-value\n");
    opts.secrets = Some(secrets);
    let r = support::run(&opts);
    assert_eq!(
        std::fs::read_to_string(s.path("db.conf")).unwrap(),
        "password=s3cr3t-value\n"
    );
    let file = &r.resources[0];
    assert!(file.sensitive && file.diff.is_none());
    assert_eq!(file.changes, ["changed, contains secrets"]);
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        !json.contains("s3cr3t-value"),
        "secret leaked into the report: {json}"
    );
    assert!(
        json.contains("<secret>"),
        "the failing command's output should be redacted, not dropped"
    );
}

#[test]
fn include_recipe_runs_each_recipe_once() {
    let s = Sandbox::new();
    s.cookbook(
        "base",
        &[(
            "recipes/default.yaml",
            "- execute: \"echo base >> {{attrs.root}}/log\"\n",
        )],
    );
    s.cookbook(
        "web",
        &[
            ("metadata.yaml", "name: web\nversion: 1.0.0\ndepends:\n  base: '>= 1.0'\n"),
            ("recipes/default.yaml", "- include_recipe: base\n- execute: \"echo web >> {{attrs.root}}/log\"\n- include_recipe: base::default\n"),
        ],
    );
    ok(&s.apply("web,base"));
    assert_eq!(log(&s), "base\nweb\n");
}

#[test]
fn attributes_file_overrides_cookbook_defaults() {
    let s = Sandbox::new();
    s.cookbook(
        "t",
        &[
            ("attributes.yaml", "app:\n  port: 80\n  name: site\n"),
            ("recipes/default.yaml", "- file: \"{{attrs.root}}/out\"\n  content: \"{{attrs.app.name}}:{{attrs.app.port}}\"\n"),
        ],
    );
    s.attributes("app:\n  port: 8080\n");
    ok(&s.apply("t"));
    assert_eq!(std::fs::read_to_string(s.path("out")).unwrap(), "site:8080");
    assert_eq!(changed(&s.apply("t")).len(), 0);
}

#[test]
fn a_failing_immediate_notification_stops_the_run() {
    let s = sandbox(
        r#"
- file: "{{attrs.root}}/a"
  notifies: run execute[fails] immediately
- execute: fails
  command: "exit 4"
  action: nothing
- file: "{{attrs.root}}/b"
"#,
    );
    let r = s.apply("t");
    assert!(!r.succeeded());
    assert!(s.path("a").exists());
    assert!(
        !s.path("b").exists(),
        "the run went on after a failed immediate notification"
    );
}

#[test]
fn sensitive_resources_hide_their_output_and_say_so() {
    let s = sandbox(
        r#"
- file: "{{attrs.root}}/token"
  content: "plain but private\n"
  sensitive: true
- execute: "echo private-output >&2; exit 5"
  sensitive: true
"#,
    );
    let r = s.apply("t");
    assert_eq!(
        r.resources[0].changes,
        ["changed (sensitive: details hidden)"]
    );
    assert!(r.resources[0].diff.is_none());
    let e = r.resources[1].error.as_deref().unwrap();
    assert_eq!(e, "exit 5 (details hidden: sensitive)");
}

#[test]
fn failures_count_resources_once_and_ignore_failure_survives_secret_names() {
    let s = sandbox(
        r#"
- execute: "exit 1 # {{secrets.tok}}"
  ignore_failure: true
- file: "{{attrs.root}}/a"
  notifies: "run execute[exit 1 # {{secrets.tok}}] delayed"
"#,
    );
    let mut opts = s.run_opts("t", false);
    let secrets = s.dir.path().join("secrets.yaml");
    write(&secrets, "tok: abcd-1234\n");
    opts.secrets = Some(secrets);
    let r = support::run(&opts);
    assert_eq!(
        r.resources.iter().filter(|x| x.error.is_some()).count(),
        2,
        "ran twice"
    );
    assert_eq!(r.resources_failed, 1);
    assert!(r.succeeded(), "{r:?}");
}

/// The run's error for `recipe` (cookbook `t` with templates `ok.hbs` and
/// `bad.hbs`), from the resource on: the file, line and column cut off.
fn compile_error(recipe: &str) -> (Sandbox, String) {
    let s = Sandbox::new();
    s.cookbook(
        "t",
        &[
            ("recipes/default.yaml", recipe),
            ("templates/ok.hbs", "ok\n"),
            ("templates/bad.hbs", "{{attrs.missing}}\n"),
            ("files/a.txt", "a\n"),
        ],
    );
    let r = s.apply("t");
    let e = r.error.clone().unwrap_or_else(|| panic!("no error: {r:?}"));
    let at = e.find("default.yaml:").expect("the recipe is named") + "default.yaml:".len();
    let rest = e[at..]
        .splitn(3, ':')
        .nth(2)
        .unwrap_or_default()
        .trim_start();
    let root = s.root().display().to_string();
    (s, rest.replace(&root, "ROOT"))
}

#[test]
fn for_each_resources_are_named_by_their_rendered_name_in_every_error() {
    for (recipe, error) in [
        // A template that does not render, for the second item.
        (
            "- template: \"{{attrs.root}}/{{item}}.conf\"\n  source: \"{{item}}.hbs\"\n  for_each: [ok, bad]\n",
            "template[ROOT/bad.conf] source: template t/bad.hbs line 1 column 1: variable attrs.missing is not defined",
        ),
        // A template resource's property.
        (
            "- template: \"{{attrs.root}}/{{item}}.conf\"\n  source: ok.hbs\n  variables: {x: \"{{attrs.nope}}\"}\n  for_each: [a]\n",
            "template[ROOT/a.conf] variables: variable attrs.nope is not defined",
        ),
        // A file's content, its missing source, its guard, its condition.
        (
            "- file: \"{{attrs.root}}/{{item}}\"\n  content: \"{{attrs.nope}}\"\n  for_each: [a]\n",
            "file[ROOT/a] content: variable attrs.nope is not defined",
        ),
        (
            "- file: \"{{attrs.root}}/{{item}}\"\n  source: \"{{item}}.txt\"\n  for_each: [a, b]\n",
            "file[ROOT/b] source: no file \"b.txt\" in the cookbook's files/",
        ),
        (
            "- file: \"{{attrs.root}}/{{item}}\"\n  only_if: \"test -e {{attrs.nope}}\"\n  for_each: [a]\n",
            "file[ROOT/a] only_if: variable attrs.nope is not defined",
        ),
        (
            "- file: \"{{attrs.root}}/{{item}}\"\n  creates: \"{{item}}\"\n  for_each: [a]\n",
            "file[ROOT/a] creates: \"a\" must be an absolute path",
        ),
        (
            "- file: \"{{attrs.root}}/{{item}}\"\n  when: item.port > 1\n  for_each: [a]\n",
            "file[ROOT/a] when: when \"item.port > 1\": item.port is not defined (use defined(...) to test for it)",
        ),
        // A name that does not render is named as written, with its item.
        (
            "- file: \"{{attrs.root}}/{{item.x}}\"\n  for_each: [a]\n",
            "file[{{attrs.root}}/{{item.x}}] (for_each item \"a\") file: variable item.x is not defined",
        ),
    ] {
        assert_eq!(compile_error(recipe).1, error, "{recipe}");
    }
}

#[test]
fn a_for_each_file_that_fails_to_converge_is_reported_by_its_rendered_name() {
    let s = sandbox("- file: \"{{attrs.root}}/missing-dir/{{item}}\"\n  for_each: [a]\n");
    let r = s.apply("t");
    let failed = &r.resources[0];
    let path = s.path("missing-dir/a").display().to_string();
    assert_eq!(
        (failed.kind.as_str(), failed.name.as_str()),
        ("file", path.as_str())
    );
    let e = failed.error.as_deref().unwrap();
    assert!(e.starts_with(&format!("{path}: parent directory")), "{e}");
}

#[test]
fn a_rendered_name_in_an_error_never_shows_a_secret() {
    let s = sandbox(
        "- file: \"{{attrs.root}}/{{secrets.tok}}-{{item}}\"\n  content: \"{{attrs.nope}}\"\n  for_each: [a]\n\
         - execute: \"echo {{secrets.tok}}\"\n  notifies: run execute[gone {{secrets.tok}}]\n",
    );
    let secrets = s.dir.path().join("secrets.yaml");
    write(&secrets, "tok: abcd-1234\n");
    for recipe_error in [true, false] {
        if !recipe_error {
            s.cookbook(
                "t",
                &[(
                    "recipes/default.yaml",
                    "- execute: \"echo {{secrets.tok}}\"\n  notifies: run execute[gone {{secrets.tok}}]\n",
                )],
            );
        }
        let mut opts = s.run_opts("t", false);
        opts.secrets = Some(secrets.clone());
        let e = support::run(&opts).error.unwrap();
        assert!(!e.contains("abcd-1234"), "{e}");
        assert!(e.contains("<secret>"), "{e}");
    }
}
