//! Paths from cookbooks. Relative paths inside a cookbook: nothing from a
//! cookbook, a request or an archive may name a place outside it. Absolute
//! paths on the node: written plainly, so the path checked is the path used
//! (no `..`, `.`, `//`), checked again after rendering.

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

/// Why an absolute path on the node is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbsolutePathError {
    #[error("{0:?} must be an absolute path")]
    NotAbsolute(String),
    #[error("{0:?} holds a NUL byte")]
    Nul(String),
    #[error("{0:?} holds '//': write each '/' once")]
    DoubleSlash(String),
    #[error("{0:?} holds a '..' component: write the path it leads to")]
    ParentDir(String),
    #[error("{0:?} holds a '.' component: write the path without it")]
    CurDir(String),
    #[error("{0:?} ends with '/': write the path without it")]
    TrailingSlash(String),
    #[error("{0:?} is /: refusing to manage the root directory")]
    Root(String),
}

/// Check that `path` is absolute and plain: no `..` or `.` component, no `//`,
/// no trailing `/`. `/` itself passes (a working directory may be `/`).
pub fn check_absolute_path(path: &str) -> Result<(), AbsolutePathError> {
    let owned = || path.to_string();
    if !path.starts_with('/') {
        return Err(AbsolutePathError::NotAbsolute(owned()));
    }
    if path.contains('\0') {
        return Err(AbsolutePathError::Nul(owned()));
    }
    if path == "/" {
        return Ok(());
    }
    if path.contains("//") {
        return Err(AbsolutePathError::DoubleSlash(owned()));
    }
    if path.ends_with('/') {
        return Err(AbsolutePathError::TrailingSlash(owned()));
    }
    for part in path[1..].split('/') {
        match part {
            ".." => return Err(AbsolutePathError::ParentDir(owned())),
            "." => return Err(AbsolutePathError::CurDir(owned())),
            _ => {}
        }
    }
    Ok(())
}

/// [`check_absolute_path`] for a path the agent writes, creates or deletes:
/// `/` itself is refused too.
pub fn check_managed_path(path: &str) -> Result<(), AbsolutePathError> {
    check_absolute_path(path)?;
    if path == "/" {
        return Err(AbsolutePathError::Root(path.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_must_be_plain() {
        for ok in ["/etc/app.conf", "/srv/app/..x", "/srv/.hidden", "/a/b.c/d"] {
            assert_eq!(check_managed_path(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_absolute_path("/"), Ok(()));
        let refused = [
            ("etc/app.conf", "must be an absolute path"),
            ("/srv/app/../x", "'..'"),
            ("/a/../..", "'..'"),
            ("/a/..", "'..'"),
            ("/etc/./app.conf", "'.'"),
            ("/etc//passwd", "'//'"),
            ("//etc", "'//'"),
            ("/etc/app/", "ends with '/'"),
            ("/etc/a\0b", "NUL"),
            ("/", "refusing to manage"),
        ];
        for (path, why) in refused {
            let e = check_managed_path(path).unwrap_err().to_string();
            assert!(e.contains(why), "{path}: {e}");
        }
    }

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
