//! The live console: `/live?view=…`, a server-sent event stream per open page that sends the
//! page's changed parts as HTML fragments, each carrying `hx-swap-oob` so htmx swaps it in by
//! id. Opening a stream authorizes it like the page it belongs to (a refusal is audited); after
//! that, every change is checked again with the pure authorization function against the
//! viewer's current policies, which the stream reloads whenever access anywhere changes, and the
//! stream ends when its session does.
//!
//! Every stream sends a snapshot of its parts first, so a reconnect (or a change between the
//! page's render and the stream's start) loses nothing; after that only what changed, found by
//! comparing each part with what the stream sent last. Logs go by line number instead (the
//! event id, so `Last-Event-ID` resumes them). The plumbing (one listener per process, caps,
//! shared reads) is `web::live`.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::ConsoleError;
use super::executions::{self as pages, ExecutionParts, Status};
use super::pipelines::StageView;
use crate::access::{Action, Resource};
use crate::db::changes::Change;
use crate::engine::ExecutionStatus;
use crate::ops::auth::ActiveSession;
use crate::ops::executions::{self, StageStateView};
use crate::ops::{Caller, Page, Services, approvals, pipelines};
use crate::pipeline::wire::PipelineDeclaration;
use crate::web::AppState;
use crate::web::auth::{SignedIn, cookie_name};
use crate::web::live::{self, Hub, Refused, lock};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::web::get_only("/live", open));
}

#[derive(Deserialize, Default)]
struct LiveQuery {
    view: Option<String>,
    name: Option<String>,
    id: Option<String>,
    q: Option<String>,
    next: Option<String>,
    status: Option<String>,
    /// The newest execution a history page shows: newer ones are added above it.
    top: Option<String>,
    /// The first log line the page does not show yet.
    from: Option<i32>,
}

/// What a stream shows: the page it belongs to.
enum View {
    /// Only the navigation's count (pages that do not change while shown).
    Nav,
    Pipeline {
        name: String,
        id: Uuid,
        version: i32,
    },
    List {
        names: Vec<String>,
    },
    History {
        name: String,
        id: Uuid,
        status: Option<ExecutionStatus>,
        next: Option<String>,
        /// Rows the page shows (or the stream sent since): others on the first page are new.
        shown: HashSet<String>,
        top: Option<String>,
        /// The page says it has no executions (a row that goes when the first arrives).
        empty: bool,
    },
    Execution {
        name: String,
        id: Uuid,
        execution: Uuid,
    },
    Log {
        name: String,
        id: Uuid,
        attempt: Uuid,
        from: i32,
        /// The last read filled a batch: more lines wait, with no change left to announce them.
        behind: bool,
    },
}

/// One part of a page, rendered for one viewer.
#[derive(Clone)]
struct Part {
    /// The element's id: a part is sent again only when its HTML differs from the last sent.
    key: Arc<str>,
    html: Html,
}

#[derive(Clone)]
enum Html {
    /// Rendered for this viewer alone.
    Own(String),
    /// Rendered once for every viewer with the same permissions, and shared by their streams.
    Shared(Arc<SharedHtml>),
}

/// A part's HTML as every stream that shares it sends it: already framed as an event's `data:`
/// lines and hashed, once. It still holds the CSRF placeholder: the viewer's token is put in only
/// when the part is sent, so an unchanged part costs each stream a comparison, a changed one a
/// copy.
struct SharedHtml {
    framed: String,
    hash: u64,
}

impl Part {
    fn own(key: impl Into<Arc<str>>, html: String) -> Self {
        Part {
            key: key.into(),
            html: Html::Own(html),
        }
    }

    fn shared(key: impl Into<Arc<str>>, html: &str) -> Self {
        let mut framed = String::with_capacity(html.len() + 64);
        live::push_data_lines(&mut framed, html);
        Part {
            key: key.into(),
            html: Html::Shared(Arc::new(SharedHtml {
                hash: hash_of(&framed),
                framed,
            })),
        }
    }
}

fn hash_of(html: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    html.hash(&mut hasher);
    hasher.finish()
}

/// What one refresh produced.
enum Refresh {
    Parts(Vec<Part>),
    /// The view cannot go on (deleted, access gone): say why, and close.
    End(&'static str),
    /// The last parts there will ever be (a finished log): send them, and close.
    Last(Vec<Part>),
}

/// What a stream knows of its viewer.
struct Viewer {
    caller: Caller,
    csrf: String,
    /// The session cookie's token: access changes are checked by resolving it again.
    token: String,
}

async fn open(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: SignedIn,
    query: web::Query<LiveQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let s = &state.services;
    let valid_until = req
        .extensions()
        .get::<Option<ActiveSession>>()
        .and_then(|a| a.as_ref().map(|a| a.valid_until));
    let token = req
        .cookie(cookie_name(&state))
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let last_event_id = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i32>().ok());
    let view = View::open(s, &user.caller, query.into_inner(), last_event_id).await?;
    let slot = state
        .live
        .reserve(user.caller.user_id)
        .map_err(|why| match why {
            Refused::TooManyForProcess => ConsoleError::Throttled {
                retry_after_secs: 10,
            },
            Refused::Closing => ConsoleError::Internal(anyhow::anyhow!("shutting down")),
        })?;
    let viewer = Viewer {
        caller: user.caller,
        csrf: user.csrf_token,
        token,
    };
    let until = valid_until.map(|t| {
        let left = (t - s.clock.now()).max(time::Duration::ZERO);
        Duration::from_secs_f64(left.as_seconds_f64())
    });
    let (tx, rx) = live::queue();
    let hub = state.live.clone();
    let services = s.clone();
    let actor = crate::web::request::actor(&req, &state);
    // On this HTTP worker's own runtime, beside the connection it feeds (the operations'
    // futures are not `Send`).
    actix_web::rt::spawn(run(Stream {
        hub,
        s: services,
        actor,
        viewer,
        view,
        until,
        tx,
        slot,
    }));
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Compression would hold events back in its buffer.
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(live::body(rx)))
}

/// Everything a stream's task holds.
struct Stream {
    hub: Hub,
    s: Services,
    actor: crate::audit::Actor,
    viewer: Viewer,
    view: View,
    /// When its session expires unless used.
    until: Option<Duration>,
    tx: tokio::sync::mpsc::Sender<web::Bytes>,
    slot: live::Slot,
}

/// A stream's life: the snapshot, then a refresh for every change that concerns it, keep-alives
/// in between, until its client goes, its session ends, its access does, or the server stops.
async fn run(stream: Stream) {
    let Stream {
        hub,
        s,
        actor,
        mut viewer,
        mut view,
        until,
        tx,
        slot,
    } = stream;
    let (mut changes, mut closing) = hub.subscribe();
    let _prefetching = view.prefetch(&hub);
    let mut sent: HashMap<Arc<str>, u64> = HashMap::new();
    // A reconnecting browser waits a second, not the default three.
    if tx
        .try_send(web::Bytes::from_static(b"retry: 1000\n\n"))
        .is_err()
    {
        return;
    }
    let mut everything = true;
    let mut count_changed = true;
    let deadline = tokio::time::sleep(until.unwrap_or(Duration::from_secs(86_400 * 365)));
    tokio::pin!(deadline);
    let mut keep_alive = tokio::time::interval(live::KEEP_ALIVE);
    keep_alive.reset();
    loop {
        if everything || count_changed {
            let mut parts = Vec::new();
            if everything {
                if view.shows_status() {
                    parts.push(status_part(true, "Live", false));
                }
                match view.refresh(&hub, &s, &viewer).await {
                    Ok(Refresh::Parts(more)) => parts.extend(more),
                    Ok(Refresh::Last(more)) => {
                        parts.extend(more);
                        finish(
                            &tx,
                            &viewer.csrf,
                            &mut sent,
                            parts,
                            view.event_id().as_deref(),
                        )
                        .await;
                        return;
                    }
                    Ok(Refresh::End(why)) => {
                        end(
                            &tx,
                            &viewer.csrf,
                            &mut sent,
                            parts,
                            why,
                            view.shows_status(),
                        )
                        .await;
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "live view refresh failed");
                        end(
                            &tx,
                            &viewer.csrf,
                            &mut sent,
                            parts,
                            "an error stopped them",
                            view.shows_status(),
                        )
                        .await;
                        return;
                    }
                }
            }
            if count_changed && let Some(part) = count_part(&hub, &s, &viewer).await {
                parts.push(part);
            }
            everything = false;
            count_changed = false;
            let id = view.event_id();
            if !send(&tx, &viewer.csrf, &mut sent, parts, id.as_deref()).await {
                return;
            }
            if view.behind() {
                // The next batch at once (the queue's bound still holds a slow client back).
                everything = true;
                continue;
            }
        }
        tokio::select! {
            biased;
            _ = closing.changed() => return,
            // The client went away (the body, and with it the queue's receiver, was dropped).
            () = tx.closed() => return,
            () = slot.evicted() => {
                end(&tx, &viewer.csrf, &mut sent, Vec::new(), "too many pages of yours are open", view.shows_status()).await;
                return;
            }
            () = &mut deadline => {
                end(&tx, &viewer.csrf, &mut sent, Vec::new(), "your session ended; sign in again", view.shows_status()).await;
                return;
            }
            change = changes.recv() => {
                let mut heard = vec![change];
                // Whatever else arrived meanwhile is handled in the same refresh.
                while let Ok(more) = changes.try_recv() {
                    heard.push(Ok(more));
                }
                for change in heard {
                    match change {
                        Ok(Change::SessionEnded(id)) if viewer.caller.session_id() == Some(id) => {
                            end(&tx, &viewer.csrf, &mut sent, Vec::new(), "your session ended; sign in again", view.shows_status()).await;
                            return;
                        }
                        Ok(Change::Access) => {
                            match crate::ops::auth::resolve_session(&s, &viewer.token, actor.clone()).await {
                                // The refresh that follows ends the stream if they may no
                                // longer see its view.
                                Ok(Some(again)) => {
                                    viewer.caller = again.caller;
                                    everything = true;
                                    count_changed = true;
                                }
                                Ok(_) => {
                                    end(&tx, &viewer.csrf, &mut sent, Vec::new(), "your session ended; sign in again", view.shows_status()).await;
                                    return;
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "live view: cannot check access again");
                                    end(&tx, &viewer.csrf, &mut sent, Vec::new(), "an error stopped them", view.shows_status()).await;
                                    return;
                                }
                            }
                        }
                        Ok(Change::Gates) => count_changed = true,
                        Ok(Change::Resync) | Err(RecvError::Lagged(_)) => {
                            everything = true;
                            count_changed = true;
                        }
                        Ok(change) => everything |= view.concerns(&change),
                        Err(RecvError::Closed) => return,
                    }
                }
            }
            _ = keep_alive.tick() => {
                match tx.try_send(live::keep_alive()) {
                    Ok(()) => {}
                    Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                        // So far behind that its queue is full: drop it.
                        crate::metrics::live_client_dropped();
                        return;
                    }
                    Err(_) => return,
                }
            }
        }
    }
}

/// How long a stream waits for its client to make room in its queue before dropping it.
const SLOW_CLIENT: Duration = Duration::from_secs(10);

/// Sends the parts that differ from what this stream sent last, as one `change` event.
/// `false` when the client is gone or too slow to keep.
async fn send(
    tx: &tokio::sync::mpsc::Sender<web::Bytes>,
    csrf: &str,
    sent: &mut HashMap<Arc<str>, u64>,
    parts: Vec<Part>,
    id: Option<&str>,
) -> bool {
    let mut lines = String::new();
    for part in parts {
        let hash = match &part.html {
            Html::Own(html) => hash_of(html),
            Html::Shared(shared) => shared.hash,
        };
        if part.key.is_empty() || sent.get(&part.key) != Some(&hash) {
            if !part.key.is_empty() {
                sent.insert(part.key, hash);
            }
            match &part.html {
                Html::Own(html) => live::push_data_lines(&mut lines, html),
                Html::Shared(shared) => {
                    // The placeholder and the token hold no line break: replacing one by the
                    // other in framed lines frames the replaced HTML.
                    for (i, piece) in shared.framed.split(CSRF_PLACEHOLDER.as_str()).enumerate() {
                        if i > 0 {
                            lines.push_str(csrf);
                        }
                        lines.push_str(piece);
                    }
                }
            }
        }
    }
    if lines.is_empty() {
        return true;
    }
    match tx
        .send_timeout(live::framed_event("change", id, &lines), SLOW_CLIENT)
        .await
    {
        Ok(()) => {
            crate::metrics::live_event_sent();
            true
        }
        Err(tokio::sync::mpsc::error::SendTimeoutError::Timeout(_)) => {
            tracing::info!("live view: a client too slow to keep up was dropped");
            crate::metrics::live_client_dropped();
            false
        }
        Err(tokio::sync::mpsc::error::SendTimeoutError::Closed(_)) => false,
    }
}

/// The last word of a stream: why it stops, and `close` (the browser does not reconnect).
async fn end(
    tx: &tokio::sync::mpsc::Sender<web::Bytes>,
    csrf: &str,
    sent: &mut HashMap<Arc<str>, u64>,
    mut parts: Vec<Part>,
    why: &str,
    shows_status: bool,
) {
    // A page without a status line gets none (htmx would complain of the missing target).
    parts.retain(|p| &*p.key != "live-status");
    if shows_status {
        parts.push(status_part(
            false,
            &format!("Live updates stopped: {why}."),
            true,
        ));
    }
    finish(tx, csrf, sent, parts, None).await;
}

/// Sends the last parts, then `close`.
async fn finish(
    tx: &tokio::sync::mpsc::Sender<web::Bytes>,
    csrf: &str,
    sent: &mut HashMap<Arc<str>, u64>,
    parts: Vec<Part>,
    id: Option<&str>,
) {
    if send(tx, csrf, sent, parts, id).await {
        let _ = tx.try_send(live::event("close", None, ""));
    }
}

#[derive(Template)]
#[template(path = "live/status.html")]
struct StatusFragment<'a> {
    live: bool,
    text: &'a str,
    reload: bool,
}

fn status_part(live: bool, text: &str, reload: bool) -> Part {
    Part::own(
        "live-status",
        StatusFragment { live, text, reload }
            .render()
            .unwrap_or_default(),
    )
}

#[derive(Template)]
#[template(path = "live/count.html")]
struct CountFragment {
    count: usize,
}

/// The navigation's count of approvals waiting for the viewer (read once per user and change).
async fn count_part(hub: &Hub, s: &Services, viewer: &Viewer) -> Option<Part> {
    let count = hub
        .shared(format!("count:{}", viewer.caller.user_id), || {
            approvals::inbox_count(s, &viewer.caller)
        })
        .await
        .ok()?;
    Some(Part::own(
        "nav-approvals-count",
        CountFragment { count: *count }.render().ok()?,
    ))
}

/// A table's row or cell, wrapped in a `<template>`: parsed alone, outside its table, the
/// browser would drop it (htmx swaps what a template holds by id all the same).
fn table_part(key: String, html: String) -> Part {
    Part::own(key, format!("<template>{html}</template>"))
}

fn render(template: &impl Template) -> Result<String, ConsoleError> {
    template
        .render()
        .map_err(|e| ConsoleError::Internal(anyhow::Error::new(e).context("rendering a part")))
}

/// Reads shared by every stream of a view are the engine's (each stream has authorized its
/// viewer and checks again before showing anything).
static READER: std::sync::LazyLock<Caller> =
    std::sync::LazyLock::new(|| Caller::engine("live view"));

#[derive(Template)]
#[template(path = "pipelines/stage_panel.html")]
struct StagePanel<'a> {
    stage: &'a StageView,
    link: &'a str,
    csrf: &'a str,
    shows_state: bool,
}

#[derive(Template)]
#[template(path = "pipelines/stage_transition.html")]
struct StageTransition<'a> {
    stage: &'a StageView,
    link: &'a str,
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "pipelines/latest_cell.html")]
struct LatestFragment<'a> {
    cell: &'a pages::LatestCell,
}

#[derive(Template)]
#[template(path = "live/history_rows.html")]
struct HistoryRows<'a> {
    link: &'a str,
    /// Rows to add above the newest shown (newest first).
    new: Vec<&'a pages::HistoryRow>,
    /// The page's "No executions yet" row is there, to go.
    empty: bool,
}

#[derive(Template)]
#[template(path = "pipelines/history_row.html")]
struct HistoryRowFragment<'a> {
    link: &'a str,
    r: &'a pages::HistoryRow,
    oob: bool,
}

macro_rules! execution_part {
    ($name:ident, $path:literal) => {
        #[derive(Template)]
        #[template(path = $path)]
        struct $name<'a> {
            parts: &'a ExecutionParts,
            oob: bool,
        }
    };
}
execution_part!(ExecutionStatusPart, "pipelines/execution_status.html");
execution_part!(ExecutionAttemptsPart, "pipelines/execution_attempts.html");
execution_part!(ExecutionArtifactsPart, "pipelines/execution_artifacts.html");
execution_part!(ExecutionStopPart, "pipelines/execution_stop.html");
execution_part!(ExecutionTimelinePart, "pipelines/execution_timeline.html");

#[derive(Template)]
#[template(path = "live/log_lines.html")]
struct LogLines {
    lines: Vec<pages::LogLine>,
    /// The attempt ended: its status for the heading, and the running indicator goes.
    ended: Option<(Status, String)>,
}

/// Lines sent per event at most (a log catching up sends several events).
const LOG_BATCH: i64 = 500;

impl View {
    /// The view a query names, authorized as the page it belongs to (a refusal is audited).
    async fn open(
        s: &Services,
        caller: &Caller,
        q: LiveQuery,
        last_event_id: Option<i32>,
    ) -> Result<View, ConsoleError> {
        let name = || q.name.clone().unwrap_or_default();
        let stored = async |name: &str| -> Result<(Uuid, String), ConsoleError> {
            pipelines::id_of(s, name)
                .await?
                .ok_or_else(|| ConsoleError::NotFoundWith(format!("No pipeline is named {name}.")))
        };
        let uuid = |text: Option<&String>| {
            text.and_then(|t| Uuid::parse_str(t).ok()).ok_or_else(|| {
                ConsoleError::BadRequest("id must be an execution or attempt id".into())
            })
        };
        Ok(match q.view.as_deref().unwrap_or("nav") {
            "nav" => View::Nav,
            "pipeline" => {
                let (row, _) = executions::get_pipeline_state(s, caller, &name()).await?;
                View::Pipeline {
                    name: row.name,
                    id: row.id,
                    version: row.current_version,
                }
            }
            "list" => {
                let q_text = q.q.unwrap_or_default();
                let q_text = q_text.trim();
                let page = pipelines::search_pipelines(
                    s,
                    caller,
                    Some(q_text).filter(|t| !t.is_empty()),
                    &Page {
                        next: q.next.clone(),
                        max: Some(100),
                    },
                )
                .await?;
                View::List {
                    names: page.items.into_iter().map(|p| p.name).collect(),
                }
            }
            "history" => {
                let status = pages::history_status(q.status.as_deref())?;
                // The history page's own permission (a refusal is audited).
                crate::ops::require(
                    s,
                    caller,
                    Action::ListPipelineExecutions,
                    &Resource::pipeline(&name()),
                    serde_json::json!({"page": "live history", "pipelineName": name()}),
                )
                .await?;
                let (id, name) = stored(&name()).await?;
                View::History {
                    name,
                    id,
                    status,
                    next: q.next.clone(),
                    shown: HashSet::new(),
                    empty: q.top.is_none() && q.next.is_none(),
                    top: q.top.clone(),
                }
            }
            "execution" => {
                let execution = uuid(q.id.as_ref())?;
                executions::get_pipeline_execution(s, caller, &name(), execution).await?;
                let (id, name) = stored(&name()).await?;
                View::Execution {
                    name,
                    id,
                    execution,
                }
            }
            "log" => {
                let attempt = uuid(q.id.as_ref())?;
                executions::action_log(s, caller, &name(), attempt, 1, 1).await?;
                let (id, name) = stored(&name()).await?;
                let from = last_event_id
                    .map(|n| n.saturating_add(1))
                    .or(q.from)
                    .unwrap_or(1)
                    .max(1);
                View::Log {
                    name,
                    id,
                    attempt,
                    from,
                    behind: false,
                }
            }
            _ => return Err(ConsoleError::BadRequest("unknown live view".into())),
        })
    }

    /// Whether its page has a `#live-status` (every live page does; the navigation is not one).
    fn shows_status(&self) -> bool {
        !matches!(self, View::Nav)
    }

    /// Whether the viewer may still see this view (pure: their current policies).
    fn allowed(&self, caller: &Caller) -> bool {
        match self {
            View::Nav => true,
            View::Pipeline { name, .. } => {
                caller.can(Action::GetPipelineState, &Resource::pipeline(name))
            }
            View::List { .. } => caller.can(Action::ListPipelines, &Resource::All),
            View::History { name, .. } => {
                caller.can(Action::ListPipelineExecutions, &Resource::pipeline(name))
            }
            View::Execution { name, .. } => {
                caller.can(Action::GetPipelineExecution, &Resource::pipeline(name))
            }
            View::Log { name, .. } => {
                caller.can(Action::ListActionExecutions, &Resource::pipeline(name))
            }
        }
    }

    fn concerns(&self, change: &Change) -> bool {
        match (self, change) {
            (View::Nav, _) => false,
            (View::List { .. }, Change::Pipeline(_)) => true,
            (
                View::Pipeline { id, .. }
                | View::History { id, .. }
                | View::Execution { id, .. }
                | View::Log { id, .. },
                Change::Pipeline(changed),
            ) => id == changed,
            (View::Log { attempt, .. }, Change::Log(changed)) => attempt == changed,
            _ => false,
        }
    }

    /// What the listener reads for this view before telling its streams of a change, for as
    /// long as the returned guard is held: the data every viewer of a pipeline shares.
    fn prefetch(&self, hub: &Hub) -> Option<live::Prefetching> {
        let View::Pipeline { name, id, .. } = self else {
            return None;
        };
        let name = name.clone();
        Some(
            hub.prefetch(pipeline_key(*id), Change::Pipeline(*id), move |s| {
                let name = name.clone();
                async move { pipeline_data(&s, &name).await }
            }),
        )
    }

    /// Whether the view has more to send at once (a log catching up, batch after batch).
    fn behind(&self) -> bool {
        matches!(self, View::Log { behind: true, .. })
    }

    /// The id of the stream's last event, where resuming needs one (a log: its last line).
    fn event_id(&self) -> Option<String> {
        match self {
            View::Log { from, .. } if *from > 1 => Some((from - 1).to_string()),
            _ => None,
        }
    }

    /// The view's parts as they are now, for this viewer.
    async fn refresh(
        &mut self,
        hub: &Hub,
        s: &Services,
        viewer: &Viewer,
    ) -> Result<Refresh, ConsoleError> {
        if !self.allowed(&viewer.caller) {
            return Ok(Refresh::End("you may no longer see this"));
        }
        match self {
            View::Nav => Ok(Refresh::Parts(Vec::new())),
            View::Pipeline { name, id, version } => {
                let read = hub
                    .shared(pipeline_key(*id), || pipeline_data(s, name))
                    .await;
                let Ok(read) = read else {
                    return Ok(Refresh::End("the pipeline was deleted"));
                };
                let (decl, current, stages, _) = &*read;
                if current != version {
                    return Ok(Refresh::Parts(vec![status_part(
                        false,
                        "A new version of this pipeline was saved.",
                        true,
                    )]));
                }
                // Parts rendered from this very read, so never from an older one.
                let rendered = &read.3;
                let shared = lock(rendered).for_viewer(&viewer.caller);
                let parts = match shared {
                    Some(parts) => parts,
                    None => {
                        // The first viewer with these permissions renders for all of them,
                        // noting which questions the parts depended on.
                        let asked = std::cell::RefCell::new(Vec::new());
                        let can = |a: Action, r: &Resource| {
                            let ok = viewer.caller.can(a, r);
                            asked.borrow_mut().push((a, r.clone(), ok));
                            ok
                        };
                        let states = pages::stage_states(&can, name, stages.clone());
                        let parts = Arc::new(pipeline_parts(decl, states, name)?);
                        lock(rendered).keep(asked.into_inner(), parts.clone());
                        parts
                    }
                };
                Ok(Refresh::Parts(parts.iter().cloned().collect()))
            }
            View::List { names } => {
                let key = {
                    let mut hasher = std::collections::hash_map::DefaultHasher::new();
                    names.hash(&mut hasher);
                    format!("list:{:x}", hasher.finish())
                };
                let latest = hub
                    .shared(key, || executions::latest_executions(s, &READER, names))
                    .await?;
                let mut parts = Vec::new();
                for name in names.iter() {
                    let cell = pages::latest_cell(&viewer.caller, name, latest.get(name), true);
                    parts.push(table_part(
                        cell.id.clone(),
                        render(&LatestFragment { cell: &cell })?,
                    ));
                }
                Ok(Refresh::Parts(parts))
            }
            View::History {
                name,
                id,
                status,
                next,
                shown,
                top,
                empty,
            } => {
                let key = format!(
                    "history:{id}:{}:{}",
                    status.map(|s| s.as_str()).unwrap_or(""),
                    next.as_deref().unwrap_or("")
                );
                let wanted = Page {
                    next: next.clone(),
                    max: Some(50),
                };
                let page = hub
                    .shared(key, || {
                        executions::list_pipeline_executions(
                            s, &READER, name, None, *status, &wanted,
                        )
                    })
                    .await;
                let Ok(page) = page else {
                    return Ok(Refresh::End("the pipeline was deleted"));
                };
                let link = super::segment(name);
                let rows: Vec<pages::HistoryRow> =
                    page.items.iter().map(pages::history_row).collect();
                // Rows above the newest the page showed are new (only the first page grows).
                let first_new = match top.as_deref() {
                    _ if next.is_some() => 0,
                    Some(top) => rows.iter().position(|r| r.id == top).unwrap_or(0),
                    None => rows.len(),
                };
                let mut new = Vec::new();
                let mut parts = Vec::new();
                for (i, r) in rows.iter().enumerate() {
                    if i < first_new && !shown.contains(&r.id) {
                        new.push(r);
                    } else {
                        parts.push(table_part(
                            format!("execution-{}", r.id),
                            render(&HistoryRowFragment {
                                link: &link,
                                r,
                                oob: true,
                            })?,
                        ));
                    }
                }
                if !new.is_empty() {
                    for r in &new {
                        shown.insert(r.id.clone());
                    }
                    // Sent once; later changes to these rows go by id like the others.
                    parts.insert(
                        0,
                        table_part(
                            String::new(),
                            render(&HistoryRows {
                                link: &link,
                                new,
                                empty: std::mem::take(empty),
                            })?,
                        ),
                    );
                }
                Ok(Refresh::Parts(parts))
            }
            View::Execution {
                name, execution, ..
            } => {
                let read = hub
                    .shared(format!("execution:{execution}"), || {
                        pages::execution_data(s, &READER, name, *execution)
                    })
                    .await;
                let Ok(read) = read else {
                    return Ok(Refresh::End("the execution is gone"));
                };
                let (e, attempts) = &*read;
                let parts = pages::execution_parts(
                    &viewer.caller,
                    &viewer.csrf,
                    name,
                    e,
                    attempts,
                    s.clock.now(),
                );
                let oob = true;
                let part = |key: &str, html| Part::own(key, html);
                Ok(Refresh::Parts(vec![
                    part(
                        "execution-status",
                        render(&ExecutionStatusPart { parts: &parts, oob })?,
                    ),
                    part(
                        "execution-attempts",
                        render(&ExecutionAttemptsPart { parts: &parts, oob })?,
                    ),
                    part(
                        "execution-artifacts",
                        render(&ExecutionArtifactsPart { parts: &parts, oob })?,
                    ),
                    part(
                        "execution-timeline",
                        render(&ExecutionTimelinePart { parts: &parts, oob })?,
                    ),
                    part(
                        "execution-stop",
                        render(&ExecutionStopPart { parts: &parts, oob })?,
                    ),
                ]))
            }
            View::Log {
                name,
                attempt,
                from,
                behind,
                ..
            } => {
                let page =
                    executions::action_log(s, &viewer.caller, name, *attempt, *from, LOG_BATCH)
                        .await?;
                if let Some(last) = page.lines.last() {
                    *from = last.line + 1;
                }
                *behind = i64::try_from(page.lines.len()).unwrap_or(0) >= LOG_BATCH;
                let ended = page.complete.then(|| {
                    (
                        Status::of(&page.attempt.status),
                        crate::providers::log::without_tail(
                            page.attempt.summary.as_deref().unwrap_or_default(),
                        )
                        .to_string(),
                    )
                });
                let done = ended.is_some();
                let mut parts = vec![Part::own(
                    "",
                    render(&LogLines {
                        lines: page
                            .lines
                            .iter()
                            .map(|l| pages::log_line(l.line, &l.text))
                            .collect(),
                        ended,
                    })?,
                )];
                if done {
                    // Everything is said: the stream sends it, then closes.
                    parts.push(status_part(false, "Complete.", false));
                    return Ok(Refresh::Last(parts));
                }
                Ok(Refresh::Parts(parts))
            }
        }
    }
}

/// The pipeline view's parts, rendered once per set of answers to the permission questions
/// they depend on (with a placeholder where each viewer's CSRF token goes) and shared by every
/// stream whose viewer answers the same: 200 viewers of one pipeline cost a few renders.
#[derive(Default)]
struct Rendered {
    /// The questions the parts asked (the same for everyone: they depend on the data only).
    questions: Option<Vec<(Action, Resource)>>,
    by_answers: HashMap<Vec<bool>, Arc<Vec<Part>>>,
}

impl Rendered {
    fn for_viewer(&self, caller: &Caller) -> Option<Arc<Vec<Part>>> {
        let answers: Vec<bool> = self
            .questions
            .as_ref()?
            .iter()
            .map(|(a, r)| caller.can(*a, r))
            .collect();
        self.by_answers.get(&answers).cloned()
    }

    fn keep(&mut self, asked: Vec<(Action, Resource, bool)>, parts: Arc<Vec<Part>>) {
        let answers = asked.iter().map(|(_, _, ok)| *ok).collect();
        self.questions
            .get_or_insert_with(|| asked.into_iter().map(|(a, r, _)| (a, r)).collect());
        self.by_answers.insert(answers, parts);
    }
}

/// Stands for a viewer's CSRF token in shared parts: random per process, so no text a build or
/// a user writes can contain it.
static CSRF_PLACEHOLDER: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("csrf-{}", Uuid::new_v4().simple()));

/// The pipeline view's parts for one set of permissions.
fn pipeline_parts(
    decl: &PipelineDeclaration,
    states: Vec<(String, pages::StageState)>,
    name: &str,
) -> Result<Vec<Part>, ConsoleError> {
    let mut views = super::pipelines::stage_views(decl, Some(states));
    let link = super::segment(name);
    let csrf = CSRF_PLACEHOLDER.as_str();
    let mut parts = Vec::new();
    for stage in &mut views {
        stage.oob = true;
        if stage.index > 1 {
            let html = render(&StageTransition {
                stage,
                link: &link,
                csrf,
            })?;
            parts.push(Part::shared(format!("transition-{}", stage.index), &html));
        }
        let html = render(&StagePanel {
            stage,
            link: &link,
            csrf,
            shows_state: true,
        })?;
        parts.push(Part::shared(format!("stage-{}", stage.index), &html));
    }
    Ok(parts)
}

/// A pipeline's declaration, version and state as read once, with the parts rendered from them.
type PipelineData = (
    Arc<PipelineDeclaration>,
    i32,
    Vec<StageStateView>,
    std::sync::Mutex<Rendered>,
);

fn pipeline_key(id: Uuid) -> String {
    format!("pipeline:{id}")
}

/// A pipeline's current declaration and state, read once for every stream showing it.
async fn pipeline_data(s: &Services, name: &str) -> Result<PipelineData, ConsoleError> {
    // One transaction; the declaration as it may be shown (secrets masked).
    let (row, decl, stages) =
        executions::get_pipeline_state_with_declaration(s, &READER, name).await?;
    Ok((decl, row.current_version, stages, Default::default()))
}
