//! A set of cookbooks that run together: dependencies present, satisfied and
//! acyclic, and every `include_recipe` pointing at a recipe that exists.
//! Locally this is a directory of cookbooks; on a node it is the plan's versions.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cookbook::Cookbook;
use crate::error::LoadError;
use crate::recipe::RecipeEntry;
use crate::runlist::RecipeRef;
use crate::template::Templates;

/// The subdirectories of `dir` that hold a `metadata.yaml`, sorted.
fn cookbook_dirs(dir: &Path) -> Result<Vec<std::path::PathBuf>, LoadError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| LoadError::in_file(dir, format!("cannot read cookbooks: {e}")))?;
    let mut dirs: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("metadata.yaml").is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Cookbooks by name, one version each.
#[derive(Debug, Clone, Default)]
pub struct CookbookSet {
    pub cookbooks: BTreeMap<String, Cookbook>,
}

impl CookbookSet {
    /// Load every subdirectory of `dir` that holds a `metadata.yaml`.
    pub fn load_dir(dir: &Path) -> Result<CookbookSet, LoadError> {
        let dirs = cookbook_dirs(dir)?;
        let cookbooks = dirs
            .iter()
            .map(|d| Cookbook::load_dir(d))
            .collect::<Result<Vec<_>, _>>()?;
        CookbookSet::new(cookbooks)
    }

    /// Load only the cookbooks that `wanted` need (themselves and their
    /// dependencies) from `dir`, so a broken cookbook nobody uses does not
    /// stop a run. A needed cookbook is found by its metadata's name.
    pub fn load_needed(dir: &Path, wanted: &[String]) -> Result<CookbookSet, LoadError> {
        let dirs = cookbook_dirs(dir)?;
        let mut index = BTreeMap::new();
        let mut broken = BTreeMap::new();
        let mut duplicates = BTreeMap::new();
        for d in dirs {
            let file = d.join("metadata.yaml");
            let parsed = std::fs::read_to_string(&file)
                .map_err(|e| LoadError::in_file(&file, e.to_string()))
                .and_then(|t| crate::metadata::Metadata::parse(&file, &t));
            match parsed {
                Ok(m) => {
                    if let Some((first, _)) = index.get(&m.name) {
                        let first: &std::path::PathBuf = first;
                        let msg =
                            format!("cookbook {} is also defined in {}", m.name, first.display());
                        duplicates.insert(m.name.clone(), LoadError::in_file(&file, msg));
                    } else {
                        index.insert(m.name.clone(), (d, m));
                    }
                }
                Err(e) => {
                    let name = d
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    broken.insert(name, e);
                }
            }
        }
        let mut needed: Vec<String> = Vec::new();
        let mut stack: Vec<String> = wanted.to_vec();
        while let Some(name) = stack.pop() {
            if needed.contains(&name) {
                continue;
            }
            if let Some(e) = duplicates.remove(&name) {
                return Err(e);
            }
            match index.get(&name) {
                Some((_, m)) => stack.extend(m.depends.keys().cloned()),
                None => match broken.remove(&name) {
                    Some(e) => return Err(e),
                    // Reported below, by whoever depends on it or by the run list.
                    None => continue,
                },
            }
            needed.push(name);
        }
        let cookbooks = needed
            .iter()
            .map(|n| Cookbook::load_dir(&index[n].0))
            .collect::<Result<Vec<_>, _>>()?;
        CookbookSet::new(cookbooks)
    }

    /// Check a set of loaded cookbooks against each other.
    pub fn new(list: Vec<Cookbook>) -> Result<CookbookSet, LoadError> {
        let mut cookbooks = BTreeMap::new();
        for c in list {
            if let Some(prev) = cookbooks.get(c.name()).map(|p: &Cookbook| p.origin.clone()) {
                return Err(LoadError::in_file(
                    c.origin.join("metadata.yaml"),
                    format!(
                        "cookbook {} is also defined in {}",
                        c.name(),
                        prev.display()
                    ),
                ));
            }
            cookbooks.insert(c.name().to_string(), c);
        }
        let set = CookbookSet { cookbooks };
        set.check_dependencies()?;
        set.check_includes()?;
        Ok(set)
    }

    pub fn get(&self, name: &str) -> Option<&Cookbook> {
        self.cookbooks.get(name)
    }

    /// The entries of a recipe, or an error naming what is missing.
    pub fn recipe(&self, r: &RecipeRef) -> Result<&[RecipeEntry], String> {
        let c = self
            .get(&r.cookbook)
            .ok_or_else(|| format!("recipe {r}: no cookbook named {}", r.cookbook))?;
        c.recipe(&r.recipe).ok_or_else(|| {
            let have: Vec<_> = c.recipes.keys().map(String::as_str).collect();
            format!(
                "recipe {r}: cookbook {} has no recipe {} (it has: {})",
                r.cookbook,
                r.recipe,
                have.join(", ")
            )
        })
    }

    /// One template registry for every cookbook of the set.
    pub fn templates(&self) -> Result<Templates, LoadError> {
        let mut t = Templates::new();
        for c in self.cookbooks.values() {
            t.add_cookbook(c.name(), &c.templates)
                .map_err(|e| LoadError::in_file(c.origin.join("templates"), e.message))?;
        }
        Ok(t)
    }

    fn check_dependencies(&self) -> Result<(), LoadError> {
        for c in self.cookbooks.values() {
            let file = c.origin.join("metadata.yaml");
            for (dep, req) in &c.metadata.depends {
                let d = self.get(dep).ok_or_else(|| {
                    LoadError::in_file(
                        &file,
                        format!(
                            "{} depends on {dep} ({req}), which is not in the set",
                            c.name()
                        ),
                    )
                })?;
                if !req.matches(&d.metadata.version) {
                    return Err(LoadError::in_file(
                        &file,
                        format!(
                            "{} needs {dep} {req}, but {dep} is {}",
                            c.name(),
                            d.metadata.version
                        ),
                    ));
                }
            }
        }
        // Depth-first search for a cycle.
        fn visit<'a>(
            set: &'a CookbookSet,
            n: &'a str,
            stack: &mut Vec<&'a str>,
            done: &mut Vec<&'a str>,
        ) -> Option<Vec<&'a str>> {
            if let Some(i) = stack.iter().position(|s| *s == n) {
                let mut cycle = stack[i..].to_vec();
                cycle.push(n);
                return Some(cycle);
            }
            if done.contains(&n) {
                return None;
            }
            stack.push(n);
            for dep in set
                .cookbooks
                .get(n)
                .into_iter()
                .flat_map(|c| c.metadata.depends.keys())
            {
                if let Some(c) = visit(set, dep, stack, done) {
                    return Some(c);
                }
            }
            stack.pop();
            done.push(n);
            None
        }
        let mut done = Vec::new();
        for name in self.cookbooks.keys() {
            if let Some(cycle) = visit(self, name, &mut Vec::new(), &mut done) {
                let c = &self.cookbooks[cycle[0]];
                return Err(LoadError::in_file(
                    c.origin.join("metadata.yaml"),
                    format!("dependency cycle: {}", cycle.join(" -> ")),
                ));
            }
        }
        Ok(())
    }

    fn check_includes(&self) -> Result<(), LoadError> {
        for c in self.cookbooks.values() {
            for (name, entries) in &c.recipes {
                let file = c.origin.join(format!("recipes/{name}.yaml"));
                for e in entries {
                    let RecipeEntry::Include { recipe, at } = e else {
                        continue;
                    };
                    if recipe.cookbook != c.name()
                        && !c.metadata.depends.contains_key(&recipe.cookbook)
                    {
                        return Err(LoadError::new(
                            &file,
                            *at,
                            format!(
                                "include_recipe {recipe}: add {} to depends in metadata.yaml",
                                recipe.cookbook
                            ),
                        ));
                    }
                    self.recipe(recipe)
                        .map_err(|m| LoadError::new(&file, *at, m))?;
                }
            }
        }
        Ok(())
    }
}
