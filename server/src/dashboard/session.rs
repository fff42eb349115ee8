//! Logging in (docs/dashboard.md): `cmctl dashboard` asks the server for a
//! one-time link valid for five minutes; opening it shows a button whose
//! POST spends the link and starts a session, kept in an `HttpOnly;
//! Secure; SameSite=Strict` cookie for eight hours. Only digests of both
//! secrets are stored ([`crate::store::DashboardSession`]).

use std::sync::Arc;

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State as Extract};
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
/// `__Host-`: browsers accept it only from this host, over HTTPS, for
/// the whole site, so no sibling host can plant one.
const COOKIE: &str = "__Host-cm_session";

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

/// A token as [`secret`] makes them: 43 base64url characters. Anything
/// else is refused before the database is asked.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn link_refused() -> Response {
    layout::message(
        StatusCode::FORBIDDEN,
        "This login link does not work",
        "It was used already, has expired (links last five minutes), or its admin was \
         removed or changed since. Run `cmctl dashboard` for a new one.",
    )
}

/// `GET /login?token=…`: a page with one button that logs in. Opening the
/// link spends nothing, so a chat's link preview or a mail scanner that
/// fetches it cannot take the session; the button's POST does.
pub async fn login_page(
    Extract(state): Extract<Arc<State>>,
    Query(q): Query<LoginQuery>,
) -> Response {
    if !well_formed(&q.token) {
        return link_refused();
    }
    let admin = match state.store.dashboard_link_admin(&digest(&q.token)).await {
        Ok(Some(admin)) => admin,
        Ok(None) => return link_refused(),
        Err(e) => return layout::store_error(&e),
    };
    layout::login(&admin, &q.token)
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
}

/// `POST /login`: spend the link, start a session, go to the fleet.
pub async fn login(
    Extract(state): Extract<Arc<State>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return layout::message(
            StatusCode::FORBIDDEN,
            "Refused",
            "Logging in is only done from the dashboard's own login page.",
        );
    }
    if !well_formed(&form.token) {
        return link_refused();
    }
    let (session, session_digest) = secret();
    let from = peer.ip().to_string();
    let started = state
        .store
        .start_dashboard_session(
            &digest(&form.token),
            &session_digest,
            SESSION_LIFETIME_SECONDS,
            &from,
        )
        .await;
    match started {
        Ok(Some(s)) => {
            tracing::info!(admin = %s.admin, from = %from, "dashboard: logged in");
            let cookie = format!(
                "{COOKIE}={session}; Path=/; Max-Age={SESSION_LIFETIME_SECONDS}; HttpOnly; Secure; SameSite=Strict"
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Ok(None) => {
            tracing::warn!(from = %from, "dashboard: a login link that does not work");
            link_refused()
        }
        Err(e) => layout::store_error(&e),
    }
}

/// A form post from the dashboard's own pages: browsers say where a
/// request comes from in `Sec-Fetch-Site`; one from another site, even
/// another port of this host (SameSite does not tell ports apart), is
/// refused. Clients that send no such header (scripts) are let through.
fn same_origin(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|site| site == "same-origin")
}

/// `POST /logout`: end the session.
pub async fn logout(Extract(state): Extract<Arc<State>>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return layout::message(
            StatusCode::FORBIDDEN,
            "Refused",
            "Log out from the dashboard.",
        );
    }
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
    fn only_well_formed_tokens_reach_the_database() {
        assert!(well_formed(&secret().0));
        assert!(!well_formed("x"));
        assert!(!well_formed(&"a".repeat(42)));
        assert!(!well_formed(&format!("{}%", "a".repeat(42))));
    }

    #[test]
    fn posts_from_another_site_are_refused() {
        let mut headers = HeaderMap::new();
        assert!(same_origin(&headers), "scripts send no Sec-Fetch-Site");
        headers.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(same_origin(&headers));
        headers.insert("sec-fetch-site", "same-site".parse().unwrap());
        assert!(!same_origin(&headers));
        headers.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&headers));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; cm_session=old; __Host-cm_session=xyz; b=2"
                .parse()
                .unwrap(),
        );
        assert_eq!(cookie(&headers), Some("xyz"));
        headers.insert(header::COOKIE, "__Host-cm_session=".parse().unwrap());
        assert_eq!(cookie(&headers), None);
    }
}
