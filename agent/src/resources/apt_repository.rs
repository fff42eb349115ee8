//! `apt_repository` provider (being written).

use cm_model::resources::apt_repository::AptRepositorySpec;
use cm_model::resources::{FieldError, Spec};

use super::{Cx, Outcome, Provider, ProviderType, spec_of};
use crate::engine::CompiledResource;

pub const PROVIDER: ProviderType = ProviderType {
    name: AptRepositorySpec::TYPE,
    build,
};

struct Pending;

fn build(r: &CompiledResource) -> Result<Box<dyn Provider>, FieldError> {
    let _spec: AptRepositorySpec = spec_of(r)?;
    Ok(Box::new(Pending))
}

impl Provider for Pending {
    fn converge(&mut self, _action: &str, _cx: &mut Cx) -> Result<Outcome, String> {
        Err("the apt_repository provider is not available yet".into())
    }
}
