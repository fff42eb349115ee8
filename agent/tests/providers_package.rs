//! The package provider against the real apt and dpkg of this machine (root only:
//! CI runs as root; elsewhere each test says why it did nothing). These tests
//! change the machine's dpkg state, so they run one at a time
//! (.config/nextest.toml; tests/cluster/providers.sh passes --test-threads 1).

mod support;

use support::{Sandbox, ok};

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
    if !support::require_root("installing packages") {
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
    if !support::require_root("running apt-get and dpkg") {
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

/// A local package whose postinst kills the dpkg running it, the first
/// time only: dpkg is left interrupted, as by a power cut mid-install.
fn package_that_interrupts_dpkg(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let root = dir.join("pkg");
    let marker = dir.join("killed-once");
    support::write(
        &root.join("DEBIAN/control"),
        &format!(
            "Package: {name}\nVersion: 1.0\nArchitecture: all\n\
             Maintainer: cm tests <root@localhost>\nDescription: cm test package\n"
        ),
    );
    support::write(
        &root.join("DEBIAN/postinst"),
        &format!(
            "#!/bin/sh\nif [ ! -e {m} ]; then touch {m}; kill -KILL $PPID; fi\nexit 0\n",
            m = marker.display()
        ),
    );
    std::fs::set_permissions(
        root.join("DEBIAN/postinst"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let deb = dir.join(format!("{name}.deb"));
    let built = std::process::Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    deb
}

/// Purges the test package when dropped, also when the test fails.
struct PurgeOnDrop(&'static str);

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("dpkg")
            .args(["--configure", "-a"])
            .output();
        let _ = std::process::Command::new("dpkg")
            .args(["--purge", self.0])
            .output();
    }
}

#[test]
fn interrupted_dpkg_is_repaired_before_the_first_package_action_and_reported() {
    if !support::require_root("running apt-get and dpkg") {
        return;
    }
    const NAME: &str = "cm-test-interrupted";
    let _purge = PurgeOnDrop(NAME);
    let work = tempfile::tempdir().unwrap();
    let deb = package_that_interrupts_dpkg(work.path(), NAME);
    let killed = std::process::Command::new("dpkg")
        .arg("-i")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(!killed.status.success());
    let admin = std::path::Path::new(cm_agent::resources::dpkg::ADMIN_DIR);
    assert!(cm_agent::resources::dpkg::interrupted(admin));
    assert!(!installed(NAME), "half-configured, not installed");

    let s = Sandbox::new();
    s.cookbook(
        "repair",
        &[(
            "recipes/default.yaml",
            &format!("- package: {NAME}\n  lock_timeout: 600\n"),
        )],
    );
    let why = ok(&s.why_run("repair")).clone();
    assert_eq!(
        why.resources[0].changes[0],
        "dpkg --configure -a (dpkg was interrupted)"
    );
    assert!(
        cm_agent::resources::dpkg::interrupted(admin),
        "why-run repaired dpkg"
    );

    // The repair configures the package: nothing is left for apt-get to do.
    let repaired = ok(&s.apply("repair")).clone();
    assert_eq!(
        repaired.resources[0].changes,
        ["dpkg --configure -a (dpkg was interrupted)"]
    );
    assert!(!cm_agent::resources::dpkg::interrupted(admin));
    assert!(installed(NAME));
    assert_eq!(ok(&s.apply("repair")).resources_changed, 0);
}

/// The version dpkg has installed of `name`, if any.
fn installed_version(name: &str) -> Option<String> {
    installed(name).then(|| {
        let out = std::process::Command::new("dpkg-query")
            .args(["-W", "-f", "${Version}", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

/// A package in several versions, in a local file repository apt reads
/// (`deb [trusted=yes] file:DIR ./`). Dropped: the package purged, the
/// source and its lists removed.
struct LocalRepo {
    dir: tempfile::TempDir,
    name: &'static str,
    list: std::path::PathBuf,
}

impl LocalRepo {
    fn publish(name: &'static str, versions: &[&str]) -> LocalRepo {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // apt reads file: repositories as its own unprivileged user.
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
        let mut index = String::new();
        for version in versions {
            let root = dir.path().join(format!("build-{version}"));
            support::write(
                &root.join("DEBIAN/control"),
                &format!(
                    "Package: {name}\nVersion: {version}\nArchitecture: all\n\
                     Maintainer: cm tests <root@localhost>\nDescription: cm test package\n"
                ),
            );
            let file = format!("{name}_{version}_all.deb");
            let built = std::process::Command::new("dpkg-deb")
                .args(["--build", "--root-owner-group"])
                .arg(&root)
                .arg(dir.path().join(&file))
                .output()
                .unwrap();
            assert!(built.status.success(), "{built:?}");
            std::fs::remove_dir_all(&root).unwrap();
            let deb = std::fs::read(dir.path().join(&file)).unwrap();
            index.push_str(&format!(
                "Package: {name}\nVersion: {version}\nArchitecture: all\n\
                 Maintainer: cm tests <root@localhost>\nDescription: cm test package\n\
                 Filename: ./{file}\nSize: {}\nSHA256: {}\n\n",
                deb.len(),
                cm_model::manifest::sha256_hex(&deb)
            ));
        }
        std::fs::write(dir.path().join("Packages"), index).unwrap();
        let list = std::path::PathBuf::from(format!("/etc/apt/sources.list.d/{name}.list"));
        let source = format!("deb [trusted=yes] file:{} ./\n", dir.path().display());
        std::fs::write(&list, source).unwrap();
        LocalRepo { dir, name, list }
    }
}

impl Drop for LocalRepo {
    fn drop(&mut self) {
        purge(&[self.name]);
        let _ = std::fs::remove_file(&self.list);
        // apt keeps the repository's lists under its path, '/' made '_'.
        let prefix = self.dir.path().display().to_string().replace('/', "_");
        for entry in std::fs::read_dir("/var/lib/apt/lists")
            .into_iter()
            .flatten()
        {
            let entry = entry.unwrap();
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[test]
fn a_pinned_version_is_installed_upgraded_to_the_candidate_and_pinned_back() {
    if !support::require_root("installing packages") {
        return;
    }
    const NAME: &str = "cm-test-pinned";
    let _repo = LocalRepo::publish(NAME, &["1.0", "2.0"]);
    let s = Sandbox::new();
    s.cookbook(
        "pinned",
        &[
            (
                "recipes/default.yaml",
                &format!("- package: {NAME}\n  version: \"1.0\"\n  lock_timeout: 600\n"),
            ),
            (
                "recipes/upgrade.yaml",
                &format!("- package: {NAME}\n  action: upgrade\n  lock_timeout: 600\n"),
            ),
            (
                "recipes/any.yaml",
                &format!("- package: {NAME}\n  lock_timeout: 600\n"),
            ),
        ],
    );
    let changes = |r: &cm_model::report::RunReport| ok(r).resources[0].changes.clone();

    assert_eq!(changes(&s.why_run("pinned")), ["installed 1.0"]);
    assert_eq!(installed_version(NAME), None, "why-run installed it");
    // apt does not know the repository yet: the agent refreshes the lists once.
    assert_eq!(changes(&s.apply("pinned")), ["installed 1.0"]);
    assert_eq!(installed_version(NAME).as_deref(), Some("1.0"));
    assert_eq!(ok(&s.apply("pinned")).resources_changed, 0);
    assert_eq!(
        ok(&s.apply("pinned::any")).resources_changed,
        0,
        "an installed package without a pin is up to date"
    );

    assert_eq!(changes(&s.why_run("pinned::upgrade")), ["1.0 -> 2.0"]);
    assert_eq!(installed_version(NAME).as_deref(), Some("1.0"));
    assert_eq!(changes(&s.apply("pinned::upgrade")), ["1.0 -> 2.0"]);
    assert_eq!(installed_version(NAME).as_deref(), Some("2.0"));
    assert_eq!(ok(&s.apply("pinned::upgrade")).resources_changed, 0);

    // The pin wins again, downgrade included.
    assert_eq!(changes(&s.apply("pinned")), ["version 2.0 -> 1.0"]);
    assert_eq!(installed_version(NAME).as_deref(), Some("1.0"));
}

/// The status file read directly agrees with `dpkg-query` on every package
/// this machine knows (the check a no-op run makes without a process).
#[test]
fn status_file_reads_every_package_as_dpkg_query_does() {
    use cm_agent::resources::dpkg_status;
    let out = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Package}\t${db:Status-Status}\t${Version}\n"])
        .output();
    if !support::require(out.is_ok(), "dpkg-query (a Debian or Ubuntu machine)") {
        return;
    }
    let out = out.expect("checked above");
    let mut expected = std::collections::BTreeMap::<String, Option<String>>::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split('\t');
        let (Some(p), Some(status), Some(v)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let slot = expected.entry(p.to_string()).or_default();
        if slot.is_none() && status == "installed" {
            *slot = Some(v.to_string());
        }
    }
    assert!(expected.len() > 50, "{} packages", expected.len());
    let names: std::collections::BTreeSet<&str> = expected
        .keys()
        .map(String::as_str)
        .chain(["cm-no-such-package"])
        .collect();
    let read = dpkg_status::installed_versions(&dpkg_status::admin_dir(), &names)
        .expect("this machine's dpkg has no pending journal");
    for (name, version) in &expected {
        assert_eq!(&read[name], version, "{name}");
    }
    assert_eq!(read["cm-no-such-package"], None);
}
