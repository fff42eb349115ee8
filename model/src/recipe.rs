//! Recipes: YAML lists of resources, parsed and checked against the resource
//! types before anything runs.
//!
//! ```yaml
//! - package: memcached
//! - template: /etc/memcached.conf
//!   source: memcached.conf.hbs
//!   mode: "0644"
//!   notifies: restart service[memcached]
//! - service: memcached
//!   action: [enable, start]
//! - include_recipe: memcached::monitoring
//! ```
//!
//! The first key of an entry names the resource type and its value the
//! resource's name; the other keys are the type's properties or the meta keys
//! below, which every type accepts.

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

use crate::condition::Condition;
use crate::error::{LoadError, Pos};
pub use crate::for_each::ForEach;
use crate::for_each::parse_for_each;
use crate::resources::{self, CookbookRefs, ResourceType};
use crate::runlist::RecipeRef;
use crate::yaml::Reading;

/// Keys every resource accepts besides its type's properties.
pub const META_KEYS: &[&str] = &[
    "action",
    "only_if",
    "not_if",
    "creates",
    "notifies",
    "subscribes",
    "when",
    "for_each",
    "ignore_failure",
    "sensitive",
];

pub use crate::for_each::MAX_FOR_EACH_ITEMS;
/// Most resources a run may hold, every recipe and `for_each` expansion counted.
pub const MAX_RUN_RESOURCES: usize = 10_000;

/// One entry of a recipe.
#[derive(Debug, Clone)]
pub enum RecipeEntry {
    Include { recipe: RecipeRef, at: Pos },
    Resource(Box<ResourceDecl>),
}

/// A resource as written in a recipe, before rendering.
#[derive(Debug, Clone)]
pub struct ResourceDecl {
    pub kind: &'static ResourceType,
    /// May hold handlebars expressions; rendered at compile time.
    pub name: String,
    /// The type's properties, as written (the name property is filled at compile time).
    pub properties: Map<String, Value>,
    pub actions: Vec<String>,
    pub only_if: Option<String>,
    pub not_if: Option<String>,
    /// A path: the resource is skipped when it exists.
    pub creates: Option<String>,
    pub notifies: Vec<Notification>,
    pub subscribes: Vec<Notification>,
    pub when: Option<Condition>,
    pub for_each: Option<ForEach>,
    pub ignore_failure: bool,
    /// Never show content, diff or command of this resource.
    pub sensitive: bool,
    pub at: Pos,
    /// Where each key was written, for errors found later (after rendering).
    pub key_pos: Vec<(String, Pos)>,
}

impl ResourceDecl {
    /// Where `key` was written, or the resource itself.
    pub fn pos_of(&self, key: &str) -> Pos {
        self.key_pos
            .iter()
            .find(|(k, _)| k == key)
            .map_or(self.at, |(_, p)| *p)
    }
}

/// When a notification fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Timing {
    /// Right after the notifying resource changed.
    Immediately,
    /// Once, at the end of the run (the default, as in Chef).
    Delayed,
}

/// `restart service[memcached] immediately`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub action: String,
    pub target_type: String,
    /// May hold handlebars expressions.
    pub target_name: String,
    pub timing: Timing,
}

impl Notification {
    /// Parse `ACTION TYPE[NAME] [TIMING]`. The action is checked against
    /// `action_kind` (the subscriber, for `subscribes`) or else the target's type.
    pub fn parse(s: &str, action_kind: Option<&ResourceType>) -> Result<Notification, String> {
        let s = s.trim();
        let usage = || {
            format!(
                "{s:?}: expected 'ACTION TYPE[NAME]' optionally followed by 'immediately' or 'delayed'"
            )
        };
        let (action, rest) = s.split_once(char::is_whitespace).ok_or_else(usage)?;
        let rest = rest.trim();
        let close = rest.rfind(']').ok_or_else(usage)?;
        let (target, timing) = (&rest[..=close], rest[close + 1..].trim());
        let open = target.find('[').ok_or_else(usage)?;
        let (target_type, target_name) = (&target[..open], &target[open + 1..target.len() - 1]);
        let timing = match timing {
            "" | "delayed" => Timing::Delayed,
            "immediately" => Timing::Immediately,
            _ => return Err(usage()),
        };
        let kind = resources::lookup(target_type)
            .ok_or_else(|| format!("{s:?}: unknown resource type {target_type:?}"))?;
        let acting = action_kind.unwrap_or(kind);
        acting
            .check_action(action)
            .map_err(|e| format!("{s:?}: {} has {e}", acting.name))?;
        if target_name.is_empty() {
            return Err(usage());
        }
        Ok(Notification {
            action: action.to_string(),
            target_type: target_type.to_string(),
            target_name: target_name.to_string(),
            timing,
        })
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let timing = match self.timing {
            Timing::Immediately => "immediately",
            Timing::Delayed => "delayed",
        };
        write!(
            f,
            "{} {}[{}] {timing}",
            self.action, self.target_type, self.target_name
        )
    }
}

/// A YAML mapping with its keys in written order and every value's position.
struct Entries(Vec<(Spanned<String>, Spanned<Value>)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a resource: a mapping like `package: memcached`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parse a recipe file's text. `refs` lets resource checks see the cookbook's
/// templates and files.
pub fn parse_recipe(
    file: &Path,
    text: &str,
    refs: &dyn CookbookRefs,
) -> Result<Vec<RecipeEntry>, LoadError> {
    parse_recipe_with(file, text, refs, Reading::Strict)
}

/// [`parse_recipe`] with the given reading of ambiguous scalars.
pub fn parse_recipe_with(
    file: &Path,
    text: &str,
    refs: &dyn CookbookRefs,
    reading: Reading,
) -> Result<Vec<RecipeEntry>, LoadError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<Spanned<Entries>> = crate::yaml::parse_with(file, text, reading)?;
    raw.into_iter()
        .map(|entry| parse_entry(file, Pos::of(&entry.referenced), entry.value.0, refs))
        .collect()
}

fn parse_entry(
    file: &Path,
    at: Pos,
    entries: Vec<(Spanned<String>, Spanned<Value>)>,
    refs: &dyn CookbookRefs,
) -> Result<RecipeEntry, LoadError> {
    let err = |pos: Pos, msg: String| LoadError::new(file, pos, msg);
    let mut entries = entries.into_iter();
    let (type_key, name) = entries.next().ok_or_else(|| {
        err(
            at,
            "empty resource: start with its type, like `package: memcached`".into(),
        )
    })?;
    let type_pos = Pos::of(&type_key.referenced);
    if type_key.value == "include_recipe" {
        let recipe = name
            .value
            .as_str()
            .ok_or_else(|| {
                err(
                    Pos::of(&name.referenced),
                    "include_recipe takes a recipe name".into(),
                )
            })
            .and_then(|s| RecipeRef::parse(s).map_err(|e| err(Pos::of(&name.referenced), e)))?;
        if let Some((k, _)) = entries.next() {
            return Err(err(
                Pos::of(&k.referenced),
                format!("include_recipe takes no other keys, found {:?}", k.value),
            ));
        }
        return Ok(RecipeEntry::Include {
            recipe,
            at: type_pos,
        });
    }
    let kind = resources::lookup(&type_key.value).ok_or_else(|| {
        let known: Vec<_> = resources::TYPES.iter().map(|t| t.name).collect();
        err(
            type_pos,
            format!(
                "unknown resource type {:?} (the first key names the type; known: {}, include_recipe)",
                type_key.value,
                known.join(", ")
            ),
        )
    })?;
    let name_pos = Pos::of(&name.referenced);
    let name = scalar_string(name.value).ok_or_else(|| {
        err(
            name_pos,
            format!("{}: the resource name must be a string", kind.name),
        )
    })?;
    if name.trim().is_empty() {
        return Err(err(
            name_pos,
            format!("{}: the resource name is empty", kind.name),
        ));
    }
    let mut decl = ResourceDecl {
        kind,
        name,
        properties: Map::new(),
        actions: kind.default_actions(),
        only_if: None,
        not_if: None,
        creates: None,
        notifies: Vec::new(),
        subscribes: Vec::new(),
        when: None,
        for_each: None,
        ignore_failure: false,
        sensitive: false,
        at: type_pos,
        key_pos: Vec::new(),
    };
    let properties = (kind.properties)();
    for (key, value) in entries {
        let pos = Pos::of(&value.referenced);
        let key = key.value;
        let field = |m: String| err(pos, format!("{}[{}] {key}: {m}", kind.name, decl.name));
        decl.key_pos.push((key.clone(), pos));
        let value = value.value;
        match key.as_str() {
            "action" => decl.actions = parse_actions(kind, value).map_err(field)?,
            "only_if" => decl.only_if = Some(string(value).map_err(field)?),
            "not_if" => decl.not_if = Some(string(value).map_err(field)?),
            "creates" => decl.creates = Some(string(value).map_err(field)?),
            "notifies" => decl.notifies = parse_notifications(value, None).map_err(field)?,
            "subscribes" => {
                decl.subscribes = parse_notifications(value, Some(kind)).map_err(field)?
            }
            "when" => {
                decl.when = Some(Condition::parse(&string(value).map_err(field)?).map_err(field)?)
            }
            "for_each" => decl.for_each = Some(parse_for_each(value).map_err(field)?),
            "ignore_failure" => decl.ignore_failure = boolean(value).map_err(field)?,
            "sensitive" => decl.sensitive = boolean(value).map_err(field)?,
            "mode" if value.is_number() => {
                return Err(field(
                    "write modes as quoted octal strings, like mode: \"0644\" (YAML reads 0644 as a number)".into(),
                ));
            }
            _ if properties.contains(&key.as_str()) => {
                if key == kind.name_property {
                    // Explicit name property: allowed, it overrides the resource name.
                }
                decl.properties.insert(key, value);
            }
            _ => {
                return Err(err(
                    pos,
                    format!(
                        "{}[{}]: unknown key {key:?} (properties: {}; meta keys: {})",
                        kind.name,
                        decl.name,
                        properties.join(", "),
                        META_KEYS.join(", ")
                    ),
                ));
            }
        }
    }
    check_templates(file, &decl, name_pos)?;
    check_properties(file, &decl, refs)?;
    Ok(RecipeEntry::Resource(Box::new(decl)))
}

/// Check every `{{…}}` the compile will render (name, properties, guards,
/// notification targets) as the agent will: nesting, helpers, arity.
fn check_templates(file: &Path, decl: &ResourceDecl, name_pos: Pos) -> Result<(), LoadError> {
    let err = |pos: Pos, key: &str, e: crate::template::TemplateError| {
        LoadError::new(
            file,
            pos,
            format!("{}[{}] {key}: {}", decl.kind.name, decl.name, e.message),
        )
    };
    crate::template::check_inline(&decl.name).map_err(|e| err(name_pos, decl.kind.name, e))?;
    for (key, value) in &decl.properties {
        check_value_templates(value).map_err(|e| err(decl.pos_of(key), key, e))?;
    }
    let guards = [
        ("only_if", &decl.only_if),
        ("not_if", &decl.not_if),
        ("creates", &decl.creates),
    ];
    for (key, text) in guards {
        if let Some(text) = text {
            crate::template::check_inline(text).map_err(|e| err(decl.pos_of(key), key, e))?;
        }
    }
    let notifications = [
        ("notifies", &decl.notifies),
        ("subscribes", &decl.subscribes),
    ];
    for (key, list) in notifications {
        for n in list {
            crate::template::check_inline(&n.target_name)
                .map_err(|e| err(decl.pos_of(key), key, e))?;
        }
    }
    Ok(())
}

fn check_value_templates(v: &Value) -> Result<(), crate::template::TemplateError> {
    match v {
        Value::String(s) => crate::template::check_inline(s),
        Value::Array(items) => items.iter().try_for_each(check_value_templates),
        Value::Object(m) => m.values().try_for_each(check_value_templates),
        _ => Ok(()),
    }
}

/// Type-check the properties as written, with the name standing in for the name property.
pub fn check_properties(
    file: &Path,
    decl: &ResourceDecl,
    refs: &dyn CookbookRefs,
) -> Result<(), LoadError> {
    let mut props = decl.properties.clone();
    props
        .entry(decl.kind.name_property)
        .or_insert_with(|| Value::String(decl.name.clone()));
    decl.kind.check(props, refs).map_err(|e| {
        let pos = if e.field.is_empty() {
            decl.at
        } else {
            decl.pos_of(&e.field)
        };
        let field = if e.field.is_empty() {
            String::new()
        } else {
            format!(" {}", e.field)
        };
        LoadError::new(
            file,
            pos,
            format!("{}[{}]{field}: {}", decl.kind.name, decl.name, e.message),
        )
    })
}

fn scalar_string(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn string(v: Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(format!("expected a string, found {other}")),
    }
}

fn boolean(v: Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("expected true or false, found {v}"))
}

fn parse_actions(kind: &ResourceType, v: Value) -> Result<Vec<String>, String> {
    let list = match v {
        Value::String(s) => vec![s],
        Value::Array(items) => items.into_iter().map(string).collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "expected an action or a list of actions, found {other}"
            ));
        }
    };
    if list.is_empty() {
        return Err("empty action list (use `nothing`)".into());
    }
    for a in &list {
        kind.check_action(a)
            .map_err(|e| format!("{} has {e}", kind.name))?;
    }
    Ok(list)
}

fn parse_notifications(
    v: Value,
    action_kind: Option<&ResourceType>,
) -> Result<Vec<Notification>, String> {
    match v {
        Value::String(s) => Ok(vec![Notification::parse(&s, action_kind)?]),
        Value::Array(items) => items
            .into_iter()
            .map(|i| string(i).and_then(|s| Notification::parse(&s, action_kind)))
            .collect(),
        other => Err(format!(
            "expected 'ACTION TYPE[NAME]' or a list of them, found {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Refs;
    impl CookbookRefs for Refs {
        fn has_template(&self, name: &str) -> bool {
            name == "memcached.conf.hbs"
        }
        fn has_file(&self, name: &str) -> bool {
            name == "motd"
        }
    }

    fn parse(text: &str) -> Result<Vec<RecipeEntry>, LoadError> {
        parse_recipe(Path::new("memcached/recipes/default.yaml"), text, &Refs)
    }

    fn resource(e: &RecipeEntry) -> &ResourceDecl {
        match e {
            RecipeEntry::Resource(r) => r,
            RecipeEntry::Include { .. } => panic!("expected a resource"),
        }
    }

    const SKETCH: &str = "\
- package: memcached
- template: /etc/memcached.conf
  source: memcached.conf.hbs
  mode: \"0644\"
  notifies: restart service[memcached]
- service: memcached
  action: [enable, start]
- include_recipe: memcached::monitoring
";

    #[test]
    fn parses_the_design_sketch() {
        let entries = parse(SKETCH).unwrap();
        assert_eq!(entries.len(), 4);
        let pkg = resource(&entries[0]);
        assert_eq!((pkg.kind.name, pkg.name.as_str()), ("package", "memcached"));
        assert_eq!(pkg.actions, ["install"]);
        let tpl = resource(&entries[1]);
        assert_eq!(
            tpl.notifies[0].to_string(),
            "restart service[memcached] delayed"
        );
        assert_eq!(tpl.at.line, 2);
        assert!(
            matches!(&entries[3], RecipeEntry::Include { recipe, .. } if recipe.recipe == "monitoring")
        );
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = parse("- package: memcached\n  versoin: '1.6'\n").unwrap_err();
        assert_eq!(err.pos.line, 2, "{err}");
        assert!(err.message.contains("unknown key \"versoin\""), "{err}");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse("- execute: /bin/true\n  timeout: soon\n").unwrap_err();
        assert_eq!(err.pos.line, 2, "{err}");
        assert!(err.message.contains("timeout"), "{err}");
    }

    #[test]
    fn missing_template_is_refused() {
        let err = parse("- template: /etc/x\n  source: nope.hbs\n").unwrap_err();
        assert_eq!(err.pos.line, 2, "{err}");
        assert!(err.message.contains("no template \"nope.hbs\""), "{err}");
    }

    #[test]
    fn unquoted_mode_is_refused_with_advice() {
        let err = parse("- file: /etc/x\n  mode: 0644\n").unwrap_err();
        assert_eq!((err.pos.line, err.pos.column), (2, 9), "{err}");
        assert!(err.message.contains("write \"0644\" (quoted)"), "{err}");
        let err = parse("- file: /etc/x\n  mode: 644\n").unwrap_err();
        assert!(err.message.contains("quoted octal strings"), "{err}");
    }

    #[test]
    fn bad_action_and_notification_are_refused() {
        let e = parse("- package: x1\n  action: start\n").unwrap_err();
        assert!(
            e.message.ends_with(
                "package has no action \"start\" (it has install, upgrade, remove, purge, nothing)"
            ),
            "{e}"
        );
        let e = parse("- file: /x\n  notifies: start service[m]\n- service: m\n").unwrap();
        assert_eq!(resource(&e[0]).notifies[0].action, "start");
        let e = parse("- execute: x\n  subscribes: start service[m]\n").unwrap_err();
        assert!(
            e.message
                .contains("execute has no action \"start\" (it has run, nothing)"),
            "{e}"
        );
        assert!(parse("- file: /x\n  notifies: restart servce[m]\n").is_err());
        assert!(parse("- file: /x\n  notifies: install service[m]\n").is_err());
        assert!(parse("- file: /x\n  notifies: restart service[m] soon\n").is_err());
        assert!(parse("- frobnicate: x\n").is_err());
        assert!(parse("- file: /x\n  when: attrs.a ==\n").is_err());
    }

    #[test]
    fn notification_timing_and_for_each() {
        let e = parse(
            "- directory: '/srv/{{item}}'\n  for_each: [a, b]\n  notifies: ['run execute[x] immediately']\n",
        )
        .unwrap();
        let d = resource(&e[0]);
        assert_eq!(d.notifies[0].timing, Timing::Immediately);
        assert_eq!(
            d.for_each,
            Some(ForEach::Items(vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn templates_in_strings_are_checked_where_they_are_written() {
        let err = parse("- file: /etc/x\n  content: \"{{frob attrs.x}}\"\n").unwrap_err();
        assert_eq!(err.pos.line, 2, "{err}");
        assert!(
            err.message.starts_with("file[/etc/x] content: ")
                && err.message.contains("unknown helper \"frob\""),
            "{err}"
        );
        let err = parse("- execute: \"{{join attrs.l}}\"\n").unwrap_err();
        assert!(err.message.contains("join takes 2"), "{err}");
        let err = parse("- execute: x\n  only_if: \"{{upper}}\"\n").unwrap_err();
        assert!(err.message.starts_with("execute[x] only_if: "), "{err}");
        let deep = format!("{}x{}", "{{#if a}}".repeat(100), "{{/if}}".repeat(100));
        let err = parse(&format!("- file: /etc/x\n  content: \"{deep}\"\n")).unwrap_err();
        assert!(err.message.contains("at most 64"), "{err}");
        let err = parse(
            "- template: /etc/x\n  source: memcached.conf.hbs\n  variables: {a: \"{{#each x}}\"}\n",
        )
        .unwrap_err();
        assert_eq!(err.pos.line, 3, "{err}");
    }

    #[test]
    fn a_literal_for_each_over_the_limit_is_refused() {
        let items = vec!["a"; MAX_FOR_EACH_ITEMS + 1].join(", ");
        let err = parse(&format!(
            "- directory: '/srv/{{{{item}}}}'\n  for_each: [{items}]\n"
        ))
        .unwrap_err();
        assert_eq!(err.pos.line, 2, "{err}");
        assert!(err.message.contains("over the limit of 10000"), "{err}");
    }

    #[test]
    fn integers_in_recipes_stay_integers() {
        let e = parse("- execute: /bin/true\n  timeout: 1024\n  for_each: [1, 1.5, -2]\n").unwrap();
        let d = resource(&e[0]);
        assert_eq!(d.properties["timeout"].to_string(), "1024");
        let items = d.for_each.as_ref().unwrap().literal_items().unwrap();
        let shown: Vec<String> = items.iter().map(Value::to_string).collect();
        assert_eq!(shown, ["1", "1.5", "-2"]);
    }

    #[test]
    fn ambiguous_scalars_are_refused_in_recipes_with_the_quoted_form() {
        let err = parse("- service: memcached\n  action: [enable, start]\n  ignore_failure: yes\n")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "memcached/recipes/default.yaml:3:19: yes is read as the boolean true: write true/false, or \"yes\" quoted for the string"
        );
        let err = parse("- directory: '/srv/{{item}}'\n  for_each: [007, 008]\n").unwrap_err();
        assert_eq!((err.pos.line, err.pos.column), (2, 14), "{err}");
    }

    #[test]
    fn subscribes_takes_the_subscribers_action() {
        let e =
            parse("- service: memcached\n  subscribes: restart template[/etc/memcached.conf]\n")
                .unwrap();
        assert_eq!(resource(&e[0]).subscribes[0].target_type, "template");
        assert!(parse("- service: memcached\n  subscribes: create template[/etc/x]\n").is_err());
    }

    #[test]
    fn cron_user_cannot_inject_lines() {
        let err =
            parse("- cron: job\n  command: /bin/true\n  user: \"root\\n* * * * * root evil\"\n")
                .unwrap_err();
        assert!(err.message.contains("user"), "{err}");
    }

    #[test]
    fn apt_repository_errors_name_the_right_list() {
        let err =
            parse("- apt_repository: x\n  uris: [http://a]\n  suites: ['book worm']\n  key: k\n")
                .unwrap_err();
        assert!(err.message.contains("suites"), "{err}");
    }
}
