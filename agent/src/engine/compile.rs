//! Compile: expand the run list, evaluate `when` and `for_each`, render every
//! property and template, resolve notifications, and check the result, all
//! before anything on the node is touched.
//!
//! Expansion is bounded so a large list cannot exhaust the node's memory:
//! at most [`MAX_FOR_EACH_ITEMS`] items per `for_each`, [`MAX_RUN_RESOURCES`]
//! resources and [`MAX_RUN_CONTENT_BYTES`] of file and template content per
//! run, each refused with the file and line of the resource that passes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cm_model::LoadError;
use cm_model::cookbook::Cookbook;
use cm_model::cookbooks::CookbookSet;
use cm_model::recipe::{
    ForEach, MAX_FOR_EACH_ITEMS, MAX_RUN_RESOURCES, RecipeEntry, ResourceDecl, Timing,
};
use cm_model::resources::{CookbookRefs, ResourceType};
use cm_model::runlist::RecipeRef;
use cm_model::secrets::Secrets;
use cm_model::template::Templates;
use handlebars::Context;
use serde_json::{Map, Value};

/// Most bytes of content (files and rendered templates) one run may hold:
/// as much as one cookbook may carry.
pub const MAX_RUN_CONTENT_BYTES: u64 = cm_model::manifest::MAX_TOTAL_BYTES;

/// A resource ready to converge.
#[derive(Debug, Clone)]
pub struct CompiledResource {
    pub kind: &'static ResourceType,
    pub name: String,
    /// Rendered properties, the name property filled in.
    pub properties: Map<String, Value>,
    /// The bytes a file or template resource writes, or an apt_repository's key file.
    pub content: Option<Vec<u8>>,
    pub actions: Vec<String>,
    pub only_if: Option<String>,
    pub not_if: Option<String>,
    pub creates: Option<String>,
    /// Resources to notify when this one changes: (index, action, timing).
    pub notifies: Vec<(usize, String, Timing)>,
    pub ignore_failure: bool,
    /// Content, diff and command output are never shown (marked, or holds a secret).
    pub sensitive: bool,
    /// A secret's value appears in its rendered properties, content or guards.
    pub holds_secret: bool,
    /// `memcached/recipes/default.yaml:3`, for messages.
    pub origin: String,
}

impl CompiledResource {
    pub fn id(&self) -> String {
        format!("{}[{}]", self.kind.name, self.name)
    }
}

/// Everything a compile reads.
pub struct Inputs<'a> {
    pub cookbooks: &'a CookbookSet,
    pub run_list: &'a [RecipeRef],
    /// Merged attributes (`attrs.`).
    pub attributes: &'a Map<String, Value>,
    /// Facts (`node.`).
    pub node: &'a Value,
    pub secrets: &'a Secrets,
    /// The cluster view (`cluster.<role>`): a list per role.
    pub cluster: &'a Value,
}

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

/// Compile the run list into resources, in converge order.
pub fn compile(inputs: &Inputs, templates: &Templates) -> Result<Vec<CompiledResource>, LoadError> {
    // Check that every recipe exists before anything is rendered.
    expand_run_list(inputs.cookbooks, inputs.run_list)
        .map_err(|m| LoadError::in_file("run list", m))?;
    let mut base = Map::new();
    base.insert("attrs".into(), Value::Object(inputs.attributes.clone()));
    base.insert("node".into(), inputs.node.clone());
    base.insert("cluster".into(), inputs.cluster.clone());
    let condition_ctx = Value::Object(base.clone());
    base.insert("secrets".into(), inputs.secrets.to_template_value());
    let base_ctx = Context::wraps(Value::Object(base.clone()))
        .map_err(|e| LoadError::in_file("context", e.to_string()))?;

    let mut walk = Walk {
        inputs,
        templates,
        base: &base,
        base_ctx: &base_ctx,
        condition_ctx: &condition_ctx,
        seen: BTreeSet::new(),
        out: Vec::new(),
        pending: Vec::new(),
        content_bytes: 0,
    };
    for r in inputs.run_list {
        walk.recipe(r)?;
    }
    let Walk {
        mut out, pending, ..
    } = walk;
    resolve_notifications(&mut out, &pending, templates)?;
    Ok(out)
}

/// The compile's walk through the run list: each recipe once, includes in place.
struct Walk<'a> {
    inputs: &'a Inputs<'a>,
    templates: &'a Templates,
    base: &'a Map<String, Value>,
    base_ctx: &'a Context,
    condition_ctx: &'a Value,
    seen: BTreeSet<RecipeRef>,
    out: Vec<CompiledResource>,
    pending: Vec<Pending<'a>>,
    /// Content held so far, against [`MAX_RUN_CONTENT_BYTES`].
    content_bytes: u64,
}

impl<'a> Walk<'a> {
    fn recipe(&mut self, r: &RecipeRef) -> Result<(), LoadError> {
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
        let unit = Unit {
            cookbook,
            decl,
            file,
            templates: self.templates,
            secrets: self.inputs.secrets,
        };
        for item in items(decl, self.condition_ctx).map_err(|m| unit.error_at("for_each", m))? {
            let (ctx, cond) = match &item {
                None => (None, None),
                Some(v) => (
                    Some(with(self.base, "item", v)?),
                    Some(with(self.condition_ctx, "item", v)?),
                ),
            };
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
            let ctx = ctx.as_ref().unwrap_or(self.base_ctx);
            let compiled = unit.render(ctx)?;
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

struct Pending<'a> {
    index: usize,
    unit_file: PathBuf,
    decl: &'a ResourceDecl,
    ctx: Context,
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

/// A value in a message: short, whatever its size.
fn brief(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// One resource declaration in its cookbook, being rendered.
struct Unit<'a> {
    cookbook: &'a Cookbook,
    decl: &'a ResourceDecl,
    file: &'a PathBuf,
    templates: &'a Templates,
    secrets: &'a Secrets,
}

impl Unit<'_> {
    /// An error about the resource as a whole, at its first line.
    fn error(&self, message: impl std::fmt::Display) -> LoadError {
        LoadError::new(
            self.file,
            self.decl.at,
            format!("{}[{}]: {message}", self.decl.kind.name, self.decl.name),
        )
    }

    fn error_at(&self, key: &str, message: impl std::fmt::Display) -> LoadError {
        LoadError::new(
            self.file,
            self.decl.pos_of(key),
            format!(
                "{}[{}] {key}: {message}",
                self.decl.kind.name, self.decl.name
            ),
        )
    }

    fn render_str(&self, key: &str, text: &str, ctx: &Context) -> Result<String, LoadError> {
        self.templates
            .render_str(text, ctx)
            .map_err(|e| self.error_at(key, e.message))
    }

    fn render_value(&self, key: &str, v: &Value, ctx: &Context) -> Result<Value, LoadError> {
        Ok(match v {
            Value::String(s) => Value::String(self.render_str(key, s, ctx)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.render_value(key, i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_value(key, v, ctx)?)))
                    .collect::<Result<_, LoadError>>()?,
            ),
            other => other.clone(),
        })
    }

    fn render(&self, ctx: &Context) -> Result<CompiledResource, LoadError> {
        let d = self.decl;
        let name = self.render_str(d.kind.name, &d.name, ctx)?;
        let mut properties = Map::new();
        for (k, v) in &d.properties {
            properties.insert(k.clone(), self.render_value(k, v, ctx)?);
        }
        properties
            .entry(d.kind.name_property)
            .or_insert_with(|| Value::String(name.clone()));
        let refs = Refs(self.cookbook);
        d.kind.check(properties.clone(), &refs).map_err(|e| {
            let key = if e.field.is_empty() {
                d.kind.name
            } else {
                e.field.as_str()
            };
            LoadError::new(
                self.file,
                d.pos_of(key),
                format!("{}[{name}] {}: {}", d.kind.name, e.field, e.message),
            )
        })?;
        let content = self.content(&properties, ctx)?;
        let guard = |k: &str, v: &Option<String>| {
            v.as_ref().map(|s| self.render_str(k, s, ctx)).transpose()
        };
        let (only_if, not_if, creates) = (
            guard("only_if", &d.only_if)?,
            guard("not_if", &d.not_if)?,
            guard("creates", &d.creates)?,
        );
        if let Some(path) = &creates {
            cm_model::paths::check_absolute_path(path).map_err(|e| self.error_at("creates", e))?;
        }
        let secrets = self.secrets;
        let holds_secret = !secrets.is_empty()
            && (properties.values().any(|v| value_holds_secret(v, secrets))
                || content
                    .as_ref()
                    .is_some_and(|c| secrets.appear_in(&String::from_utf8_lossy(c)))
                || [&only_if, &not_if]
                    .into_iter()
                    .flatten()
                    .any(|g| secrets.appear_in(g)));
        Ok(CompiledResource {
            kind: d.kind,
            name,
            properties,
            content,
            actions: d.actions.clone(),
            only_if,
            not_if,
            creates,
            notifies: Vec::new(),
            ignore_failure: d.ignore_failure,
            sensitive: d.sensitive || holds_secret,
            holds_secret,
            origin: format!("{}:{}", self.file.display(), d.at.line),
        })
    }

    /// Render the template or read the cookbook file that a file-like resource writes.
    fn content(
        &self,
        props: &Map<String, Value>,
        ctx: &Context,
    ) -> Result<Option<Vec<u8>>, LoadError> {
        let source = props.get("source").and_then(Value::as_str);
        match self.decl.kind.name {
            "template" => {
                let source = source.expect("the template spec requires source");
                let mut data = ctx.data().as_object().cloned().unwrap_or_default();
                data.insert(
                    "vars".into(),
                    props
                        .get("variables")
                        .cloned()
                        .unwrap_or(Value::Object(Map::new())),
                );
                let ctx =
                    Context::wraps(Value::Object(data)).map_err(|e| self.error_at("source", e))?;
                let name = format!("{}/{source}", self.cookbook.name());
                let text = self
                    .templates
                    .render(&name, &ctx)
                    .map_err(|e| self.error_at("source", e.message))?;
                Ok(Some(text.into_bytes()))
            }
            "file" => match (source, props.get("content").and_then(Value::as_str)) {
                (Some(src), _) => self.cookbook_file("source", src).map(Some),
                (None, Some(text)) => Ok(Some(text.as_bytes().to_vec())),
                (None, None) => Ok(None),
            },
            // The signing key the provider writes next to the .sources file.
            "apt_repository" => props
                .get("key_source")
                .and_then(Value::as_str)
                .map(|src| self.cookbook_file("key_source", src))
                .transpose(),
            _ => Ok(None),
        }
    }

    /// The bytes of `files/<src>`; `key` names the property in the error.
    fn cookbook_file(&self, key: &str, src: &str) -> Result<Vec<u8>, LoadError> {
        self.cookbook
            .files
            .get(src)
            .map(|f| f.bytes.clone())
            .ok_or_else(|| self.error_at(key, format!("no file {src:?} in files/")))
    }
}

/// Does any string inside `v` contain a secret's value?
fn value_holds_secret(v: &Value, secrets: &Secrets) -> bool {
    match v {
        Value::String(s) => secrets.appear_in(s),
        Value::Array(items) => items.iter().any(|i| value_holds_secret(i, secrets)),
        Value::Object(m) => m.values().any(|i| value_holds_secret(i, secrets)),
        _ => false,
    }
}

struct Refs<'a>(&'a Cookbook);

impl CookbookRefs for Refs<'_> {
    fn has_template(&self, name: &str) -> bool {
        self.0.templates.contains_key(name)
    }
    fn has_file(&self, name: &str) -> bool {
        self.0.files.contains_key(name)
    }
}

/// Turn `notifies` and `subscribes` into index-based notifications.
fn resolve_notifications(
    out: &mut [CompiledResource],
    pending: &[Pending],
    templates: &Templates,
) -> Result<(), LoadError> {
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for (i, r) in out.iter().enumerate() {
        by_id.entry(r.id()).or_insert(i);
    }
    for p in pending {
        let name = out[p.index].name.clone();
        let err = |key: &str, m: String| {
            LoadError::new(
                &p.unit_file,
                p.decl.pos_of(key),
                format!("{}[{name}] {key}: {m}", p.decl.kind.name),
            )
        };
        let target = |key: &str, ty: &str, target: &str| -> Result<usize, LoadError> {
            let target = templates
                .render_str(target, &p.ctx)
                .map_err(|e| err(key, e.message))?;
            let id = format!("{ty}[{target}]");
            by_id
                .get(&id)
                .copied()
                .ok_or_else(|| err(key, format!("no resource {id} in this run")))
        };
        for n in &p.decl.notifies {
            let t = target("notifies", &n.target_type, &n.target_name)?;
            out[p.index].notifies.push((t, n.action.clone(), n.timing));
        }
        for s in &p.decl.subscribes {
            let source = target("subscribes", &s.target_type, &s.target_name)?;
            out[source]
                .notifies
                .push((p.index, s.action.clone(), s.timing));
        }
    }
    Ok(())
}
