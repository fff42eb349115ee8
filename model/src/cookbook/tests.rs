use super::*;
use crate::cookbooks::CookbookSet;

pub(crate) fn write(root: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn memcached(root: &Path) {
    write(
        &root.join("memcached"),
        &[
            (
                "metadata.yaml",
                "name: memcached\nversion: 1.0.0\ndescription: cache\n",
            ),
            ("attributes.yaml", "memcached:\n  port: 11211\n"),
            (
                "recipes/default.yaml",
                "- package: memcached\n- template: /etc/memcached.conf\n  source: memcached.conf.hbs\n",
            ),
            (
                "templates/memcached.conf.hbs",
                "-p {{attrs.memcached.port}}\n",
            ),
            ("files/motd", "hello\n"),
            ("README.md", "# memcached\n"),
        ],
    );
}

#[test]
fn loads_a_cookbook_with_manifest() {
    let dir = tempfile::tempdir().unwrap();
    memcached(dir.path());
    let c = Cookbook::load_dir(&dir.path().join("memcached")).unwrap();
    assert_eq!(c.name(), "memcached");
    assert_eq!(c.recipes["default"].len(), 2);
    assert!(c.templates.contains_key("memcached.conf.hbs"));
    let paths: Vec<_> = c.manifest.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "README.md",
            "attributes.yaml",
            "files/motd",
            "metadata.yaml",
            "recipes/default.yaml",
            "templates/memcached.conf.hbs"
        ]
    );
    let motd = c.manifest.get("files/motd").unwrap();
    assert_eq!(
        (motd.size, motd.sha256.as_str()),
        (
            6,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        )
    );
}

#[test]
fn errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    memcached(dir.path());
    write(
        &dir.path().join("memcached"),
        &[(
            "recipes/broken.yaml",
            "- package: memcached\n- template: /etc/x\n  source: missing.hbs\n",
        )],
    );
    let err = Cookbook::load_dir(&dir.path().join("memcached")).unwrap_err();
    assert!(err.file.ends_with("memcached/recipes/broken.yaml"), "{err}");
    assert_eq!(err.pos.line, 3, "{err}");
}

#[test]
fn symlink_out_of_the_cookbook_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    memcached(dir.path());
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("memcached/files/passwd")).unwrap();
    let err = Cookbook::load_dir(&dir.path().join("memcached")).unwrap_err();
    assert!(err.message.contains("leaves the cookbook"), "{err}");
}

#[test]
fn escaping_paths_in_memory_are_refused() {
    let mut files = BTreeMap::new();
    files.insert(
        "../metadata.yaml".to_string(),
        CookbookFile {
            bytes: b"x".to_vec(),
            mode: 0o644,
        },
    );
    assert!(Cookbook::from_files(Path::new("pushed"), files).is_err());
}

#[test]
fn missing_metadata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("recipes/default.yaml", "")]);
    let err = Cookbook::load_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("metadata.yaml: missing"), "{err}");
}

#[test]
fn dependency_cycle_and_missing_dependency_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "a/metadata.yaml",
                "name: a\nversion: 1.0.0\ndepends:\n  b: '>= 1'\n",
            ),
            (
                "b/metadata.yaml",
                "name: b\nversion: 1.0.0\ndepends:\n  a: '*'\n",
            ),
        ],
    );
    let err = CookbookSet::load_dir(dir.path()).unwrap_err();
    assert!(err.message.contains("a -> b -> a"), "{err}");
    write(
        dir.path(),
        &[(
            "b/metadata.yaml",
            "name: b\nversion: 1.0.0\ndepends:\n  c: '*'\n",
        )],
    );
    let err = CookbookSet::load_dir(dir.path()).unwrap_err();
    assert!(err.message.contains("depends on c"), "{err}");
    write(
        dir.path(),
        &[("b/metadata.yaml", "name: b\nversion: 0.9.0\n")],
    );
    let err = CookbookSet::load_dir(dir.path()).unwrap_err();
    assert!(err.message.contains(">=1"), "{err}");
}

#[test]
fn include_of_a_missing_recipe_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    memcached(dir.path());
    write(
        &dir.path().join("memcached"),
        &[("recipes/extra.yaml", "- include_recipe: memcached::nope\n")],
    );
    let err = CookbookSet::load_dir(dir.path()).unwrap_err();
    assert!(err.message.contains("memcached::nope"), "{err}");
    assert_eq!(err.pos.line, 1);
}

#[test]
fn load_needed_skips_broken_cookbooks_nobody_uses() {
    let dir = tempfile::tempdir().unwrap();
    memcached(dir.path());
    write(
        dir.path(),
        &[(
            "web/metadata.yaml",
            "name: web\nversion: 1.0.0\ndepends:\n  memcached: '~1'\n",
        )],
    );
    write(
        dir.path(),
        &[("broken/metadata.yaml", "name: broken\nversion: one\n")],
    );
    let set = CookbookSet::load_needed(dir.path(), &["web".to_string()]).unwrap();
    assert_eq!(
        set.cookbooks.keys().collect::<Vec<_>>(),
        ["memcached", "web"]
    );
    let err = CookbookSet::load_needed(dir.path(), &["broken".to_string()]).unwrap_err();
    assert_eq!(err.pos.line, 2, "{err}");
}

#[test]
fn ambiguous_attributes_are_refused_naming_the_file_unless_pushed_before() {
    let dir = tempfile::tempdir().unwrap();
    memcached(dir.path());
    let root = dir.path().join("memcached");
    write(
        &root,
        &[(
            "attributes.yaml",
            "memcached:\n  port: 11211\n  mode: 0644\n",
        )],
    );
    let err = Cookbook::load_dir(&root).unwrap_err();
    assert!(err.file.ends_with("memcached/attributes.yaml"), "{err}");
    assert_eq!((err.pos.line, err.pos.column), (3, 9), "{err}");
    assert!(
        err.message
            .ends_with("write \"0644\" (quoted) for the string, or 644 for the number"),
        "{err}"
    );
    let files = read_tree(&root).unwrap();
    let before = Cookbook::from_files_with(&root, files, Reading::AsBefore).unwrap();
    assert_eq!(
        before.attributes["memcached"]["mode"],
        serde_json::json!(644.0)
    );
    assert_eq!(before.attributes["memcached"]["port"].to_string(), "11211");
}
