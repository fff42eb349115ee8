//! Loading a cookbook: read every file, validate everything, and keep what the
//! agent needs to compile it. Loading works from a directory or from files in
//! memory (a pushed version, the agent's blob cache), with the same checks:
//! cmctl before a push, the server when it commits one and the agent before
//! it compiles call [`Cookbook::load_dir`], [`Cookbook::from_manifest`] or
//! [`Cookbook::from_files`], which all end in the same validation.

mod cluster_reads;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::LoadError;
pub use crate::manifest::MAX_FILE_BYTES;
use crate::manifest::{
    MAX_FILES, MAX_TOTAL_BYTES, Manifest, ManifestEntry, ManifestError, sha256_hex,
};
use crate::metadata::{Metadata, check_name};
use crate::recipe::{RecipeEntry, parse_recipe_with};
use crate::resources::CookbookRefs;
use crate::template::Templates;
use crate::yaml::Reading;

/// A file of a cookbook, in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookbookFile {
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// A validated cookbook version.
#[derive(Debug, Clone)]
pub struct Cookbook {
    /// Where it was loaded from, for messages (a directory or `name@version`).
    pub origin: PathBuf,
    pub metadata: Metadata,
    pub attributes: Map<String, Value>,
    pub recipes: BTreeMap<String, Vec<RecipeEntry>>,
    /// Path under `templates/` → source.
    pub templates: BTreeMap<String, String>,
    /// Path under `files/` → content.
    pub files: BTreeMap<String, CookbookFile>,
    pub manifest: Manifest,
}

impl Cookbook {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Load and validate the cookbook in directory `dir`.
    pub fn load_dir(dir: &Path) -> Result<Cookbook, LoadError> {
        let files = read_tree(dir)?;
        Cookbook::from_files(dir, files)
    }

    /// Validate a cookbook given as relative path → file. `origin` names it in errors.
    pub fn from_files(
        origin: &Path,
        files: BTreeMap<String, CookbookFile>,
    ) -> Result<Cookbook, LoadError> {
        Cookbook::from_files_with(origin, files, Reading::Strict)
    }

    /// [`Cookbook::from_files`] with the given reading of ambiguous YAML
    /// scalars: [`Reading::AsBefore`] for a version pushed before cm refused
    /// them.
    pub fn from_files_with(
        origin: &Path,
        files: BTreeMap<String, CookbookFile>,
        reading: Reading,
    ) -> Result<Cookbook, LoadError> {
        let at = |rel: &str| origin.join(rel);
        let manifest = Manifest {
            entries: files
                .iter()
                .map(|(rel, f)| ManifestEntry {
                    path: rel.clone(),
                    sha256: sha256_hex(&f.bytes),
                    size: f.bytes.len() as u64,
                    mode: f.mode,
                })
                .collect(),
        };
        manifest.check().map_err(|e| manifest_error(origin, e))?;
        let text = |rel: &str| -> Result<Option<String>, LoadError> {
            files
                .get(rel)
                .map(|f| {
                    String::from_utf8(f.bytes.clone())
                        .map_err(|_| LoadError::in_file(at(rel), "not UTF-8 text"))
                })
                .transpose()
        };
        let meta_text = text("metadata.yaml")?.ok_or_else(|| {
            LoadError::in_file(
                at("metadata.yaml"),
                "missing: every cookbook needs metadata.yaml",
            )
        })?;
        let metadata = Metadata::parse_with(&at("metadata.yaml"), &meta_text, reading)?;
        let attributes = match text("attributes.yaml")? {
            Some(t) if !t.trim().is_empty() => {
                crate::yaml::parse_with::<Map<String, Value>>(&at("attributes.yaml"), &t, reading)?
            }
            _ => Map::new(),
        };
        let mut templates = BTreeMap::new();
        let mut cookbook_files = BTreeMap::new();
        let mut recipe_sources = BTreeMap::new();
        for (rel, file) in &files {
            if let Some(t) = rel.strip_prefix("templates/") {
                let src = text(rel)?.expect("the file is in the map");
                templates.insert(t.to_string(), src);
            } else if let Some(f) = rel.strip_prefix("files/") {
                cookbook_files.insert(f.to_string(), file.clone());
            } else if let Some(r) = rel.strip_prefix("recipes/") {
                let name = r
                    .strip_suffix(".yaml")
                    .filter(|n| !n.contains('/'))
                    .ok_or_else(|| LoadError::in_file(at(rel), "recipes are recipes/NAME.yaml"))?;
                check_name(name)
                    .map_err(|e| LoadError::in_file(at(rel), format!("recipe name {e}")))?;
                recipe_sources.insert(
                    name.to_string(),
                    (rel.clone(), text(rel)?.expect("the file is in the map")),
                );
            }
        }
        let mut registry = Templates::new();
        registry
            .add_cookbook(&metadata.name, &templates)
            .map_err(|e| {
                let rel = e
                    .template
                    .as_deref()
                    .and_then(|n| n.split_once('/'))
                    .map(|(_, p)| format!("templates/{p}"));
                let pos = crate::Pos::new(e.line.unwrap_or(0) as u64, e.column.unwrap_or(0) as u64);
                LoadError::new(at(rel.as_deref().unwrap_or("templates")), pos, e.message)
            })?;
        let refs = Refs {
            templates: &templates,
            files: &cookbook_files,
        };
        let mut recipes = BTreeMap::new();
        for (name, (rel, src)) in recipe_sources {
            recipes.insert(name, parse_recipe_with(&at(&rel), &src, &refs, reading)?);
        }
        let cookbook = Cookbook {
            origin: origin.to_path_buf(),
            metadata,
            attributes,
            recipes,
            templates,
            files: cookbook_files,
            manifest,
        };
        // Versions pushed before 0.3.0 (read as before) could not declare
        // roles; what they read of the view stays as it was for them.
        if reading == Reading::Strict {
            cluster_reads::check(&cookbook, at)?;
        }
        Ok(cookbook)
    }

    /// Validate a cookbook given as a manifest (a push, a plan) whose files
    /// `read` fetches. The manifest is checked before the first read; each
    /// file must have the size and digest its entry says.
    pub fn from_manifest(
        origin: &Path,
        manifest: &Manifest,
        read: impl FnMut(&ManifestEntry) -> Result<Vec<u8>, LoadError>,
    ) -> Result<Cookbook, LoadError> {
        Cookbook::from_manifest_with(origin, manifest, Reading::Strict, read)
    }

    /// [`Cookbook::from_manifest`] with the given reading of ambiguous YAML
    /// scalars.
    pub fn from_manifest_with(
        origin: &Path,
        manifest: &Manifest,
        reading: Reading,
        mut read: impl FnMut(&ManifestEntry) -> Result<Vec<u8>, LoadError>,
    ) -> Result<Cookbook, LoadError> {
        check_manifest(origin, manifest)?;
        let mut files = BTreeMap::new();
        for e in &manifest.entries {
            let bytes = read(e)?;
            if bytes.len() as u64 != e.size || sha256_hex(&bytes) != e.sha256 {
                return Err(LoadError::in_file(
                    origin,
                    format!(
                        "{:?}: the content is not the {} bytes with sha256 {} the manifest says",
                        e.path, e.size, e.sha256
                    ),
                ));
            }
            files.insert(
                e.path.clone(),
                CookbookFile {
                    bytes,
                    mode: e.mode,
                },
            );
        }
        Cookbook::from_files_with(origin, files, reading)
    }

    /// Check that the recipes this cookbook includes from itself exist.
    pub fn recipe(&self, name: &str) -> Option<&[RecipeEntry]> {
        self.recipes.get(name).map(Vec::as_slice)
    }
}

/// The manifest rules (see [`Manifest::check`]) with the error as every
/// caller reports it; the server and the agent run this before fetching a
/// single file of a manifest.
pub fn check_manifest(origin: &Path, manifest: &Manifest) -> Result<(), LoadError> {
    manifest.check().map_err(|e| manifest_error(origin, e))
}

/// A manifest rule broken: named by the cookbook, with the entry quoted in
/// the message (a file name may hold characters a terminal would act on).
fn manifest_error(origin: &Path, e: ManifestError) -> LoadError {
    LoadError::in_file(origin, e.to_string())
}

struct Refs<'a> {
    templates: &'a BTreeMap<String, String>,
    files: &'a BTreeMap<String, CookbookFile>,
}

impl CookbookRefs for Refs<'_> {
    fn has_template(&self, name: &str) -> bool {
        self.templates.contains_key(name)
    }
    fn has_file(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }
}

/// Read every file under `dir` (dotfiles skipped), refusing symlinks that leave it.
pub fn read_tree(dir: &Path) -> Result<BTreeMap<String, CookbookFile>, LoadError> {
    use std::os::unix::fs::PermissionsExt;
    let root = dir
        .canonicalize()
        .map_err(|e| LoadError::in_file(dir, format!("cannot open cookbook: {e}")))?;
    let mut out = BTreeMap::new();
    let mut total: u64 = 0;
    let mut pending = vec![PathBuf::new()];
    let mut seen_dirs = BTreeSet::new();
    while let Some(rel_dir) = pending.pop() {
        let abs = dir.join(&rel_dir);
        let entries =
            std::fs::read_dir(&abs).map_err(|e| LoadError::in_file(&abs, e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| LoadError::in_file(&abs, e.to_string()))?;
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| LoadError::in_file(entry.path(), "file name is not UTF-8"))?;
            if name.starts_with('.') {
                continue;
            }
            let rel = rel_dir.join(name);
            let path = entry.path();
            let real = path
                .canonicalize()
                .map_err(|e| LoadError::in_file(&path, format!("cannot resolve: {e}")))?;
            if !real.starts_with(&root) {
                return Err(LoadError::in_file(
                    &path,
                    format!("symlink to {} leaves the cookbook", real.display()),
                ));
            }
            let meta =
                std::fs::metadata(&real).map_err(|e| LoadError::in_file(&path, e.to_string()))?;
            if meta.is_dir() {
                if seen_dirs.insert(real) {
                    pending.push(rel);
                }
            } else if meta.is_file() {
                if meta.len() > MAX_FILE_BYTES {
                    return Err(LoadError::in_file(
                        &path,
                        format!("larger than {} MiB", MAX_FILE_BYTES >> 20),
                    ));
                }
                // Stop reading as soon as a limit is passed, not after reading it all.
                total = total.saturating_add(meta.len());
                if total > MAX_TOTAL_BYTES {
                    return Err(manifest_error(dir, ManifestError::TooLarge));
                }
                if out.len() >= MAX_FILES {
                    return Err(LoadError::in_file(
                        dir,
                        format!("more than {MAX_FILES} files, the limit for a cookbook"),
                    ));
                }
                let bytes =
                    std::fs::read(&real).map_err(|e| LoadError::in_file(&path, e.to_string()))?;
                let rel = rel.to_str().expect("built from UTF-8 names").to_string();
                out.insert(
                    rel,
                    CookbookFile {
                        bytes,
                        mode: meta.permissions().mode() & 0o7777,
                    },
                );
            } else {
                return Err(LoadError::in_file(&path, "not a regular file or directory"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod validation_tests;
