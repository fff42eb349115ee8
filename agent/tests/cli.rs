//! `cm-agent apply` as a user runs it: output, exit codes, JSON report, lock.

mod support;

use assert_cmd::Command;
use predicates::prelude::*;
use support::Sandbox;

fn sandbox() -> Sandbox {
    let s = Sandbox::new();
    s.cookbook(
        "hello",
        &[(
            "recipes/default.yaml",
            "- file: \"{{attrs.root}}/hello\"\n  content: \"hello {{node.hostname}}\\n\"\n",
        )],
    );
    s.cookbook(
        "broken",
        &[("recipes/default.yaml", "- file: /x\n  mode: 999\n")],
    );
    s
}

fn agent(s: &Sandbox, run_list: &str) -> Command {
    let opts = s.run_opts("hello", false);
    let mut c = Command::cargo_bin("cm-agent").unwrap();
    c.arg("apply")
        .arg("--cookbooks")
        .arg(&opts.cookbooks)
        .arg("--run-list")
        .arg(run_list)
        .arg("--attributes")
        .arg(opts.attributes.unwrap())
        .arg("--backup-dir")
        .arg(&opts.backup_dir)
        .arg("--lock-file")
        .arg(s.dir.path().join("lock"))
        .env("NO_COLOR", "1");
    c
}

#[test]
fn human_output_has_a_line_per_resource_a_diff_and_a_summary() {
    let s = sandbox();
    agent(&s, "hello")
        .arg("--why-run")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("file[")
                .and(predicate::str::contains("would change: created")),
        )
        .stdout(predicate::str::contains("+hello "))
        .stdout(
            predicate::str::is_match(r"1 resources, 1 changed, 0 failed in \d+ ms \(why-run")
                .unwrap(),
        );
    assert!(!s.path("hello").exists());
}

#[test]
fn json_output_is_the_run_report() {
    let s = sandbox();
    let out = agent(&s, "hello")
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "status",
        "resources_total",
        "resources_changed",
        "resources_failed",
        "duration_ms",
        "resources",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    let r = &v["resources"][0];
    for key in ["type", "name", "action", "changed", "duration_ms"] {
        assert!(r.get(key).is_some(), "missing {key} in {r}");
    }
    assert_eq!(v["status"], "success");
    assert_eq!(r["type"], "file");
}

#[test]
fn bad_cookbook_exits_1_naming_file_and_line() {
    let s = sandbox();
    agent(&s, "broken").assert().code(1).stdout(
        predicate::str::contains("broken/recipes/default.yaml:2:9")
            .and(predicate::str::contains("mode")),
    );
}

#[test]
fn a_run_that_fails_loading_the_cookbooks_ends_saying_so_and_why() {
    let s = sandbox();
    s.cookbook(
        "ambiguous",
        &[("attributes.yaml", "ambiguous:\n  enabled: yes\n")],
    );
    for (run_list, why) in [
        ("broken", "broken/recipes/default.yaml:2:9: file[/x] mode: "),
        (
            "ambiguous",
            "ambiguous/attributes.yaml:2:12: yes is read as the boolean true",
        ),
    ] {
        let out = agent(&s, run_list).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("run FAILED before converging (nothing was changed): ")
                && last.contains(why),
            "{stdout}"
        );
        assert!(!stdout.contains("0 resources"), "{stdout}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let s = sandbox();
    agent(&s, "Not A Recipe").assert().code(2);
    Command::cargo_bin("cm-agent")
        .unwrap()
        .args(["apply"])
        .assert()
        .code(2);
}

#[test]
fn missing_settings_exit_2_naming_the_file_for_every_server_command() {
    let s = sandbox();
    let missing = s.dir.path().join("no-such-agent.yaml");
    let only_server = s.dir.path().join("server-only.yaml");
    std::fs::write(
        &only_server,
        format!(
            "server: https://127.0.0.1:9\nstate_dir: {}\n",
            s.dir.path().join("state").display()
        ),
    )
    .unwrap();
    for (config, what) in [(&missing, "server"), (&only_server, "ca_fingerprint")] {
        for cmd in ["run", "daemon", "start"] {
            let mut c = Command::cargo_bin("cm-agent").unwrap();
            c.arg(cmd);
            if cmd == "run" {
                c.arg("--once");
            }
            // The state dir of this test, never the machine's.
            c.arg("--config")
                .arg(config)
                .env("CM_STATE_DIR", s.dir.path().join("state"));
            // A missing file is said to be missing by every command.
            let said = if config == &missing {
                "does not exist"
            } else {
                what
            };
            c.assert()
                .code(2)
                .stderr(predicate::str::contains(config.display().to_string()))
                .stderr(predicate::str::contains(said));
        }
    }
}

#[test]
fn a_second_run_while_one_holds_the_lock_exits_with_a_clear_message() {
    let s = sandbox();
    let _held =
        cm_agent::lock::RunLock::acquire(&s.dir.path().join("lock"), std::time::Duration::ZERO)
            .unwrap();
    agent(&s, "hello")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("another cm-agent run"));
}

#[test]
fn help_describes_apply() {
    Command::cargo_bin("cm-agent")
        .unwrap()
        .args(["apply", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--why-run").and(predicate::str::contains("--run-list")));
}

#[test]
fn cluster_and_member_files_stand_in_for_the_servers_view() {
    let s = sandbox();
    s.cookbook(
        "ring",
        &[
            ("metadata.yaml", "name: ring\nversion: 1.0.0\ncluster: [ring]\n"),
            (
            "recipes/default.yaml",
            "- file: \"{{attrs.root}}/ring\"\n  content: \"me {{member.ring.ordinal}} of {{len cluster.ring}}: {{addresses cluster.ring 7000 \\\",\\\"}}\\n\"\n",
            ),
        ],
    );
    let cluster = s.dir.path().join("cluster.yaml");
    std::fs::write(
        &cluster,
        "ring:\n  - {name: a, ordinal: 0, address: 10.0.0.1}\n  - {name: b, ordinal: 1, address: 'fd00::2'}\n",
    )
    .unwrap();
    let member = s.dir.path().join("member.yaml");
    std::fs::write(&member, "ring: {ordinal: 1}\n").unwrap();
    agent(&s, "ring")
        .arg("--cluster")
        .arg(&cluster)
        .arg("--member")
        .arg(&member)
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(s.root().join("ring")).unwrap(),
        "me 1 of 2: 10.0.0.1:7000,[fd00::2]:7000\n"
    );
}

#[test]
fn cluster_nodes_lists_every_member_of_the_cluster_file_once() {
    let s = sandbox();
    s.cookbook(
        "hosts",
        &[
            ("metadata.yaml", "name: hosts\nversion: 1.0.0\ncluster: all\n"),
            (
                "recipes/default.yaml",
                "- file: \"{{attrs.root}}/host-{{item.name}}\"\n  content: \"{{item.address}} {{join item.roles \\\",\\\"}}\\n\"\n  for_each: cluster_nodes\n",
            ),
        ],
    );
    let cluster = s.dir.path().join("cluster.yaml");
    std::fs::write(
        &cluster,
        "web:\n  - {name: a, ordinal: 0, address: 10.0.0.1}\ncache:\n  - {name: a, ordinal: 0, address: 10.0.0.1}\n  - {name: b, ordinal: 1, address: 10.0.0.2}\n",
    )
    .unwrap();
    agent(&s, "hosts")
        .arg("--cluster")
        .arg(&cluster)
        .assert()
        .success();
    let read = |n: &str| std::fs::read_to_string(s.root().join(format!("host-{n}"))).unwrap();
    assert_eq!(read("a"), "10.0.0.1 cache,web\n");
    assert_eq!(read("b"), "10.0.0.2 cache\n");
}
