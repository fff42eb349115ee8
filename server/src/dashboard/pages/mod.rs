//! The pages. Each handler takes a [`super::session::Admin`], so none is
//! served without a session, reads what it shows from the store (filtered
//! and paged there), and renders it with maud, which escapes every value:
//! a node's fact `<script>` is shown as text.

use axum::http::StatusCode;
use axum::response::Response;

pub mod audit;
pub mod cluster;
pub mod cookbooks;
pub mod documents;
pub mod fleet;
pub mod layout;
pub mod node;
pub mod static_file;

/// Anything else: 404, with or without a session (it reveals nothing).
pub async fn not_found() -> Response {
    layout::message(
        StatusCode::NOT_FOUND,
        "Not found",
        "No such page. The fleet is at /.",
    )
}
