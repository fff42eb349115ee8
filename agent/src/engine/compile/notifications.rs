//! Notifications: `notifies` and `subscribes`, written against a type and a
//! (templated) name, become links from one compiled resource to another by
//! index, once every resource of the run is known.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cm_model::LoadError;
use cm_model::recipe::ResourceDecl;
use cm_model::secrets::Secrets;
use cm_model::template::Templates;
use serde_json::Value;

use super::CompiledResource;
use super::scope::Scope;

/// A compiled resource whose notifications wait for the whole run.
pub(super) struct Pending<'a> {
    pub(super) index: usize,
    pub(super) unit_file: PathBuf,
    pub(super) decl: &'a ResourceDecl,
    /// Its `for_each` item, which targets' names may read.
    pub(super) item: Option<Value>,
}

/// Turn `notifies` and `subscribes` into index-based notifications.
pub(super) fn resolve(
    out: &mut [CompiledResource],
    pending: &[Pending],
    scope: &mut Scope,
    templates: &Templates,
    secrets: &Secrets,
) -> Result<(), LoadError> {
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for (i, r) in out.iter().enumerate() {
        by_id.entry(r.id()).or_insert(i);
    }
    for p in pending {
        scope.set("item", p.item.clone());
        let linked = link(out, p, &by_id, scope, templates, secrets);
        scope.set("item", None);
        linked?;
    }
    Ok(())
}

/// One resource's notifications, with its item set in `scope`.
fn link(
    out: &mut [CompiledResource],
    p: &Pending,
    by_id: &BTreeMap<String, usize>,
    scope: &Scope,
    templates: &Templates,
    secrets: &Secrets,
) -> Result<(), LoadError> {
    let name = secrets.redact(&out[p.index].name);
    let err = |key: &str, m: String| {
        LoadError::new(
            &p.unit_file,
            p.decl.pos_of(key),
            format!("{}[{name}] {key}: {}", p.decl.kind.name, secrets.redact(&m)),
        )
    };
    let target = |key: &str, ty: &str, target: &str| -> Result<usize, LoadError> {
        let target = templates
            .render_str(target, scope.ctx())
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
    Ok(())
}
