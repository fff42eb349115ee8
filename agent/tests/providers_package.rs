//! The package provider against the real apt and dpkg of this machine (root only:
//! CI runs as root; elsewhere the test says why it did nothing).

mod support;

use support::{Sandbox, ok};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn installed(name: &str) -> bool {
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Status}", name])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout) == "installed")
}

fn purge(names: &[&str]) {
    let _ = std::process::Command::new("apt-get")
        .args(["purge", "-y", "-q"])
        .args(names)
        .output();
}

#[test]
fn installs_adjacent_packages_in_one_apt_get_then_changes_nothing_then_removes() {
    if !is_root() {
        eprintln!("skipped: installing packages needs root (CI runs as root)");
        return;
    }
    // Two tiny packages with no dependencies to speak of.
    let names = ["sl", "figlet"];
    purge(&names);
    let s = Sandbox::new();
    s.cookbook(
        "pkgs",
        &[
            ("recipes/default.yaml", "- package: sl\n- package: figlet\n"),
            (
                "recipes/remove.yaml",
                "- package: sl\n  action: remove\n- package: figlet\n  action: purge\n",
            ),
        ],
    );
    let why = ok(&s.why_run("pkgs")).clone();
    assert_eq!(why.resources_changed, 2);
    assert!(!installed("sl"), "why-run installed a package");

    let first = s.apply("pkgs");
    purge_on_failure(&first, &names);
    ok(&first);
    assert!(installed("sl") && installed("figlet"));
    assert_eq!(first.resources_changed, 2);
    // The second package went into the first one's apt-get.
    assert!(
        first.resources[1].changes[0].contains("one apt-get"),
        "{:?}",
        first.resources[1].changes
    );

    assert_eq!(ok(&s.apply("pkgs")).resources_changed, 0);

    let removed = ok(&s.apply("pkgs::remove")).clone();
    assert_eq!(removed.resources_changed, 2);
    assert!(!installed("sl") && !installed("figlet"));
    assert_eq!(ok(&s.apply("pkgs::remove")).resources_changed, 0);
}

#[test]
fn unknown_package_fails_with_apts_reason() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = Sandbox::new();
    s.cookbook(
        "bad",
        &[(
            "recipes/default.yaml",
            "- package: cm-no-such-package-xyz\n  lock_timeout: 30\n",
        )],
    );
    let r = s.apply("bad");
    assert!(!r.succeeded());
    let e = r.resources[0].error.as_deref().unwrap();
    assert!(
        e.contains("cm-no-such-package-xyz") && e.contains("Unable to locate"),
        "{e}"
    );
}

fn purge_on_failure(r: &cm_model::report::RunReport, names: &[&str]) {
    if !r.succeeded() {
        purge(names);
    }
}
