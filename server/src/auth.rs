//! Who is calling: every RPC has an explicit policy. Identity comes only from
//! the client certificate the CA issued (never from a request field or a
//! fact), and a revoked serial is refused even while the certificate is valid.

use tonic::{Request, Status};

use crate::pki::{Caller, Identity, identity_of};
use crate::state::State;

/// The caller, authenticated.
#[derive(Debug, Clone)]
pub enum Principal {
    Node(String),
    Admin(String),
}

impl Principal {
    pub fn name(&self) -> &str {
        match self {
            Principal::Node(n) | Principal::Admin(n) => n,
        }
    }
}

/// The certificate's identity, after checking the serial is not revoked.
pub async fn caller<T>(state: &State, req: &Request<T>) -> Result<(Principal, Caller), Status> {
    let certs = req.peer_certs().ok_or_else(|| {
        Status::unauthenticated(
            "a client certificate is required (enroll first, or use an admin credential)",
        )
    })?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let caller = identity_of(leaf.as_ref())
        .map_err(|e| Status::unauthenticated(format!("client certificate: {e}")))?;
    if state.is_revoked(&caller.serial).await? {
        return Err(Status::unauthenticated("this certificate has been revoked"));
    }
    let principal = match &caller.identity {
        Identity::Node(n) => Principal::Node(n.clone()),
        Identity::Admin(n) => Principal::Admin(n.clone()),
    };
    Ok((principal, caller))
}

/// Admin calls: an admin credential, never a node's.
pub async fn admin<T>(state: &State, req: &Request<T>) -> Result<String, Status> {
    match caller(state, req).await?.0 {
        Principal::Admin(name) => Ok(name),
        Principal::Node(n) => Err(Status::permission_denied(format!(
            "node {n} may not call admin APIs"
        ))),
    }
}

/// Agent calls: a node credential; the node is who its certificate says.
pub async fn node<T>(state: &State, req: &Request<T>) -> Result<(String, Caller), Status> {
    match caller(state, req).await? {
        (Principal::Node(name), c) => Ok((name, c)),
        (Principal::Admin(n), _) => Err(Status::permission_denied(format!(
            "admin {n} is not a node"
        ))),
    }
}
