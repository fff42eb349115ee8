//! `cm-server restore DIR`: a backup back into a data dir, and
//! `cm-server restore --check DIR`: whether a backup is whole.
//!
//! Nothing is trusted before it is checked: the manifest must list exactly
//! the files present, every file must hash to its manifest digest, the
//! database snapshot must pass SQLite's integrity check, and every blob it
//! references must be in the backup. A restore copies into a staging
//! directory, hashing as it copies, checks the copy, and only then moves it
//! into the data dir, which must be absent or empty: a restore never mixes
//! a backup with other state.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rand::RngCore;

use super::backup::{BLOBS, DATABASE};
use super::files;
use super::manifest::{BackupFile, BackupManifest, MANIFEST, SHA256SUMS};
use super::snapshot;
use crate::blobs::Blobs;

/// Check the backup in `dir` in place, changing nothing. Returns its
/// manifest.
pub async fn check(dir: &Path) -> Result<BackupManifest> {
    let manifest = read_checked_listing(dir)?;
    for file in &manifest.files {
        let actual = files::hash_file(&dir.join(&file.path))?;
        compare(dir, file, actual)?;
    }
    check_database(dir, &manifest).await?;
    Ok(manifest)
}

/// Restore the backup in `dir` into `data_dir`, which must be absent or
/// empty. Returns the backup's manifest.
pub async fn restore(dir: &Path, data_dir: &Path) -> Result<BackupManifest> {
    if !files::is_absent_or_empty(data_dir)? {
        bail!(
            "{} is not empty: restore into an empty or absent data dir (move the old one aside \
             first)",
            data_dir.display()
        );
    }
    let manifest = read_checked_listing(dir)?;
    let staging = Staging::new(data_dir)?;
    let staged = stage(dir, &manifest, &staging.dir).await;
    match staged {
        Ok(()) => staging.move_into_place()?,
        Err(e) => {
            staging.discard();
            return Err(e);
        }
    }
    Ok(manifest)
}

/// Copy every file into `staging`, hashing as it goes, then check the copy.
async fn stage(dir: &Path, manifest: &BackupManifest, staging: &Path) -> Result<()> {
    for file in &manifest.files {
        let actual = files::copy_hashed(&dir.join(&file.path), &staging.join(&file.path))?;
        compare(dir, file, actual)?;
    }
    let paths: Vec<String> = manifest.files.iter().map(|f| f.path.clone()).collect();
    files::sync_dirs_of(staging, &paths)?;
    check_database(staging, manifest).await
}

/// The manifest, and a check that it lists exactly the files in `dir`.
fn read_checked_listing(dir: &Path) -> Result<BackupManifest> {
    let manifest = BackupManifest::read(dir)?;
    let present: BTreeSet<String> = files::walk(dir)?
        .into_iter()
        .filter(|p| p != MANIFEST && p != SHA256SUMS)
        .collect();
    let listed: BTreeSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    if let Some(extra) = present.iter().find(|p| !listed.contains(p.as_str())) {
        bail!(
            "{} holds {extra}, which its {MANIFEST} does not list: the backup was changed \
             after it was written",
            dir.display()
        );
    }
    if let Some(missing) = listed.iter().find(|p| !present.contains(**p)) {
        bail!(
            "{} lacks {missing}, which its {MANIFEST} lists",
            dir.display()
        );
    }
    if !listed.contains(DATABASE) {
        bail!(
            "{} has no {DATABASE}: not a backup of cm-server",
            dir.display()
        );
    }
    Ok(manifest)
}

fn compare(dir: &Path, file: &BackupFile, (sha256, size): (String, u64)) -> Result<()> {
    if sha256 != file.sha256 || size != file.size {
        bail!(
            "{}: content does not match the manifest (sha256 {sha256}, {size} bytes; the \
             manifest says {}, {} bytes): the backup is damaged or was changed",
            dir.join(&file.path).display(),
            file.sha256,
            file.size
        );
    }
    Ok(())
}

/// The snapshot in `dir` is intact, agrees with the manifest's counts, and
/// every blob it references is there.
async fn check_database(dir: &Path, manifest: &BackupManifest) -> Result<()> {
    let contents = snapshot::inspect(&dir.join(DATABASE)).await?;
    for (name, count) in &contents.counts {
        if manifest.counts.get(name) != Some(count) {
            bail!(
                "{}: the database holds {count} {name}, the manifest says {:?}",
                dir.display(),
                manifest.counts.get(name)
            );
        }
    }
    if contents.referenced.is_empty() {
        return Ok(());
    }
    let blob_dir = dir.join(BLOBS);
    let referenced: Vec<String> = contents.referenced.into_iter().collect();
    let missing = if blob_dir.is_dir() {
        Blobs::local(&blob_dir)?.missing(&referenced).await?
    } else {
        referenced
    };
    if let Some(first) = missing.first() {
        bail!(
            "{}: {} blob(s) the database references are not in the backup (first: {first})",
            dir.display(),
            missing.len()
        );
    }
    Ok(())
}

/// Where a restore assembles the data dir before it is moved into place:
/// beside the data dir when it does not exist yet (then one rename puts it
/// there), inside it when it exists (it may be a mount point, which cannot
/// be replaced).
struct Staging {
    dir: PathBuf,
    data_dir: PathBuf,
    /// The whole staging dir becomes the data dir.
    whole: bool,
}

impl Staging {
    fn new(data_dir: &Path) -> Result<Staging> {
        let suffix = format!("{:016x}", rand::rng().next_u64());
        let whole = !data_dir.exists();
        let dir = if whole {
            let name = data_dir
                .file_name()
                .with_context(|| format!("{}: not a directory name", data_dir.display()))?
                .to_string_lossy();
            let parent = data_dir.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
            parent.join(format!(".{name}.restore-{suffix}"))
        } else {
            data_dir.join(format!(".restore-{suffix}"))
        };
        files::create_private_dir_all(&dir)?;
        Ok(Staging {
            dir,
            data_dir: data_dir.to_path_buf(),
            whole,
        })
    }

    /// Move the staged files into the data dir; the database goes last, so
    /// that a server never starts on keys without their database.
    fn move_into_place(self) -> Result<()> {
        let rename = |from: &Path, to: &Path| {
            std::fs::rename(from, to)
                .with_context(|| format!("moving {} to {}", from.display(), to.display()))
        };
        if self.whole {
            rename(&self.dir, &self.data_dir)?;
            return files::sync_dir(self.data_dir.parent().unwrap_or(Path::new(".")));
        }
        let mut names: Vec<_> = std::fs::read_dir(&self.dir)
            .with_context(|| format!("reading {}", self.dir.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("reading {}", self.dir.display()))?;
        names.sort_by_key(|name| name == DATABASE);
        for name in names {
            rename(&self.dir.join(&name), &self.data_dir.join(&name))?;
        }
        std::fs::remove_dir(&self.dir)
            .with_context(|| format!("removing {}", self.dir.display()))?;
        files::sync_dir(&self.data_dir)
    }

    fn discard(self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove the restore's staging directory");
        }
    }
}
