//! `/events`: server-sent events for live pages. One task per server reads
//! the store's change mark every two seconds while a page listens (the
//! newest runs and audit events, the census: the same on every replica)
//! and publishes it; each
//! open page's stream sends `change` when it moved, and the page's script
//! fetches its `<main>` again. Streams read no database of their own but
//! their session's validity, every 30 seconds: a session that ends ends
//! its streams then.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State as Extract;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::session::Admin;
use crate::state::State;
use crate::store::DashboardSession;

const EVERY: Duration = Duration::from_secs(2);
const SESSION_CHECK: Duration = Duration::from_secs(30);

/// The latest change mark, and when it last moved, shared by every
/// stream of this server.
#[derive(Clone)]
pub struct Marks(watch::Receiver<(String, Instant)>);

/// A stream that opens this soon after the mark moved may belong to a
/// page rendered just before the move: it is told at once.
const RECENT: Duration = Duration::from_secs(5);

impl Marks {
    /// Read the mark every [`EVERY`] until `stop`.
    pub fn spawn(state: Arc<State>, mut stop: watch::Receiver<bool>) -> Marks {
        let (tx, rx) = watch::channel((String::new(), Instant::now()));
        tokio::spawn(async move {
            loop {
                // Read only while a page listens: the router holds one
                // receiver, every open stream another. After a quiet spell
                // the mark held is old: a page may refresh once for
                // nothing, and misses nothing.
                if tx.receiver_count() > 1
                    && let Ok(mark) = state.store.change_mark().await
                {
                    tx.send_if_modified(|(old, when)| {
                        let moved = *old != mark;
                        if moved {
                            *old = mark;
                            *when = Instant::now();
                        }
                        moved
                    });
                }
                tokio::select! {
                    () = tokio::time::sleep(EVERY) => {}
                    _ = stop.changed() => return,
                }
            }
        });
        Marks(rx)
    }
}

pub async fn events(
    Admin(session): Admin,
    Extract(state): Extract<Arc<State>>,
    Extension(Marks(mut marks)): Extension<Marks>,
) -> Response {
    let recent = marks.borrow_and_update().1.elapsed() < RECENT;
    Sse::new(changes(state, session, marks, recent))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn changes(
    state: Arc<State>,
    session: DashboardSession,
    marks: watch::Receiver<(String, Instant)>,
    recent: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let checked = Instant::now();
    stream::unfold(
        (state, session, marks, checked, recent),
        |(state, session, mut marks, mut checked, recent)| async move {
            if recent {
                let event = Event::default().event("change").data("fleet");
                return Some((Ok(event), (state, session, marks, checked, false)));
            }
            loop {
                let changed = tokio::select! {
                    changed = marks.changed() => match changed {
                        Ok(()) => true,
                        // The server is stopping.
                        Err(_) => return None,
                    },
                    () = tokio::time::sleep(SESSION_CHECK) => false,
                };
                if checked.elapsed() >= SESSION_CHECK {
                    match state.store.dashboard_session(&session.digest).await {
                        Ok(Some(_)) => checked = Instant::now(),
                        Ok(None) => return None,
                        Err(_) => continue,
                    }
                }
                if changed {
                    let event = Event::default().event("change").data("fleet");
                    return Some((Ok(event), (state, session, marks, checked, false)));
                }
            }
        },
    )
}
