//! File system work shared by the file-like providers: owners, modes, atomic
//! writes with backups, and diffs for the converge log.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cm_model::resources::Ownership;

/// Resolve a user name (or numeric uid) through NSS.
pub fn uid_of(user: &str) -> Result<u32, String> {
    if let Ok(n) = user.parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(format!("no user {user:?}")),
        Err(e) => Err(format!("looking up user {user:?}: {e}")),
    }
}

/// Resolve a group name (or numeric gid) through NSS.
pub fn gid_of(group: &str) -> Result<u32, String> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("no group {group:?}")),
        Err(e) => Err(format!("looking up group {group:?}: {e}")),
    }
}

/// Owner, group and mode as numbers, only for what the resource sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
}

impl Wanted {
    pub fn resolve(o: &Ownership) -> Result<Wanted, String> {
        Ok(Wanted {
            uid: o.owner.as_deref().map(uid_of).transpose()?,
            gid: o.group.as_deref().map(gid_of).transpose()?,
            mode: o.mode,
        })
    }

    /// What differs from `meta`, in words for the log ("mode 0600 -> 0644").
    pub fn differences(&self, meta: &std::fs::Metadata) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(u) = self.uid
            && u != meta.uid()
        {
            out.push(format!("owner {} -> {u}", meta.uid()));
        }
        if let Some(g) = self.gid
            && g != meta.gid()
        {
            out.push(format!("group {} -> {g}", meta.gid()));
        }
        if let Some(m) = self.mode
            && m != meta.mode() & 0o7777
        {
            out.push(format!("mode {:04o} -> {m:04o}", meta.mode() & 0o7777));
        }
        out
    }

    /// Apply owner, group and mode to an open file (before it is renamed into place).
    pub fn apply_to_file(&self, f: &std::fs::File) -> std::io::Result<()> {
        if self.uid.is_some() || self.gid.is_some() {
            std::os::unix::fs::fchown(f, self.uid, self.gid)?;
        }
        if let Some(m) = self.mode {
            f.set_permissions(std::fs::Permissions::from_mode(m))?;
        }
        Ok(())
    }

    /// Apply owner, group and mode to a path (not following a final symlink for owners).
    pub fn apply_to_path(&self, path: &Path) -> std::io::Result<()> {
        if self.uid.is_some() || self.gid.is_some() {
            std::os::unix::fs::lchown(path, self.uid, self.gid)?;
        }
        if let Some(m) = self.mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(m))?;
        }
        Ok(())
    }
}

/// Write `content` to `path` atomically: a temp file in the same directory,
/// owner and mode set, fsync, rename, directory fsync. A failure at any step
/// (disk full, permission denied) leaves the old file as it was.
/// New files get mode 0644 unless `wanted` says otherwise; existing ones keep theirs.
pub fn write_atomic(path: &Path, content: &[u8], wanted: &Wanted) -> std::io::Result<()> {
    let existing = std::fs::metadata(path).ok();
    let mut file = atomic_write_file::AtomicWriteFile::options().open(path)?;
    file.write_all(content)?;
    let mut w = *wanted;
    if w.mode.is_none() {
        w.mode = Some(existing.as_ref().map_or(0o644, |m| m.mode() & 0o7777));
    }
    if let Some(m) = &existing {
        w.uid = w.uid.or(Some(m.uid()));
        w.gid = w.gid.or(Some(m.gid()));
    }
    w.apply_to_file(file.as_file())?;
    file.commit()
}

/// [`write_atomic`] for the agent's own secrets (keys, plans): mode 0600.
pub fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let wanted = Wanted {
        mode: Some(0o600),
        ..Wanted::default()
    };
    write_atomic(path, content, &wanted)
}

/// Keep the previous content of `path` under `backup_dir`, newest `keep` copies.
pub fn backup(path: &Path, backup_dir: &Path, keep: u32) -> std::io::Result<Option<PathBuf>> {
    if keep == 0 || !path.is_file() {
        return Ok(None);
    }
    let rel = path.strip_prefix("/").unwrap_or(path);
    let dir = backup_dir.join(rel.parent().unwrap_or(Path::new("")));
    std::fs::create_dir_all(&dir)?;
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let target = dir.join(format!("{base}.{stamp}"));
    std::fs::copy(path, &target)?;
    // Prune the oldest copies of this file beyond `keep`.
    let prefix = format!("{base}.");
    let mut copies: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .is_some_and(|s| s.chars().all(|c| c.is_ascii_digit()))
        })
        .map(|e| e.path())
        .collect();
    copies.sort();
    let excess = copies.len().saturating_sub(keep as usize);
    for old in &copies[..excess] {
        let _ = std::fs::remove_file(old);
    }
    Ok(Some(target))
}

/// A unified diff of two contents for the log; binary content is described, not shown.
pub fn diff(path: &Path, old: Option<&[u8]>, new: &[u8]) -> String {
    let name = path.display().to_string();
    let (Ok(old_text), Ok(new_text)) = (
        std::str::from_utf8(old.unwrap_or_default()),
        std::str::from_utf8(new),
    ) else {
        return format!(
            "binary content changed ({} -> {} bytes)",
            old.map_or(0, <[u8]>::len),
            new.len()
        );
    };
    let d = similar::TextDiff::from_lines(old_text, new_text);
    let from = if old.is_some() {
        name.clone()
    } else {
        "/dev/null".to_string()
    };
    let text = d
        .unified_diff()
        .context_radius(3)
        .header(&from, &name)
        .to_string();
    const MAX_LINES: usize = 400;
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() > MAX_LINES {
        format!(
            "{}\n... {} more lines",
            lines[..MAX_LINES].join("\n"),
            lines.len() - MAX_LINES
        )
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_mode_and_keeps_it_on_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(
            &p,
            b"one",
            &Wanted {
                mode: Some(0o600),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
        write_atomic(&p, b"two", &Wanted::default()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
    }

    #[test]
    fn failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "old").unwrap();
        // An owner that cannot be set (as non-root) or a missing directory makes the write fail.
        let missing_dir = dir.path().join("nope/f");
        assert!(write_atomic(&missing_dir, b"new", &Wanted::default()).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temp file left behind");
    }

    #[test]
    fn backups_keep_the_newest_copies() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("etc/app.conf");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let backups = dir.path().join("backup");
        for i in 0..5 {
            std::fs::write(&p, format!("v{i}")).unwrap();
            backup(&p, &backups, 3).unwrap();
        }
        let kept = backups.join(p.strip_prefix("/").unwrap().parent().unwrap());
        let mut contents: Vec<String> = std::fs::read_dir(kept)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        contents.sort();
        assert_eq!(contents, ["v2", "v3", "v4"]);
    }

    #[test]
    fn diff_shows_lines_and_describes_binary() {
        let d = diff(Path::new("/etc/x"), Some(b"a\nb\n"), b"a\nc\n");
        assert!(d.contains("-b\n+c"), "{d}");
        assert!(diff(Path::new("/x"), Some(&[0xff, 0xfe]), b"x").starts_with("binary"));
    }
}
