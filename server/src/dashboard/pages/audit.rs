//! `/audit`: who changed what, newest first, optionally one admin's.

use std::sync::Arc;

use axum::extract::{Query, State as Extract};
use axum::response::Response;
use maud::html;

use super::layout::{self, link, when};
use crate::dashboard::session::Admin;
use crate::state::State;

const EVENTS: u32 = 200;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct AuditQuery {
    who: String,
}

pub async fn page(
    Admin(session): Admin,
    Extract(state): Extract<Arc<State>>,
    Query(query): Query<AuditQuery>,
) -> Response {
    let who = Some(query.who.trim()).filter(|w| !w.is_empty());
    let events = match state.store.audit(EVENTS, who).await {
        Ok(e) => e,
        Err(e) => return layout::store_error(&e),
    };
    let body = html! {
        h1 { "Audit log" }
        form.filter method="get" action="/audit" {
            input type="text" name="who" placeholder="admin" value=(query.who);
            button type="submit" { "Filter" }
        }
        p.muted { "The newest " (EVENTS) " events." }
        table id="audit" {
            thead { tr { th { "When" } th { "Who" } th { "What" } th { "Before" } th { "After" } } }
            tbody {
                @for e in &events {
                    tr {
                        td { (when(e.at)) }
                        td { a href=(link("/audit", &[("who", &e.who)])) { (e.who) } }
                        td { (e.what) }
                        td { code { (e.before_json.as_deref().unwrap_or("")) } }
                        td { code { (e.after_json.as_deref().unwrap_or("")) } }
                    }
                }
            }
        }
    };
    layout::page(&session, "/audit", "Audit", body)
}
