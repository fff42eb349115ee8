//! The walk and the handle operations, on real directories, as root.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::path::Path;

use nix::sys::stat::Mode;

use super::*;

const NOBODY: u32 = 65534;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A root-owned 0755 temp dir (tempdir makes 0700, which is fine for the rule too).
fn root_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    dir
}

#[test]
fn plain_directories_are_reached() {
    let dir = root_dir();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    let d = open_dir(&dir.path().join("a/b"), Missing::Fail).unwrap();
    assert_eq!(d.path(), dir.path().join("a/b"));
    let e = open_dir(&dir.path().join("a/c/d"), Missing::Fail).unwrap_err();
    assert!(
        matches!(&e, SafePathError::Missing { path } if path.ends_with("a/c")),
        "{e}"
    );
    std::fs::write(dir.path().join("a/f"), "x").unwrap();
    let e = open_dir(&dir.path().join("a/f/g"), Missing::Fail).unwrap_err();
    assert!(matches!(e, SafePathError::NotADirectory { .. }), "{e}");
}

#[test]
fn system_links_owned_by_root_are_followed() {
    // Debian's own: /var/run -> /run, and merged /usr (/bin -> usr/bin). Read only.
    for path in ["/var/run", "/bin", "/lib"] {
        let meta = std::fs::symlink_metadata(path).unwrap();
        if meta.file_type().is_symlink() {
            let d = open_dir(Path::new(path), Missing::Fail).unwrap();
            assert_eq!(d.path(), std::fs::canonicalize(path).unwrap(), "{path}");
        }
    }
}

#[test]
fn relative_and_absolute_root_links_are_followed() {
    let dir = root_dir();
    let root = dir.path();
    std::fs::create_dir_all(root.join("run/app")).unwrap();
    std::fs::create_dir(root.join("var")).unwrap();
    chmod(&root.join("var"), 0o755);
    symlink("../run", root.join("var/run")).unwrap();
    symlink(root.join("run"), root.join("abs")).unwrap();
    let d = open_dir(&root.join("var/run/app"), Missing::Fail).unwrap();
    assert_eq!(d.path(), root.join("run/app"));
    let d = open_dir(&root.join("abs/app"), Missing::Fail).unwrap();
    assert_eq!(d.path(), root.join("run/app"));
}

#[test]
fn planted_links_are_refused_with_the_reason() {
    let dir = root_dir();
    let root = dir.path();
    std::fs::create_dir_all(root.join("target")).unwrap();
    let home = root.join("home");
    std::fs::create_dir(&home).unwrap();
    symlink(root.join("target"), home.join("link")).unwrap();
    let reason = |home_owner: (u32, u32), home_mode: u32, link_owner: u32| {
        lchown(&home, Some(home_owner.0), Some(home_owner.1)).unwrap();
        chmod(&home, home_mode);
        lchown(home.join("link"), Some(link_owner), Some(link_owner)).unwrap();
        match open_dir(&home.join("link"), Missing::Fail) {
            Err(SafePathError::UntrustedLink { link, why }) => {
                assert_eq!(link, home.join("link"));
                Some(why)
            }
            Err(e) => panic!("{e}"),
            Ok(_) => None,
        }
    };
    assert_eq!(
        reason((0, 0), 0o755, NOBODY),
        Some(Distrust::LinkOwner(NOBODY))
    );
    assert_eq!(
        reason((NOBODY, 0), 0o755, 0),
        Some(Distrust::DirectoryOwner(NOBODY))
    );
    assert_eq!(
        reason((0, 0), 0o1777, 0),
        Some(Distrust::DirectoryWorldWritable)
    );
    assert_eq!(
        reason((0, NOBODY), 0o775, 0),
        Some(Distrust::DirectoryGroupWritable(NOBODY))
    );
    assert_eq!(reason((0, 0), 0o775, 0), None, "group root may write");
    assert_eq!(reason((0, NOBODY), 0o755, 0), None);
}

#[test]
fn link_loops_stop() {
    let dir = root_dir();
    symlink(dir.path().join("b"), dir.path().join("a")).unwrap();
    symlink(dir.path().join("a"), dir.path().join("b")).unwrap();
    let e = open_dir(&dir.path().join("a/x"), Missing::Fail).unwrap_err();
    assert!(matches!(e, SafePathError::TooManyLinks { .. }), "{e}");
}

#[test]
fn missing_directories_are_created_with_their_mode() {
    let dir = root_dir();
    let d = open_dir(&dir.path().join("a/b/c"), Missing::Create(0o750)).unwrap();
    assert_eq!(d.path(), dir.path().join("a/b/c"));
    for p in ["a", "a/b", "a/b/c"] {
        let m = std::fs::metadata(dir.path().join(p)).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o750, "{p}");
    }
}

#[test]
fn a_component_swapped_after_the_walk_changes_nothing() {
    let dir = root_dir();
    let root = dir.path();
    std::fs::create_dir_all(root.join("etc/app")).unwrap();
    std::fs::create_dir(root.join("elsewhere")).unwrap();
    let (d, name) = open_parent(&root.join("etc/app/app.conf"), Missing::Fail).unwrap();
    // After the check, someone moves the directory away and plants a link.
    std::fs::rename(root.join("etc/app"), root.join("etc/moved")).unwrap();
    symlink(root.join("elsewhere"), root.join("etc/app")).unwrap();
    let own = FileOwnership {
        uid: None,
        gid: None,
        mode: 0o644,
    };
    d.write_file(&name, b"x\n", own).unwrap();
    assert_eq!(
        std::fs::read(root.join("etc/moved/app.conf")).unwrap(),
        b"x\n"
    );
    assert_eq!(
        std::fs::read_dir(root.join("elsewhere")).unwrap().count(),
        0
    );
}

#[test]
fn a_final_link_is_reported_and_replaced_never_followed() {
    let dir = root_dir();
    let root = dir.path();
    std::fs::write(root.join("secret"), "TOPSECRET").unwrap();
    symlink(root.join("secret"), root.join("conf")).unwrap();
    let d = open_dir(root, Missing::Fail).unwrap();
    let name = OsStr::new("conf");
    match d.read_file(name).unwrap() {
        Existing::Symlink { target, stat } => {
            assert_eq!(target, root.join("secret"));
            assert_eq!(stat.kind, Kind::Symlink);
        }
        other => panic!("{other:?}"),
    }
    let own = FileOwnership {
        uid: Some(NOBODY),
        gid: Some(NOBODY),
        mode: 0o640,
    };
    d.write_file(name, b"new", own).unwrap();
    let meta = std::fs::symlink_metadata(root.join("conf")).unwrap();
    assert!(meta.is_file());
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (NOBODY, NOBODY, 0o640)
    );
    assert_eq!(
        std::fs::read_to_string(root.join("secret")).unwrap(),
        "TOPSECRET"
    );
    match d.read_file(name).unwrap() {
        Existing::File { content, stat } => {
            assert_eq!(content, b"new");
            assert_eq!(stat.size, 3);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn special_files_are_refused_without_blocking() {
    let dir = root_dir();
    nix::unistd::mkfifo(&dir.path().join("pipe"), Mode::from_bits_truncate(0o644)).unwrap();
    let d = open_dir(dir.path(), Missing::Fail).unwrap();
    let e = d.read_file(OsStr::new("pipe")).unwrap_err();
    assert!(e.to_string().contains("named pipe"), "{e}");
}

#[test]
fn a_failed_write_leaves_the_old_entry_and_no_temp_file() {
    let dir = root_dir();
    std::fs::create_dir_all(dir.path().join("taken/inside")).unwrap();
    let d = open_dir(dir.path(), Missing::Fail).unwrap();
    let own = FileOwnership {
        uid: None,
        gid: None,
        mode: 0o644,
    };
    // A regular file cannot be renamed over a directory.
    assert!(d.write_file(OsStr::new("taken"), b"x", own).is_err());
    let names: Vec<_> = d.names().unwrap();
    assert_eq!(names, ["taken"]);
    assert!(dir.path().join("taken/inside").is_dir());
}

#[test]
fn removing_a_tree_never_follows_links_inside_it() {
    let dir = root_dir();
    let root = dir.path();
    std::fs::create_dir_all(root.join("keep")).unwrap();
    std::fs::write(root.join("keep/file"), "kept").unwrap();
    std::fs::create_dir_all(root.join("gone/sub")).unwrap();
    std::fs::write(root.join("gone/sub/f"), "x").unwrap();
    symlink(root.join("keep"), root.join("gone/sub/link")).unwrap();
    let d = open_dir(root, Missing::Fail).unwrap();
    d.remove_tree(OsStr::new("gone")).unwrap();
    assert!(!root.join("gone").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("keep/file")).unwrap(),
        "kept"
    );
}

#[test]
fn a_scope_syncs_each_directory_written_in_once_at_its_end() {
    let dir = root_dir();
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    let a = open_dir(&dir.path().join("a"), Missing::Fail).unwrap();
    let b = open_dir(dir.path(), Missing::Fail).unwrap();
    let own = FileOwnership {
        uid: None,
        gid: None,
        mode: 0o644,
    };
    // Outside a scope nothing waits.
    a.write_file(OsStr::new("f0"), b"x", own).unwrap();
    assert!(deferred::noted().is_empty());

    let scope = DeferredSyncs::begin();
    a.write_file(OsStr::new("f1"), b"x", own).unwrap();
    b.make_dir(OsStr::new("c"), 0o755).unwrap();
    a.write_file(OsStr::new("f2"), b"y", own).unwrap();
    // Written at once; each directory noted once, in order.
    assert_eq!(std::fs::read(dir.path().join("a/f2")).unwrap(), b"y");
    assert_eq!(
        deferred::noted(),
        [dir.path().join("a"), dir.path().to_path_buf()]
    );
    // A removal syncs at once: what was removed must not come back.
    b.remove_dir(OsStr::new("c")).unwrap();
    a.remove_file(OsStr::new("f0")).unwrap();
    assert_eq!(deferred::noted().len(), 2);
    // An inner scope neither takes them nor ends the outer one.
    DeferredSyncs::begin().finish().unwrap();
    assert_eq!(deferred::noted().len(), 2);
    // Another thread syncs at once.
    std::thread::scope(|s| {
        s.spawn(|| {
            a.write_file(OsStr::new("f3"), b"z", own).unwrap();
            assert!(deferred::noted().is_empty());
        });
    });
    scope.finish().unwrap();
    assert!(deferred::noted().is_empty());
    a.write_file(OsStr::new("f4"), b"x", own).unwrap();
    assert!(deferred::noted().is_empty(), "the scope is over");
}
