//! The compile's walk through the run list: each recipe once, includes in
//! place, each resource once per `for_each` item whose `when` holds, within
//! the run's limits. Rendering one resource is [`super::render`]'s.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cm_model::LoadError;
use cm_model::cookbook::Cookbook;
use cm_model::cookbooks::CookbookSet;
use cm_model::recipe::{ForEach, MAX_FOR_EACH_ITEMS, MAX_RUN_RESOURCES, RecipeEntry, ResourceDecl};
use cm_model::runlist::RecipeRef;
use cm_model::template::Templates;
use serde_json::Value;

use super::notifications::Pending;
use super::render::{Unit, brief};
use super::scope::Scope;
use super::{CompiledResource, Inputs, MAX_RUN_CONTENT_BYTES};

/// Expand the run list: each recipe once, includes in place, first mention wins.
pub fn expand_run_list(
    set: &CookbookSet,
    run_list: &[RecipeRef],
) -> Result<Vec<RecipeRef>, String> {
    fn walk(
        set: &CookbookSet,
        r: &RecipeRef,
        seen: &mut BTreeSet<RecipeRef>,
        out: &mut Vec<RecipeRef>,
    ) -> Result<(), String> {
        if !seen.insert(r.clone()) {
            return Ok(());
        }
        out.push(r.clone());
        for e in set.recipe(r)? {
            if let RecipeEntry::Include { recipe, .. } = e {
                walk(set, recipe, seen, out)?;
            }
        }
        Ok(())
    }
    let (mut seen, mut out) = (BTreeSet::new(), Vec::new());
    for r in run_list {
        walk(set, r, &mut seen, &mut out)?;
    }
    Ok(out)
}

/// The cookbooks a run list needs, dependencies before the cookbooks that
/// depend on them, otherwise in run-list order: the order their attribute
/// defaults are layered in, so a cookbook's defaults win over its dependencies'.
pub fn cookbooks_needed(set: &CookbookSet, recipes: &[RecipeRef]) -> Vec<String> {
    fn visit(
        set: &CookbookSet,
        name: &str,
        out: &mut Vec<String>,
        visiting: &mut BTreeSet<String>,
    ) {
        if out.iter().any(|n| n == name) || !visiting.insert(name.to_string()) {
            return;
        }
        if let Some(c) = set.get(name) {
            for dep in c.metadata.depends.keys() {
                visit(set, dep, out, visiting);
            }
        }
        out.push(name.to_string());
    }
    let mut out = Vec::new();
    let mut visiting = BTreeSet::new();
    for r in recipes {
        visit(set, &r.cookbook, &mut out, &mut visiting);
    }
    out
}

/// The compile's walk through the run list: each recipe once, includes in place.
pub(super) struct Walk<'a> {
    pub(super) inputs: &'a Inputs<'a>,
    pub(super) templates: &'a Templates,
    /// The run's one context; each item is set in it while its resource renders.
    pub(super) scope: Scope,
    pub(super) seen: BTreeSet<RecipeRef>,
    pub(super) out: Vec<CompiledResource>,
    pub(super) pending: Vec<Pending<'a>>,
    /// Content held so far, against [`MAX_RUN_CONTENT_BYTES`].
    pub(super) content_bytes: u64,
}

impl<'a> Walk<'a> {
    pub(super) fn recipe(&mut self, r: &RecipeRef) -> Result<(), LoadError> {
        if !self.seen.insert(r.clone()) {
            return Ok(());
        }
        let set: &'a CookbookSet = self.inputs.cookbooks;
        let cookbook = set
            .get(&r.cookbook)
            .expect("expand_run_list checked the cookbook exists");
        let file = cookbook.origin.join(format!("recipes/{}.yaml", r.recipe));
        for entry in set
            .recipe(r)
            .expect("expand_run_list checked the recipe exists")
        {
            match entry {
                RecipeEntry::Include { recipe, .. } => self.recipe(recipe)?,
                RecipeEntry::Resource(decl) => self.resource(cookbook, decl, &file)?,
            }
        }
        Ok(())
    }

    fn resource(
        &mut self,
        cookbook: &'a Cookbook,
        decl: &'a ResourceDecl,
        file: &PathBuf,
    ) -> Result<(), LoadError> {
        let declared = Unit::new(cookbook, decl, file, self.templates, self.inputs.secrets);
        let items = self
            .scope
            .without_secrets(|data| items(decl, data))
            .map_err(|m| declared.error_at("for_each", m))?;
        let expanded = decl.for_each.is_some();
        for item in items {
            if expanded {
                self.scope.set("item", item.clone());
            }
            let result = self.one(&declared, decl, file, item);
            if expanded {
                self.scope.set("item", None);
            }
            result?;
        }
        Ok(())
    }

    /// One resource of a declaration, for one item (set in the scope).
    fn one(
        &mut self,
        declared: &Unit<'_>,
        decl: &'a ResourceDecl,
        file: &Path,
        item: Option<Value>,
    ) -> Result<(), LoadError> {
        // Named by its rendered name in every error, `when`'s included
        // (a name that fails for an item `when` leaves out is no error).
        let name = declared.render_name(self.scope.ctx());
        let unit = declared.for_item(name.as_deref().ok(), item.as_ref());
        if let Some(when) = &decl.when {
            let holds = self.scope.without_secrets(|data| when.eval(data));
            if !holds.map_err(|m| unit.error_at("when", m))? {
                return Ok(());
            }
        }
        if self.out.len() >= MAX_RUN_RESOURCES {
            return Err(unit.error(format!(
                "the run passes {MAX_RUN_RESOURCES} resources (for_each expansions included)"
            )));
        }
        let compiled = unit.render(&mut self.scope, name)?;
        self.content_bytes += compiled.content.as_ref().map_or(0, |c| c.len() as u64);
        if self.content_bytes > MAX_RUN_CONTENT_BYTES {
            return Err(unit.error(format!(
                "the run's files and templates pass {} MiB of content",
                MAX_RUN_CONTENT_BYTES >> 20
            )));
        }
        if !decl.notifies.is_empty() || !decl.subscribes.is_empty() {
            self.pending.push(Pending {
                index: self.out.len(),
                unit_file: file.to_path_buf(),
                decl,
                item,
            });
        }
        self.out.push(compiled);
        Ok(())
    }
}

/// The items a resource is declared for: `[None]` without `for_each`.
fn items(decl: &ResourceDecl, ctx: &Value) -> Result<Vec<Option<Value>>, String> {
    let list = match &decl.for_each {
        None => return Ok(vec![None]),
        Some(range @ ForEach::Range { .. }) => {
            return Ok(range
                .literal_items()
                .into_iter()
                .flatten()
                .map(Some)
                .collect());
        }
        Some(ForEach::Items(list)) => list,
        Some(ForEach::Path(path)) => {
            let mut v = ctx;
            for part in path.split('.') {
                v = v
                    .get(part)
                    .ok_or_else(|| format!("{path} is not defined"))?;
            }
            match v {
                Value::Array(list) => list,
                other => return Err(format!("{path} is not a list (it is {})", brief(other))),
            }
        }
    };
    if list.len() > MAX_FOR_EACH_ITEMS {
        return Err(format!(
            "{} items, over the limit of {MAX_FOR_EACH_ITEMS} for one resource",
            list.len()
        ));
    }
    Ok(list.iter().cloned().map(Some).collect())
}
