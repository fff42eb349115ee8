//! The data a run's templates and conditions read, built once per run:
//! `attrs`, `node`, `cluster`, `cluster_nodes`, `member` and `secrets`. A
//! `for_each` item and a template's `vars` are set in place while one
//! resource or template renders and taken out after, so nothing of the
//! run's data is copied per item or per resource: with a large cluster view
//! and 200 resources, copies would cost more than the rendering.

use handlebars::Context;
use serde_json::{Map, Value};

use super::Inputs;

const SECRETS: &str = "secrets";

/// The one context of a run.
pub(super) struct Scope {
    ctx: Context,
}

impl Scope {
    pub(super) fn new(inputs: &Inputs) -> Scope {
        let mut data = Map::new();
        data.insert("attrs".into(), Value::Object(inputs.attributes.clone()));
        data.insert("node".into(), inputs.node.clone());
        data.insert("cluster".into(), inputs.cluster.clone());
        data.insert("cluster_nodes".into(), inputs.cluster_nodes.clone());
        data.insert("member".into(), inputs.member.clone());
        data.insert(SECRETS.into(), inputs.secrets.to_template_value());
        Scope {
            ctx: Context::from(Value::Object(data)),
        }
    }

    /// What templates render with (secrets included).
    pub(super) fn ctx(&self) -> &Context {
        &self.ctx
    }

    fn data(&mut self) -> &mut Map<String, Value> {
        self.ctx
            .data_mut()
            .as_object_mut()
            .expect("Scope::new builds an object")
    }

    /// Set a top-level key (`item`, `vars`), or remove it with `None`.
    pub(super) fn set(&mut self, key: &str, value: Option<Value>) {
        match value {
            Some(v) => self.data().insert(key.to_string(), v),
            None => self.data().remove(key),
        };
    }

    /// Run `f` on what conditions and `for_each` paths read: everything but
    /// the secrets, which decide nothing (a secret must not choose which
    /// resources exist, where a run's report would show it).
    pub(super) fn without_secrets<R>(&mut self, f: impl FnOnce(&Value) -> R) -> R {
        let secrets = self.data().remove(SECRETS);
        let result = f(self.ctx.data());
        if let Some(secrets) = secrets {
            self.data().insert(SECRETS.into(), secrets);
        }
        result
    }
}
