//! The user and group providers against this machine's real tools and
//! files (useradd, gpasswd, /etc/group). They need root (CI runs as root);
//! elsewhere each test says why it did nothing. Every test uses names of its
//! own and cleans up after itself, also when it fails.

mod support;

use std::path::{Path, PathBuf};

use serde_json::json;
use support::system::{Cleanup, converge, resource, sh, why_run};

fn user(name: &str) -> Option<nix::unistd::User> {
    nix::unistd::User::from_name(name).unwrap()
}

fn group_line(name: &str) -> Option<(u32, Vec<String>)> {
    let text = std::fs::read_to_string("/etc/group").unwrap();
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() == 4 && f[0] == name).then(|| {
            let members = f[3].split(',').filter(|m| !m.is_empty()).map(String::from);
            (f[2].parse().unwrap(), members.collect())
        })
    })
}

/// A gid no group has, so the test can ask for one.
fn free_gid(from: u32) -> u32 {
    let text = std::fs::read_to_string("/etc/group").unwrap();
    (from..)
        .find(|g| !text.contains(&format!(":{g}:")))
        .unwrap()
}

#[test]
fn user_is_created_then_unchanged_then_repaired_then_removed() {
    if !support::require_root("managing accounts") {
        return;
    }
    let name = format!("cmtu{}", std::process::id());
    let extra = format!("cmtx{}", std::process::id());
    let home = format!("/home/{name}");
    let _cleanup = Cleanup::new(&[
        &["userdel", "-r", &name],
        &["groupdel", &name],
        &["groupdel", &extra],
    ]);
    assert!(sh("groupadd", &[&extra]));
    let spec = json!({"username": name, "shell": "/bin/sh", "comment": "cm test",
        "home": home, "manage_home": true, "groups": [extra]});
    let r = resource("user", spec.clone());

    assert_eq!(why_run(&r, "create"), ["created"]);
    assert!(user(&name).is_none(), "why-run created the user");

    assert_eq!(converge(&r, "create"), ["created"]);
    let u = user(&name).expect("user exists");
    assert_eq!(u.shell, PathBuf::from("/bin/sh"));
    assert_eq!(u.gecos.to_str().unwrap(), "cm test");
    assert!(Path::new(&home).is_dir(), "manage_home made the home");
    // Without `group`, useradd gave the user a group of its own name.
    assert_eq!(group_line(&name).map(|g| g.0), Some(u.gid.as_raw()));
    assert!(group_line(&extra).unwrap().1.contains(&name));

    assert_eq!(converge(&r, "create"), Vec::<String>::new(), "second run");

    // Drift by hand: a shell and a supplementary group.
    assert!(sh("usermod", &["-s", "/bin/bash", &name]));
    assert!(sh("gpasswd", &["-d", &name, &extra]));
    assert_eq!(
        converge(&r, "create"),
        [
            "shell \"/bin/bash\" -> \"/bin/sh\"".to_string(),
            format!("added to groups {extra}")
        ]
    );
    assert_eq!(user(&name).unwrap().shell, PathBuf::from("/bin/sh"));
    assert!(group_line(&extra).unwrap().1.contains(&name));

    // A changed spec changes only what differs.
    let mut changed = spec.clone();
    changed["comment"] = json!("cm test, changed");
    let r2 = resource("user", changed);
    assert_eq!(
        converge(&r2, "create"),
        ["comment \"cm test\" -> \"cm test, changed\""]
    );
    assert_eq!(converge(&r2, "create"), Vec::<String>::new());

    assert_eq!(why_run(&r, "remove"), ["removed with its home directory"]);
    assert!(user(&name).is_some());
    assert_eq!(converge(&r, "remove"), ["removed with its home directory"]);
    assert!(user(&name).is_none() && !Path::new(&home).exists());
    assert_eq!(converge(&r, "remove"), Vec::<String>::new());
}

#[test]
fn group_members_are_appended_or_made_exact_and_drift_is_repaired() {
    if !support::require_root("managing groups") {
        return;
    }
    let pid = std::process::id();
    let (name, a, b) = (
        format!("cmtg{pid}"),
        format!("cmta{pid}"),
        format!("cmtb{pid}"),
    );
    let _cleanup = Cleanup::new(&[&["groupdel", &name], &["userdel", &a], &["userdel", &b]]);
    for m in [&a, &b] {
        assert!(sh("useradd", &["-M", "-U", m]), "useradd {m}");
    }
    let gid = free_gid(23000);
    let r = resource(
        "group",
        json!({"group_name": name, "gid": gid, "members": [a]}),
    );

    assert_eq!(
        why_run(&r, "create"),
        [format!("created with gid {gid}"), format!("members {a}")]
    );
    assert!(group_line(&name).is_none(), "why-run created the group");
    converge(&r, "create");
    assert_eq!(group_line(&name), Some((gid, vec![a.clone()])));
    assert_eq!(converge(&r, "create"), Vec::<String>::new(), "second run");

    let append = resource("group", json!({"group_name": name, "members": [b]}));
    assert_eq!(converge(&append, "create"), [format!("added members {b}")]);
    assert_eq!(group_line(&name).unwrap().1, [a.clone(), b.clone()]);

    let exact = resource(
        "group",
        json!({"group_name": name, "members": [b], "append": false}),
    );
    assert_eq!(converge(&exact, "create"), [format!("removed members {a}")]);
    assert_eq!(group_line(&name).unwrap().1, std::slice::from_ref(&b));
    assert!(sh("gpasswd", &["-a", &a, &name]), "drift by hand");
    assert_eq!(converge(&exact, "create"), [format!("removed members {a}")]);
    assert_eq!(converge(&exact, "create"), Vec::<String>::new());

    let new_gid = free_gid(gid + 1);
    let moved = resource("group", json!({"group_name": name, "gid": new_gid}));
    assert_eq!(
        converge(&moved, "create"),
        [format!("gid {gid} -> {new_gid}")]
    );
    assert_eq!(group_line(&name).unwrap().0, new_gid);

    assert_eq!(converge(&r, "remove"), ["removed"]);
    assert!(group_line(&name).is_none());
    assert_eq!(converge(&r, "remove"), Vec::<String>::new());
}
