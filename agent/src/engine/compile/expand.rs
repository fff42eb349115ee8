//! The compile's walk through the run list: each recipe once, includes in
//! place, each resource once per `for_each` item whose `when` holds, within
//! the run's limits. Rendering one resource is [`super::render`]'s.

use std::collections::BTreeSet;
use std::path::PathBuf;

use cm_model::LoadError;
use cm_model::cookbook::Cookbook;
use cm_model::cookbooks::CookbookSet;
use cm_model::recipe::{ForEach, MAX_FOR_EACH_ITEMS, MAX_RUN_RESOURCES, RecipeEntry, ResourceDecl};
use cm_model::runlist::RecipeRef;
use cm_model::template::Templates;
use handlebars::Context;
use serde_json::{Map, Value};

use super::notifications::Pending;
use super::render::{Unit, brief};
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
    pub(super) base: &'a Map<String, Value>,
    pub(super) base_ctx: &'a Context,
    pub(super) condition_ctx: &'a Value,
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
        let items =
            items(decl, self.condition_ctx).map_err(|m| declared.error_at("for_each", m))?;
        for item in items {
            let (ctx, cond) = match &item {
                None => (None, None),
                Some(v) => (
                    Some(with(self.base, "item", v)?),
                    Some(with(self.condition_ctx, "item", v)?),
                ),
            };
            let ctx = ctx.as_ref().unwrap_or(self.base_ctx);
            // Named by its rendered name in every error, `when`'s included
            // (a name that fails for an item `when` leaves out is no error).
            let name = declared.render_name(ctx);
            let unit = declared.for_item(name.as_deref().ok(), item.as_ref());
            if let Some(when) = &decl.when {
                let cond_ctx = cond
                    .as_ref()
                    .map(Context::data)
                    .unwrap_or(self.condition_ctx);
                if !when.eval(cond_ctx).map_err(|m| unit.error_at("when", m))? {
                    continue;
                }
            }
            if self.out.len() >= MAX_RUN_RESOURCES {
                return Err(unit.error(format!(
                    "the run passes {MAX_RUN_RESOURCES} resources (for_each expansions included)"
                )));
            }
            let compiled = unit.render(ctx, name)?;
            self.content_bytes += compiled.content.as_ref().map_or(0, |c| c.len() as u64);
            if self.content_bytes > MAX_RUN_CONTENT_BYTES {
                return Err(unit.error(format!(
                    "the run's files and templates pass {} MiB of content",
                    MAX_RUN_CONTENT_BYTES >> 20
                )));
            }
            self.pending.push(Pending {
                index: self.out.len(),
                unit_file: file.clone(),
                decl,
                ctx: ctx.clone(),
            });
            self.out.push(compiled);
        }
        Ok(())
    }
}

fn with(base: &impl ToValue, key: &str, v: &Value) -> Result<Context, LoadError> {
    let mut map = base.to_map();
    map.insert(key.to_string(), v.clone());
    Context::wraps(Value::Object(map)).map_err(|e| LoadError::in_file("context", e.to_string()))
}

trait ToValue {
    fn to_map(&self) -> Map<String, Value>;
}

impl ToValue for Map<String, Value> {
    fn to_map(&self) -> Map<String, Value> {
        self.clone()
    }
}

impl ToValue for Value {
    fn to_map(&self) -> Map<String, Value> {
        self.as_object().cloned().unwrap_or_default()
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
