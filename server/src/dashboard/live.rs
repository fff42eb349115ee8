//! `/events`: server-sent events for live pages. Every two seconds the
//! stream reads the store's change mark (newest run and audit event, the
//! census: the same on every replica) and sends `change` when it moved;
//! the page's script then fetches its `<main>` again. A session that ends
//! ends its stream at the next look.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as Extract;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};

use super::session::Admin;
use crate::state::State;

const EVERY: Duration = Duration::from_secs(2);

pub async fn events(admin: Admin, Extract(state): Extract<Arc<State>>) -> Response {
    let mark = state.store.change_mark().await.unwrap_or_default();
    Sse::new(changes(state, admin, mark))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn changes(
    state: Arc<State>,
    Admin(session): Admin,
    mark: String,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(
        (state, session, mark),
        |(state, session, mut mark)| async move {
            loop {
                tokio::time::sleep(EVERY).await;
                match state.store.dashboard_session(&session.digest).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return None,
                    Err(_) => continue,
                }
                let Ok(now) = state.store.change_mark().await else {
                    continue;
                };
                if now != mark {
                    mark = now;
                    let event = Event::default().event("change").data("fleet");
                    return Some((Ok(event), (state, session, mark)));
                }
            }
        },
    )
}
