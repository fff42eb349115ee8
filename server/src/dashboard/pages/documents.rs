//! `/roles`, `/environments` and one of each: the document as stored, its
//! revisions (who changed it, when), and the nodes that have it.

use std::sync::Arc;

use axum::extract::{Path, Query, State as Extract};
use axum::response::Response;
use maud::html;

use super::layout::{self, ago, encode_segment, link, when};
use crate::dashboard::session::Admin;
use crate::state::State;
use crate::store::{DocKind, FleetFilter};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct RevisionQuery {
    /// The revision to show; default the newest.
    revision: i64,
}

pub async fn roles(admin: Admin, state: Extract<Arc<State>>) -> Response {
    list(admin, state, DocKind::Role).await
}

pub async fn environments(admin: Admin, state: Extract<Arc<State>>) -> Response {
    list(admin, state, DocKind::Environment).await
}

pub async fn role(
    admin: Admin,
    state: Extract<Arc<State>>,
    name: Path<String>,
    query: Query<RevisionQuery>,
) -> Response {
    one(admin, state, DocKind::Role, name, query).await
}

pub async fn environment(
    admin: Admin,
    state: Extract<Arc<State>>,
    name: Path<String>,
    query: Query<RevisionQuery>,
) -> Response {
    one(admin, state, DocKind::Environment, name, query).await
}

/// `roles` or `environments`: the path and the heading.
fn plural(kind: DocKind) -> (&'static str, &'static str) {
    match kind {
        DocKind::Role => ("/roles", "Roles"),
        DocKind::Environment => ("/environments", "Environments"),
    }
}

async fn list(
    Admin(session): Admin,
    Extract(state): Extract<Arc<State>>,
    kind: DocKind,
) -> Response {
    let (path, heading) = plural(kind);
    let documents = match state.store.documents(kind).await {
        Ok(d) => d,
        Err(e) => return layout::store_error(&e),
    };
    let body = html! {
        h1 { (heading) }
        table id="documents" {
            thead { tr { th { "Name" } th { "Revision" } th { "Changed" } th { "By" } } }
            tbody {
                @for d in &documents {
                    tr {
                        td { a href=(format!("{path}/{}", encode_segment(&d.name))) { (d.name) } }
                        td.num { (d.revision) }
                        td { (ago(d.updated_at)) }
                        td { (d.updated_by) }
                    }
                }
            }
        }
    };
    layout::page(&session, path, heading, body)
}

async fn one(
    Admin(session): Admin,
    Extract(state): Extract<Arc<State>>,
    kind: DocKind,
    Path(name): Path<String>,
    Query(query): Query<RevisionQuery>,
) -> Response {
    let (path, _) = plural(kind);
    let filter = match kind {
        DocKind::Role => FleetFilter {
            role: Some(name.clone()),
            ..FleetFilter::default()
        },
        DocKind::Environment => FleetFilter {
            environment: Some(name.clone()),
            ..FleetFilter::default()
        },
    };
    let (history, nodes) = tokio::join!(
        state.store.history(kind, &name),
        state.store.fleet_page(&filter, 0, 0),
    );
    let (mut history, (nodes, _)) = match (history, nodes) {
        (Ok(h), Ok(n)) => (h, n),
        (Err(e), _) | (_, Err(e)) => return layout::store_error(&e),
    };
    history.sort_by_key(|d| std::cmp::Reverse(d.revision));
    let Some(shown) = history
        .iter()
        .find(|d| d.revision == query.revision)
        .or_else(|| history.first())
    else {
        return layout::store_error(&crate::store::StoreError::NotFound(format!(
            "{} {name} does not exist",
            kind.as_str()
        )));
    };
    let nodes_link = match kind {
        DocKind::Role => link("/", &[("role", &name)]),
        DocKind::Environment => link("/", &[("env", &name)]),
    };
    let here = format!("{path}/{}", encode_segment(&name));
    let body = html! {
        h1 { (kind.as_str()) " " (name) }
        p { a href=(nodes_link) { (nodes) " nodes" } " have it." }
        h2 { "Revision " (shown.revision) ", " (when(shown.updated_at)) " by " (shown.updated_by) }
        pre id="document" { (shown.yaml) }
        h2 { "History" }
        table id="history" {
            thead { tr { th { "Revision" } th { "Changed" } th { "By" } } }
            tbody {
                @for d in &history {
                    tr {
                        td { a href=(link(&here, &[("revision", &d.revision.to_string())])) { (d.revision) } }
                        td { (when(d.updated_at)) }
                        td { (d.updated_by) }
                    }
                }
            }
        }
    };
    layout::page(&session, path, &format!("{} {name}", kind.as_str()), body)
}
