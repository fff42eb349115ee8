//! The frame every page shares, and small pieces the pages reuse.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::store::{DashboardSession, StoreError};

/// The sections in the header, by path.
const SECTIONS: [(&str, &str); 6] = [
    ("/", "Fleet"),
    ("/roles", "Roles"),
    ("/environments", "Environments"),
    ("/cookbooks", "Cookbooks"),
    ("/cluster", "Cluster"),
    ("/audit", "Audit"),
];

fn frame(title: &str, header: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · cm" }
                link rel="stylesheet" href="/static/style.css";
                script src="/static/live.js" defer {}
            }
            body {
                (header)
                main { (body) }
            }
        }
    }
}

/// A page for a logged-in admin; `section` is the header entry it is in.
pub fn page(session: &DashboardSession, section: &str, title: &str, body: Markup) -> Response {
    let header = html! {
        header {
            strong { "cm" }
            @for (path, name) in SECTIONS {
                a href=(path) class=[(path == section).then_some("here")] { (name) }
            }
            span.who {
                (session.admin) " (" (session.level.as_str())
                @if !session.environments.is_empty() { " of " (session.environments.join(", ")) }
                ")"
            }
            form method="post" action="/logout" { button type="submit" { "Log out" } }
        }
    };
    Html(frame(title, header, body).into_string()).into_response()
}

/// A page without the sections: login, logout, refusals, errors.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let header = html! { header { strong { "cm" } } };
    let body = html! { h1 { (title) } p { (text) } };
    (status, Html(frame(title, header, body).into_string())).into_response()
}

/// The page a login link opens: who it logs in as, and the button that
/// does (a POST, so fetching the link alone spends nothing).
pub fn login(admin: &str, token: &str) -> Response {
    let header = html! { header { strong { "cm" } } };
    let body = html! {
        h1 { "Log in to the dashboard" }
        p { "This link logs you in as admin " strong { (admin) } " for eight hours. It works once." }
        form method="post" action="/login" {
            input type="hidden" name="token" value=(token);
            button id="login" type="submit" { "Log in as " (admin) }
        }
    };
    Html(frame("Log in", header, body).into_string()).into_response()
}

/// The store failed or has no such thing.
pub fn store_error(e: &StoreError) -> Response {
    match e {
        StoreError::NotFound(what) => message(StatusCode::NOT_FOUND, "Not found", what),
        StoreError::Invalid(what) => message(StatusCode::BAD_REQUEST, "Bad request", what),
        _ => {
            tracing::warn!(error = %e, "dashboard: the store failed");
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database did not answer",
                "Try again in a moment; the server's log says more.",
            )
        }
    }
}

/// A word in a coloured badge (`ok`, `failed`, `active`, ...).
pub fn badge(word: &str) -> Markup {
    html! { span class={ "badge " (word) } { (word) } }
}

pub use cm_model::time::{ago, when};

/// `ok`, `error` or `none`: the plan's state as the fleet page filters it.
pub fn plan_word(plan_hash: &str, plan_error: &str) -> &'static str {
    match (plan_error.is_empty(), plan_hash.is_empty()) {
        (false, _) => "error",
        (true, true) => "none",
        (true, false) => "ok",
    }
}

/// A link to `path` with the query `pairs` (empty values left out),
/// encoded.
pub fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        query.append_pair(k, v);
    }
    match query.finish() {
        q if q.is_empty() => path.to_string(),
        q => format!("{path}?{q}"),
    }
}

/// `/nodes/NAME` with the name encoded.
pub fn node_link(name: &str) -> String {
    format!("/nodes/{}", encode_segment(name))
}

/// A path segment with everything but unreserved characters encoded.
pub fn encode_segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_what_they_carry() {
        assert_eq!(link("/", &[("q", "a b&c"), ("env", "")]), "/?q=a+b%26c");
        assert_eq!(node_link("web 1/../x"), "/nodes/web%201%2F..%2Fx");
    }

    #[test]
    fn values_are_escaped() {
        let shown = badge("<script>alert(1)</script>").into_string();
        assert!(!shown.contains("<script>"), "{shown}");
        assert!(shown.contains("&lt;script&gt;"), "{shown}");
    }
}
