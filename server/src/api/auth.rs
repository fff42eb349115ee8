//! Who is calling: every RPC has an explicit policy. Identity comes only from
//! the client certificate the CA issued (never from a request field or a
//! fact), and a revoked serial is refused even while the certificate is valid.

use tonic::{Request, Status};

use super::status::status;
use crate::pki::{Caller, Identity, identity_of};
use crate::state::State;
use crate::store::{AdminRow, Level};

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
    if state.is_revoked(&caller.serial).await.map_err(status)? {
        return Err(Status::unauthenticated("this certificate has been revoked"));
    }
    let principal = match &caller.identity {
        Identity::Node(n) => Principal::Node(n.clone()),
        Identity::Admin(n) => Principal::Admin(n.clone()),
    };
    Ok((principal, caller))
}

/// Admin calls: an admin credential, never a node's, with the admin's
/// level and environments as stored now (docs/server.md, "Admin
/// permissions"): a change takes effect at the admin's next call.
/// The credential must be the admin's current one: a removed admin's, or
/// one replaced when the name was added again, is refused here even where
/// the revocation has not been seen yet (another replica).
pub(crate) async fn admin<T>(state: &State, req: &Request<T>) -> Result<AdminRow, Status> {
    let (principal, caller) = caller(state, req).await?;
    match principal {
        Principal::Admin(name) => {
            let row = state.store.admin(&name).await.map_err(status)?;
            if row.removed || row.cert_serial != caller.serial {
                return Err(Status::unauthenticated(format!(
                    "this credential of admin {name} is no longer valid"
                )));
            }
            Ok(row)
        }
        Principal::Node(n) => Err(Status::permission_denied(format!(
            "node {n} may not call admin APIs"
        ))),
    }
}

fn refused(admin: &AdminRow, what: &str) -> Status {
    let limited = match admin.environments.is_empty() {
        true => String::new(),
        false => format!(" of {}", admin.environments.join(", ")),
    };
    Status::permission_denied(format!(
        "admin {} is {} {}{limited}: {what}",
        admin.name,
        article(admin.level),
        admin.level.as_str()
    ))
}

fn article(level: Level) -> &'static str {
    match level {
        Level::Operator | Level::Owner => "an",
        Level::Viewer => "a",
    }
}

/// Reads: every admin. Returns the admin's name.
pub async fn viewer<T>(state: &State, req: &Request<T>) -> Result<String, Status> {
    Ok(admin(state, req).await?.name)
}

/// A change to what every environment shares (cookbooks, roles): an
/// operator or owner of every environment.
pub async fn operator<T>(state: &State, req: &Request<T>, what: &str) -> Result<String, Status> {
    let a = admin(state, req).await?;
    if a.level < Level::Operator {
        return Err(refused(&a, &format!("{what} needs an operator")));
    }
    if !a.environments.is_empty() {
        return Err(refused(
            &a,
            &format!("{what} changes every environment: it needs an admin of all of them"),
        ));
    }
    Ok(a.name)
}

/// A change within environments `envs` (their documents, nodes, tokens):
/// an operator or owner of each.
pub async fn operator_in<T>(
    state: &State,
    req: &Request<T>,
    envs: &[&str],
    what: &str,
) -> Result<String, Status> {
    let a = admin(state, req).await?;
    if a.level < Level::Operator {
        return Err(refused(&a, &format!("{what} needs an operator")));
    }
    if let Some(env) = envs
        .iter()
        .find(|e| !a.environments.is_empty() && !a.environments.iter().any(|x| x == *e))
    {
        let place = match env.is_empty() {
            true => "in none of them".to_string(),
            false => format!("in environment {env}"),
        };
        return Err(refused(&a, &format!("{what} is {place}")));
    }
    Ok(a.name)
}

/// A change to a node: an operator of its environment. A node that does
/// not exist is in no environment: an admin limited to some is refused it.
/// Returns the admin's name, and for an admin limited to environments the
/// node's environment as checked, which the store holds the change to
/// (`store::Actor`): a node moved meanwhile is not changed.
pub async fn operator_of_node<T>(
    state: &State,
    req: &Request<T>,
    node: &str,
    what: &str,
) -> Result<(String, Option<String>), Status> {
    // An admin first: the lookup is no work done for a node's certificate.
    let a = admin(state, req).await?;
    let env = node_environment(state, node).await?;
    let who = operator_in(state, req, &[&env], what).await?;
    Ok((who, (!a.environments.is_empty()).then_some(env)))
}

/// The environment of `node`; empty when there is no such node.
pub async fn node_environment(state: &State, node: &str) -> Result<String, Status> {
    match state.store.node(node).await {
        Ok(n) => Ok(n.environment),
        Err(crate::store::StoreError::NotFound(_)) => Ok(String::new()),
        Err(e) => Err(status(e)),
    }
}

/// Handing out `roles` (a token, an assignment): a node of a role reads the
/// role's secrets whatever its environment, so an admin limited to some
/// environments may not hand out a role that has secrets.
pub async fn may_hand_out<T>(
    state: &State,
    req: &Request<T>,
    roles: &[String],
) -> Result<(), Status> {
    let a = admin(state, req).await?;
    if a.environments.is_empty() {
        return Ok(());
    }
    let secrets = state.store.secrets().await.map_err(status)?;
    for s in &secrets {
        if let Some(role) = s.roles.iter().find(|r| roles.contains(r)) {
            return Err(refused(
                &a,
                &format!(
                    "role {role} reads secrets, which nodes of every environment share: \
                     handing it out needs an admin of all of them"
                ),
            ));
        }
    }
    Ok(())
}

/// Secrets and admins: an owner of every environment.
pub async fn owner<T>(state: &State, req: &Request<T>, what: &str) -> Result<String, Status> {
    let a = admin(state, req).await?;
    if !a.full_owner() {
        return Err(refused(
            &a,
            &format!("{what} needs an owner of every environment"),
        ));
    }
    Ok(a.name)
}

/// How long a certificate replaced by a renewal may still renew: the
/// answer to that renewal may have been lost on its way, leaving the node
/// with only the certificate the renewal revoked.
pub const RENEW_GRACE_SECS: i64 = 24 * 3600;

/// Whether a revocation is a renewal of `node`'s, recent enough to renew again.
pub fn renewal_grace(node: &str, reason: &str, revoked_at: i64, now: i64) -> bool {
    reason == format!("node {node} renewed") && now - revoked_at < RENEW_GRACE_SECS
}

/// Renew: [`node`], or a node certificate that its own renewal revoked
/// less than [`RENEW_GRACE_SECS`] ago. A retired node is refused later,
/// by the store.
pub async fn node_renewing<T>(state: &State, req: &Request<T>) -> Result<(String, Caller), Status> {
    let refused = match node(state, req).await {
        Ok(found) => return Ok(found),
        Err(refused) => refused,
    };
    let Some(leaf) = req.peer_certs().and_then(|c| c.first().cloned()) else {
        return Err(refused);
    };
    let Ok(caller) = identity_of(leaf.as_ref()) else {
        return Err(refused);
    };
    let Identity::Node(name) = caller.identity.clone() else {
        return Err(refused);
    };
    match state.store.revocation(&caller.serial).await {
        Ok(Some(r)) if renewal_grace(&name, &r.reason, r.revoked_at, crate::state::now()) => {
            tracing::info!(node = %name, "renewing with the certificate a renewal replaced (its answer was lost)");
            Ok((name, caller))
        }
        _ => Err(refused),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_grace_is_for_the_nodes_own_recent_renewal_only() {
        assert!(renewal_grace("n1", "node n1 renewed", 1000, 1000 + 3600));
        assert!(!renewal_grace(
            "n1",
            "node n1 renewed",
            1000,
            1000 + RENEW_GRACE_SECS
        ));
        assert!(!renewal_grace("n1", "node n1 retired", 1000, 1001));
        assert!(!renewal_grace("n1", "node n2 renewed", 1000, 1001));
    }
}
