//! Compile: expand the run list, evaluate `when` and `for_each`, render every
//! property and template, resolve notifications, and check the result, all
//! before anything on the node is touched. The walk through the run list is
//! [`expand`], one resource's rendering [`render`], and turning `notifies`
//! and `subscribes` into links between resources [`notifications`]. The
//! data they all read is one [`scope::Scope`] per run, never copied.
//!
//! Expansion is bounded so a large list cannot exhaust the node's memory:
//! at most [`MAX_FOR_EACH_ITEMS`] items per `for_each`, [`MAX_RUN_RESOURCES`]
//! resources and [`MAX_RUN_CONTENT_BYTES`] of file and template content per
//! run, each refused with the file and line of the resource that passes it.
//!
//! [`MAX_FOR_EACH_ITEMS`]: cm_model::recipe::MAX_FOR_EACH_ITEMS
//! [`MAX_RUN_RESOURCES`]: cm_model::recipe::MAX_RUN_RESOURCES

use std::collections::BTreeSet;

use cm_model::LoadError;
use cm_model::cookbooks::CookbookSet;
use cm_model::recipe::Timing;
use cm_model::resources::ResourceType;
use cm_model::runlist::RecipeRef;
use cm_model::secrets::Secrets;
use cm_model::template::Templates;
use serde_json::{Map, Value};

mod expand;
mod notifications;
mod render;
mod scope;

use scope::Scope;

pub use expand::{cookbooks_needed, expand_run_list};

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
    /// What the spec loaded from its cookbook at compile time
    /// ([`cm_model::resources::Spec::content`]): a file's bytes, a rendered
    /// template, an apt_repository's key.
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
    /// A resource of `kind` with these (rendered) properties and nothing
    /// else: no content, actions, guards or notifications. For building a
    /// provider by hand (tests), where no recipe is compiled.
    pub fn bare(
        kind: &'static ResourceType,
        name: &str,
        properties: Map<String, Value>,
        origin: &str,
    ) -> CompiledResource {
        CompiledResource {
            kind,
            name: name.to_string(),
            properties,
            content: None,
            actions: Vec::new(),
            only_if: None,
            not_if: None,
            creates: None,
            notifies: Vec::new(),
            ignore_failure: false,
            sensitive: false,
            holds_secret: false,
            origin: origin.to_string(),
        }
    }

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
    /// Every member once, with its roles (`cluster_nodes`).
    pub cluster_nodes: &'a Value,
    /// The node's own ordinals (`member.<role>.ordinal`).
    pub member: &'a Value,
}

/// Compile the run list into resources, in converge order.
pub fn compile(inputs: &Inputs, templates: &Templates) -> Result<Vec<CompiledResource>, LoadError> {
    // Check that every recipe exists before anything is rendered.
    expand_run_list(inputs.cookbooks, inputs.run_list)
        .map_err(|m| LoadError::in_file("run list", m))?;
    let mut walk = expand::Walk {
        inputs,
        templates,
        scope: Scope::new(inputs),
        seen: BTreeSet::new(),
        out: Vec::new(),
        pending: Vec::new(),
        content_bytes: 0,
    };
    for r in inputs.run_list {
        walk.recipe(r)?;
    }
    let expand::Walk {
        mut out,
        pending,
        mut scope,
        ..
    } = walk;
    notifications::resolve(&mut out, &pending, &mut scope, templates, inputs.secrets)?;
    Ok(out)
}
