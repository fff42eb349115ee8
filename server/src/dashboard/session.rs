//! Logging in (docs/dashboard.md): `cmctl dashboard` asks the server for a
//! one-time link valid for five minutes; opening it starts a session, kept
//! in an `HttpOnly; Secure; SameSite=Strict` cookie for eight hours. Only
//! digests of both secrets are stored ([`crate::store::DashboardSession`]).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Query, State as Extract};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::pages::layout;
use crate::state::State;
use crate::store::{AdminRow, DashboardSession, StoreError};

pub const LINK_LIFETIME_SECONDS: i64 = 300;
pub const SESSION_LIFETIME_SECONDS: i64 = 8 * 3600;
const COOKIE: &str = "cm_session";

/// A new secret (32 random bytes, URL-safe) and its digest.
fn secret() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let digest = digest(&text);
    (text, digest)
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A login link for `admin` and when it expires (unix seconds); `None`
/// when this server serves no dashboard.
pub async fn issue_link(
    state: &State,
    admin: &AdminRow,
) -> Result<Option<(String, i64)>, StoreError> {
    let Some(base) = state.dashboard_url.get() else {
        return Ok(None);
    };
    let (token, digest) = secret();
    let expires_at = crate::state::now() + LINK_LIFETIME_SECONDS;
    state
        .store
        .add_dashboard_link(&digest, admin, expires_at)
        .await?;
    Ok(Some((format!("{base}/login?token={token}"), expires_at)))
}

#[derive(serde::Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    token: String,
}

/// `GET /login?token=…`: start a session and go to the fleet, or say why not.
pub async fn login(Extract(state): Extract<Arc<State>>, Query(q): Query<LoginQuery>) -> Response {
    let (session, session_digest) = secret();
    let started = state
        .store
        .start_dashboard_session(&digest(&q.token), &session_digest, SESSION_LIFETIME_SECONDS)
        .await;
    match started {
        Ok(Some(_)) => {
            let cookie = format!(
                "{COOKIE}={session}; Path=/; Max-Age={SESSION_LIFETIME_SECONDS}; HttpOnly; Secure; SameSite=Strict"
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Ok(None) => layout::message(
            StatusCode::FORBIDDEN,
            "This login link does not work",
            "It was used already, has expired (links last five minutes), or its admin was \
             removed or changed since. Run `cmctl dashboard` for a new one.",
        ),
        Err(e) => layout::store_error(&e),
    }
}

/// `POST /logout`: end the session.
pub async fn logout(Extract(state): Extract<Arc<State>>, headers: HeaderMap) -> Response {
    if let Some(secret) = cookie(&headers) {
        let who = match state.store.dashboard_session(&digest(secret)).await {
            Ok(Some(s)) => Some(s.admin),
            _ => None,
        };
        if let Err(e) = state
            .store
            .end_dashboard_session(&digest(secret), who.as_deref())
            .await
        {
            return layout::store_error(&e);
        }
    }
    let clear = format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
    (
        [(header::SET_COOKIE, clear)],
        layout::message(
            StatusCode::OK,
            "Logged out",
            "Run `cmctl dashboard` for a new login link.",
        ),
    )
        .into_response()
}

/// The session cookie's value, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// The admin behind a request: every page takes one, so none is shown
/// without a valid session.
pub struct Admin(pub DashboardSession);

impl FromRequestParts<Arc<State>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<State>) -> Result<Self, Response> {
        let refused = || {
            layout::message(
                StatusCode::UNAUTHORIZED,
                "Log in first",
                "Run `cmctl dashboard` and open the link it prints. A session ends after eight \
                 hours, at logout, and when its admin is removed or given another level.",
            )
        };
        let secret = cookie(&parts.headers).ok_or_else(refused)?;
        match state.store.dashboard_session(&digest(secret)).await {
            Ok(Some(session)) => Ok(Admin(session)),
            Ok(None) => Err(refused()),
            Err(e) => Err(layout::store_error(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_stored_as_digests() {
        let (a, da) = secret();
        let (b, _) = secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 bytes, base64url without padding");
        assert_eq!(da, digest(&a));
        assert_eq!(da.len(), 64);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; cm_session=xyz; b=2".parse().unwrap());
        assert_eq!(cookie(&headers), Some("xyz"));
        headers.insert(header::COOKIE, "cm_session=".parse().unwrap());
        assert_eq!(cookie(&headers), None);
    }
}
