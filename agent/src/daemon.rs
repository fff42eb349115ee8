//! `cm-agent daemon`: keep the node converged. It converges every interval
//! (plus a random splay), and when the watch stream says its plan changed
//! (after the environment's splay). Calls to an unreachable server are
//! retried with exponential backoff and jitter; a refused token or a
//! revoked certificate stops the daemon with a message, never a retry storm.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use cm_proto::v1::agent_client::AgentClient;
use cm_proto::v1::{Empty, WatchRequest};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until};
use tonic::transport::Channel;

use crate::config::Config;
use crate::lock::RunLock;
use crate::node::{Connected, Fatal, RunOptions, connect_with_backoff};
use crate::remote::backoff::{Backoff, random_up_to};
use crate::remote::{RemoteError, now};
use crate::restart::Restart;
use crate::signals::STOP;

/// What the watch task tells the main loop.
#[derive(Debug)]
enum Event {
    /// The stream is (re)connected: the server is reachable again.
    Connected,
    PlanChanged {
        hash: String,
        reason: String,
    },
    Revoked(String),
}

/// Run until SIGTERM/SIGINT (Ok) or a fatal refusal (Err).
pub async fn run(config: Config, opts: RunOptions) -> Result<(), Fatal> {
    let stop = stop_signal();
    let restart = Restart::listen();
    // Closed on exec, which releases it for the binary that follows.
    let _instance = one_daemon(&config)?;
    let waiting = |e: &RemoteError, wait: Duration| {
        notify(&[sd_notify::NotifyState::Status(
            "waiting for the server to enroll",
        )]);
        tracing::warn!(error = %e, retry_in = wait.as_secs_f32(), "cannot enroll yet");
    };
    // Only a stop ends the retries: the daemon waits for its server as
    // long as it takes. An upgrade meanwhile takes effect at once.
    let mut node = loop {
        let until = async {
            tokio::select! {
                () = stop.notified() => {}
                () = restart.wanted() => {}
            }
        };
        match connect_with_backoff(&config, until, waiting).await? {
            Connected::Node(node) => break *node,
            Connected::GaveUp(_) if restart.asked() && !STOP.load(Ordering::SeqCst) => {
                restart.now_or_carry_on();
            }
            Connected::GaveUp(_) => return Ok(()),
        }
    };
    notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(node = %node.identity.name, server = %node.identity.server, "agent running");

    let (known_tx, known_rx) = watch::channel(node.plan_hash().unwrap_or_default());
    let (events_tx, mut events) = mpsc::channel(16);
    let busy = Busy::default();
    let spawn_follow = |channel: Channel| {
        tokio::spawn(follow(
            channel,
            known_rx.clone(),
            events_tx.clone(),
            busy.clone(),
        ))
    };
    let mut watcher = spawn_follow(node.channel());
    let mut watching_as = node.identity.cert_pem.clone();

    let mut cause = "starting";
    let mut offline = Backoff::new();
    // A failed run (a mirror down, a service that would not start) is
    // tried again well before the interval: 10 s doubling to 5 minutes.
    let mut failing = Backoff::between(Duration::from_secs(10), Duration::from_secs(300));
    loop {
        if restart.asked() {
            restart.now_or_carry_on();
        }
        tracing::info!(cause, "converging");
        notify(&[sd_notify::NotifyState::Status("converging")]);
        busy.start();
        let progress = busy.clone();
        let out = node
            .run(&opts, &STOP, Box::new(move |_| progress.start()))
            .await
            .inspect_err(|e| tracing::error!("{e}"))?;
        busy.stop();
        log_outcome(&out);
        if let Some(h) = &out.plan_hash {
            let _ = known_tx.send(h.clone());
        }
        // A renewal revoked the certificate the stream reconnects with.
        if node.identity.cert_pem != watching_as {
            watcher.abort();
            watcher = spawn_follow(node.channel());
            watching_as = node.identity.cert_pem.clone();
        }
        if STOP.load(Ordering::SeqCst) {
            break;
        }
        if restart.asked() {
            cause = "restart";
            continue;
        }
        notify(&[sd_notify::NotifyState::Status("idle")]);
        // Without any plan there is nothing to converge: keep asking, with backoff.
        let delay = if out.plan_hash.is_none() && !out.online {
            offline.next_delay()
        } else if out.report.failed() {
            offline.reset();
            failing.next_delay().min(config.interval)
        } else {
            offline.reset();
            failing.reset();
            config.interval + random_up_to(config.splay)
        };
        let deadline = Instant::now() + delay;
        cause = loop {
            tokio::select! {
                () = sleep_until(deadline) => break if out.report.failed() {
                    "retrying a failed run"
                } else {
                    "interval"
                },
                () = stop.notified() => break "stop",
                () = restart.wanted() => break "restart",
                event = events.recv() => match event {
                    // In plan error, any event may be the plan coming back,
                    // even as the last good one this node already has.
                    Some(Event::PlanChanged { hash, reason }) if out.plan_hash.as_ref() != Some(&hash) || out.report.plan_error.is_some() => {
                        tracing::info!(%reason, "plan changed");
                        let bound = Duration::from_secs(u64::from(out.splay_seconds));
                        if !bound.is_zero() {
                            let splay = random_up_to(bound);
                            tracing::info!(
                                seconds = splay.as_secs_f32(),
                                at_most = out.splay_seconds,
                                "waiting out the splay"
                            );
                            tokio::select! {
                                () = sleep(splay) => {}
                                () = stop.notified() => break "stop",
                            }
                        }
                        break "plan changed";
                    }
                    Some(Event::PlanChanged { .. }) => {}
                    Some(Event::Connected) => {
                        node.flush_reports().await?;
                        if out.plan_hash.is_none() {
                            break "server reachable";
                        }
                    }
                    Some(Event::Revoked(m)) => {
                        // A stream from before a renewal, or a renewal by
                        // another agent process: check before giving up.
                        watcher.abort();
                        if !node.adopt_newer_identity()? && !node.still_accepted().await {
                            return Err(Fatal::Revoked(m));
                        }
                        watcher = spawn_follow(node.channel());
                        watching_as = node.identity.cert_pem.clone();
                    }
                    None => {}
                },
            }
        };
        if cause == "stop" {
            break;
        }
    }
    watcher.abort();
    notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("agent stopped");
    Ok(())
}

fn log_outcome(out: &crate::node::Outcome) {
    let r = &out.report;
    for notice in &r.notices {
        tracing::warn!(%notice, "notice");
    }
    if let Some(plan_error) = &r.plan_error
        && !r.failed()
    {
        tracing::warn!(
            cause = out.cause,
            plan = out.plan_hash.as_deref().unwrap_or(""),
            changed = r.resources_changed,
            total = r.resources_total,
            %plan_error,
            "plan error: the last good plan was applied (the server has no valid plan for this node)"
        );
    } else if r.succeeded() {
        tracing::info!(
            cause = out.cause,
            plan = out.plan_hash.as_deref().unwrap_or(""),
            online = out.online,
            changed = r.resources_changed,
            total = r.resources_total,
            blobs_fetched = out.fetched.blobs,
            ms = r.duration_ms,
            "converged"
        );
    } else if let Some(error) = crate::output::failed_before_converging(r) {
        tracing::error!(
            cause = out.cause,
            plan = out.plan_hash.as_deref().unwrap_or(""),
            error,
            "run failed before converging (nothing was changed)"
        );
    } else {
        tracing::error!(
            cause = out.cause,
            plan = out.plan_hash.as_deref().unwrap_or(""),
            failed = r.resources_failed,
            error = r.error.as_deref().unwrap_or(""),
            "run failed"
        );
    }
}

/// A second daemon on one node would fight the first: refuse it.
fn one_daemon(config: &Config) -> Result<RunLock, Fatal> {
    crate::remote::ensure_state_dir(&config.state_dir)
        .map_err(|e| Fatal::Setup(format!("{}: {e}", config.state_dir.display())))?;
    RunLock::acquire(&config.state_dir.join("daemon.lock"), Duration::ZERO).map_err(|e| {
        Fatal::Setup(format!(
            "another cm-agent daemon is running on this node ({e})"
        ))
    })
}

/// How often the daemon tells the server it is alive.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(60);
/// A converge that has finished no resource for this long is stuck: the
/// heartbeats stop, so the server calls the node unreachable. Longer than
/// the longest a resource may take (apt, 30 minutes).
const STUCK_AFTER: i64 = 45 * 60;
/// How long one heartbeat may take.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(20);

/// When the converge in progress last moved (unix seconds; 0: idle).
#[derive(Clone, Default)]
pub(crate) struct Busy(Arc<AtomicI64>);

impl Busy {
    fn start(&self) {
        self.0.store(now(), Ordering::Relaxed);
    }

    fn stop(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    fn stuck(&self) -> bool {
        let since = self.0.load(Ordering::Relaxed);
        since != 0 && now() - since > STUCK_AFTER
    }
}

/// The watch stream and the heartbeats, for one certificate.
async fn follow(
    channel: Channel,
    known: watch::Receiver<String>,
    events: mpsc::Sender<Event>,
    busy: Busy,
) {
    tokio::join!(
        watch_loop(channel.clone(), known, events),
        heartbeat_loop(channel, busy)
    );
}

/// Beat every minute while the daemon is not stuck. A server too old to
/// know heartbeats (a replica not yet upgraded) is asked again later.
pub(crate) async fn heartbeat_loop(channel: Channel, busy: Busy) {
    let mut client = AgentClient::new(channel);
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if busy.stuck() {
            tracing::warn!(
                "a converge has made no progress for 45 minutes: not telling the server this node is alive"
            );
            continue;
        }
        let mut beat = tonic::Request::new(Empty {});
        beat.set_timeout(HEARTBEAT_TIMEOUT);
        match client.heartbeat(beat).await {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::Unimplemented => {
                tracing::debug!("the server takes no heartbeats (older than cm-server 0.3.0)");
            }
            Err(s) => tracing::debug!(error = %RemoteError::from(s), "heartbeat not delivered"),
        }
    }
}

/// Follow the watch stream, reconnecting with backoff.
async fn watch_loop(channel: Channel, known: watch::Receiver<String>, events: mpsc::Sender<Event>) {
    let mut client = AgentClient::new(channel);
    let mut backoff = Backoff::new();
    loop {
        let plan_hash = known.borrow().clone();
        match client.watch(WatchRequest { plan_hash }).await {
            Ok(response) => {
                let opened = Instant::now();
                let _ = events.send(Event::Connected).await;
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(ev)) => {
                            backoff.reset();
                            let _ = events
                                .send(Event::PlanChanged {
                                    hash: ev.plan_hash,
                                    reason: ev.reason,
                                })
                                .await;
                        }
                        Ok(None) => break,
                        Err(s) => {
                            tracing::debug!(error = %s.message(), "watch stream ended");
                            break;
                        }
                    }
                }
                // Only a stream that lived a while proves the server is back:
                // one that ends at once must not reconnect in a tight loop.
                if opened.elapsed() > Duration::from_secs(30) {
                    backoff.reset();
                }
            }
            Err(s) => match RemoteError::from(s) {
                RemoteError::Revoked(m) => {
                    let _ = events.send(Event::Revoked(m)).await;
                    return;
                }
                e => tracing::debug!(error = %e, "watch not connected"),
            },
        }
        sleep(backoff.next_delay()).await;
    }
}

/// SIGTERM or SIGINT: the run in hand finishes its resource (STOP), then the daemon exits.
pub(crate) fn stop_signal() -> std::sync::Arc<tokio::sync::Notify> {
    use tokio::signal::unix::{SignalKind, signal};
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    let n = notify.clone();
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stopping after the resource in hand");
        STOP.store(true, Ordering::SeqCst);
        n.notify_waiters();
        n.notify_one();
        // A second signal means now.
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("stopping now");
        std::process::exit(1);
    });
    notify
}

fn notify(state: &[sd_notify::NotifyState]) {
    let _ = sd_notify::notify(state);
}
