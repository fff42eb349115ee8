//! `service`: a system service under systemd or sysvinit scripts.

use serde::{Deserialize, Serialize};

use super::{CookbookRefs, FieldError, Spec, is_templated};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub service_name: String,
    /// `auto` picks systemd when it is PID 1, init scripts otherwise.
    #[serde(default)]
    pub provider: ServiceProvider,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceProvider {
    #[default]
    Auto,
    Systemd,
    Sysvinit,
}

crate::actions! {
    /// What a `service` may be told to do.
    pub enum ServiceAction {
        Start = "start",
        Stop = "stop",
        Restart = "restart",
        Reload = "reload",
        Enable = "enable",
        Disable = "disable",
        Nothing = "nothing",
    }
}

impl Spec for ServiceSpec {
    const TYPE: &'static str = "service";
    type Action = ServiceAction;
    const DEFAULT_ACTIONS: &'static [ServiceAction] =
        &[ServiceAction::Enable, ServiceAction::Start];
    const NAME_PROPERTY: &'static str = "service_name";

    fn validate(&self, _refs: &dyn CookbookRefs) -> Result<(), FieldError> {
        let n = &self.service_name;
        let ok = is_templated(n)
            || (!n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.@:".contains(c)));
        if ok {
            Ok(())
        } else {
            Err(FieldError::new(
                "service_name",
                format!("{n:?} is not a service name"),
            ))
        }
    }
}
