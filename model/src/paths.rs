//! Relative paths inside a cookbook: nothing from a cookbook, a request or an
//! archive may name a place outside it.

use std::path::{Component, Path, PathBuf};

/// Check that `rel` is a plain relative path: no `..`, no root, no prefix, not empty.
pub fn check_relative(rel: &str) -> Result<PathBuf, String> {
    if rel.is_empty() {
        return Err("path is empty".into());
    }
    if rel.contains('\0') || rel.contains('\\') {
        return Err(format!("{rel:?}: path holds a NUL or a backslash"));
    }
    let path = Path::new(rel);
    for c in path.components() {
        match c {
            Component::Normal(_) => {}
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("{rel:?}: '..' leaves the cookbook")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{rel:?}: absolute paths are not allowed here"));
            }
        }
    }
    let clean: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if clean.as_os_str().is_empty() {
        return Err(format!("{rel:?} names no file"));
    }
    Ok(clean)
}

/// Resolve `rel` under `root`, refusing anything (including symlinks) that ends up outside.
pub fn resolve_inside(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let clean = check_relative(rel)?;
    let joined = root.join(&clean);
    let real_root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    match joined.canonicalize() {
        Ok(real) if real.starts_with(&real_root) => Ok(joined),
        Ok(real) => Err(format!(
            "{rel:?} resolves to {} outside the cookbook",
            real.display()
        )),
        Err(e) => Err(format!("{rel:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escapes() {
        assert!(check_relative("../etc/passwd").is_err());
        assert!(check_relative("a/../../b").is_err());
        assert!(check_relative("/etc/passwd").is_err());
        assert!(check_relative("").is_err());
        assert!(check_relative("./.").is_err());
        assert_eq!(check_relative("./a/b").unwrap(), PathBuf::from("a/b"));
    }

    #[test]
    fn refuses_symlink_out() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("out")).unwrap();
        assert!(resolve_inside(dir.path(), "out/hostname").is_err());
        std::fs::write(dir.path().join("in"), "x").unwrap();
        assert!(resolve_inside(dir.path(), "in").is_ok());
    }
}
