//! Executions in the console: Release change (with start-time variables), the execution history
//! (keyset paged), an execution's page (its stages and action attempts, Stop), an attempt's log
//! (lines appended while it runs), and the pipeline view's buttons: Retry a stage, enable or
//! disable a transition. Everything goes through `ops::executions`; every POST carries the CSRF
//! token, and every button shows only to those allowed to press it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    ConsoleError, Layout, Section, console_page, display_time, render_with_status, see_other,
    segment,
};
use crate::access::{Action, Resource};
use crate::error::AppError;
use crate::ops::executions::{self, ExecutionView};
use crate::ops::{Caller, Page, pipelines};
use crate::web::AppState;
use crate::web::auth::{CsrfForm, SignedIn};
use crate::web::htmx::HxRequest;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/pipelines/{name}/release")
            .route(web::get().to(release_form))
            .route(web::post().to(release))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(crate::web::get_only(
        "/pipelines/{name}/executions",
        history,
    ))
    .service(crate::web::get_only(
        "/pipelines/{name}/executions/{id}",
        detail,
    ))
    .route(
        "/pipelines/{name}/executions/{id}/stop",
        web::post().to(stop),
    )
    .route(
        "/pipelines/{name}/stages/{stage}/retry",
        web::post().to(retry),
    )
    .route(
        "/pipelines/{name}/stages/{stage}/transition",
        web::post().to(transition),
    )
    .route(
        "/pipelines/{name}/stages/{stage}/rollback",
        web::post().to(rollback),
    )
    .service(crate::web::get_only(
        "/pipelines/{name}/executions/{id}/artifacts/{artifact}",
        download,
    ))
    .service(crate::web::get_only(
        "/pipelines/{name}/actions/{id}/log",
        log_page,
    ))
    .service(crate::web::get_only(
        "/pipelines/{name}/actions/{id}/log.txt",
        log_download,
    ));
}

/// A status as the console shows it: its words and the class that colours it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub label: String,
    pub class: &'static str,
}

impl Status {
    pub fn of(status: &str) -> Status {
        let class = match status {
            "Succeeded" => "status-succeeded",
            "Failed" => "status-failed",
            "InProgress" | "Stopping" => "status-inprogress",
            "Stopped" | "Cancelled" | "Abandoned" => "status-stopped",
            "Superseded" => "status-superseded",
            _ => "status-none",
        };
        let label = match status {
            "InProgress" => "In progress".to_string(),
            "" => "Didn't run".to_string(),
            other => other.to_string(),
        };
        Status { label, class }
    }

    pub fn none() -> Status {
        Status::of("")
    }
}

fn short(id: &Uuid) -> String {
    id.simple().to_string()[..8].to_string()
}

fn duration(from: OffsetDateTime, to: OffsetDateTime) -> String {
    let secs = (to - from).whole_seconds().max(0);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

fn execution_id(text: &str) -> Result<Uuid, ConsoleError> {
    Uuid::parse_str(text).map_err(|_| ConsoleError::NotFound)
}

// ---- Release change ---------------------------------------------------------------------------

struct VariableField {
    name: String,
    value: String,
    description: String,
    required: bool,
}

#[derive(Template)]
#[template(path = "pipelines/release.html", blocks = ["content"])]
struct ReleasePage {
    layout: Layout,
    name: String,
    link: String,
    variables: Vec<VariableField>,
    error: Option<String>,
}
console_page!(ReleasePage);

/// The form's fields: each declared variable, with what was typed or its default.
async fn release_fields(
    state: &AppState,
    caller: &Caller,
    name: &str,
    typed: &[(String, String)],
) -> Result<(String, Vec<VariableField>), ConsoleError> {
    let (decl, _) = pipelines::get_pipeline_shared(&state.services, caller, name, None).await?;
    let fields = decl
        .variables
        .iter()
        .flatten()
        .map(|v| VariableField {
            value: typed
                .iter()
                .find(|(n, _)| *n == v.name)
                .map(|(_, value)| value.clone())
                .or_else(|| v.default_value.clone())
                .unwrap_or_default(),
            required: v.default_value.is_none(),
            description: v.description.clone().unwrap_or_default(),
            name: v.name.clone(),
        })
        .collect();
    Ok((decl.name.clone(), fields))
}

async fn release_form(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    super::require(
        &state,
        &user,
        Action::StartPipelineExecution,
        &Resource::pipeline(&path),
    )
    .await?;
    let (name, variables) = release_fields(&state, &user.caller, &path, &[]).await?;
    let page = ReleasePage {
        layout: Layout::signed_in(&user, Section::Pipelines),
        link: segment(&name),
        name,
        variables,
        error: None,
    };
    render_with_status(hx, &page, StatusCode::OK)
}

/// The release form: `var.<name>` fields (a browser sends every field, so an empty one means
/// "use the default" only when the variable has one).
#[derive(Deserialize)]
struct ReleaseForm {
    #[serde(flatten)]
    fields: std::collections::BTreeMap<String, String>,
}

async fn release(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<ReleaseForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let user = &form.user;
    let typed: Vec<(String, String)> = form
        .form
        .fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("var.")?.to_string(), v.clone())))
        .collect();
    // A variable left empty takes its default; one without a default must be given.
    let given: Vec<(String, String)> = typed
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .cloned()
        .collect();
    let request = executions::StartRequest {
        variables: given,
        ..Default::default()
    };
    match executions::start_pipeline_execution(&state.services, &user.caller, &path, request).await
    {
        Ok(id) => Ok(see_other(&format!(
            "/pipelines/{}/executions/{id}?done=started",
            segment(&path)
        ))),
        Err(AppError::Validation { message, .. }) => {
            let (name, variables) = release_fields(&state, &user.caller, &path, &typed).await?;
            let page = ReleasePage {
                layout: Layout::signed_in(user, Section::Pipelines),
                link: segment(&name),
                name,
                variables,
                error: Some(message),
            };
            render_with_status(hx, &page, StatusCode::BAD_REQUEST)
        }
        Err(other) => Err(other.into()),
    }
}

// ---- History ----------------------------------------------------------------------------------

pub(super) struct HistoryRow {
    pub id: String,
    pub short_id: String,
    pub status: Status,
    pub revision: Option<(String, String)>,
    pub trigger: String,
    pub started: String,
    pub duration: String,
}

/// One row of the history.
pub(super) fn history_row(e: &ExecutionView) -> HistoryRow {
    HistoryRow {
        id: e.id.to_string(),
        short_id: short(&e.id),
        status: Status::of(&e.status),
        revision: revision_of(e),
        trigger: trigger_text(e),
        started: display_time(e.started),
        duration: duration(e.started, e.updated),
    }
}

/// The history's status filter from its query: none, or one of [`HISTORY_FILTERS`].
pub(super) fn history_status(
    text: Option<&str>,
) -> Result<Option<crate::engine::ExecutionStatus>, ConsoleError> {
    match text.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(text) => Ok(Some(
            crate::engine::ExecutionStatus::parse(text)
                .filter(|_| HISTORY_FILTERS.iter().any(|(s, _)| *s == text))
                .ok_or_else(|| {
                    AppError::validation(
                        "status",
                        "must be InProgress, Succeeded, Failed, Stopped or Superseded",
                    )
                })?,
        )),
    }
}

/// The pipelines list's "Latest execution" cell of one pipeline.
pub(super) struct LatestCell {
    /// Its element id (`latest-` and the name in hex: any pipeline name makes a valid id).
    pub id: String,
    pub link: String,
    /// The newest execution: its id, short id, status and when it last changed.
    pub latest: Option<(String, String, Status, String)>,
    /// Whether the viewer may see it at all.
    pub visible: bool,
    pub oob: bool,
}

pub(super) fn latest_cell(
    caller: &Caller,
    name: &str,
    latest: Option<&ExecutionView>,
    oob: bool,
) -> LatestCell {
    let visible = caller.can(Action::ListPipelineExecutions, &Resource::pipeline(name));
    LatestCell {
        id: format!(
            "latest-{}",
            name.bytes().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        link: segment(name),
        latest: latest.filter(|_| visible).map(|e| {
            (
                e.id.to_string(),
                short(&e.id),
                Status::of(&e.status),
                display_time(e.updated),
            )
        }),
        visible,
        oob,
    }
}

#[derive(Template)]
#[template(path = "pipelines/history.html", blocks = ["content"])]
struct HistoryPage {
    layout: Layout,
    name: String,
    link: String,
    rows: Vec<HistoryRow>,
    next_link: Option<String>,
    can_release: bool,
    /// The status filters: (link, label, chosen).
    filters: Vec<(String, String, bool)>,
    filtered: bool,
}
console_page!(HistoryPage);

#[derive(Deserialize)]
struct HistoryQuery {
    next: Option<String>,
    /// Only executions with this status (CodePipeline's spelling).
    status: Option<String>,
}

/// The statuses the history filters by, in words.
const HISTORY_FILTERS: [(&str, &str); 5] = [
    ("InProgress", "In progress"),
    ("Succeeded", "Succeeded"),
    ("Failed", "Failed"),
    ("Stopped", "Stopped"),
    ("Superseded", "Superseded"),
];

fn trigger_text(e: &ExecutionView) -> String {
    let who = e
        .trigger
        .detail
        .rsplit('/')
        .next()
        .unwrap_or(&e.trigger.detail);
    match e.trigger.trigger_type {
        "CreatePipeline" => format!("Pipeline created by {who}"),
        "Webhook" | "WebhookV2" => format!("Push webhook: {}", e.trigger.detail),
        "PollForSourceChanges" => format!("Polling: {}", e.trigger.detail),
        "ManualRollback" => format!("Rollback by {who}"),
        "PutActionRevision" => format!("Upload: {}", e.trigger.detail),
        "AutomatedRollback" => format!("Automatic rollback: {}", e.trigger.detail),
        _ => format!("Released by {who}"),
    }
}

fn revision_of(e: &ExecutionView) -> Option<(String, String)> {
    e.source_revisions.first().map(|r| {
        (
            r.revision_id.chars().take(8).collect(),
            r.revision_summary
                .as_deref()
                .and_then(|s| s.lines().next())
                .unwrap_or_default()
                .to_string(),
        )
    })
}

async fn history(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let status = history_status(query.status.as_deref())?;
    let page = executions::list_pipeline_executions(
        &state.services,
        &user.caller,
        &path,
        None,
        status,
        &Page {
            next: query.next.clone(),
            max: Some(50),
        },
    )
    .await?;
    let link = segment(&path);
    let status_param = status
        .map(|s| format!("&status={}", s.as_str()))
        .unwrap_or_default();
    let rows: Vec<HistoryRow> = page.items.iter().map(history_row).collect();
    let mut live = format!("/live?view=history&name={link}{status_param}");
    if let Some(next) = &query.next {
        live.push_str(&format!("&next={}", segment(next)));
    }
    if let Some(top) = rows.first() {
        live.push_str(&format!("&top={}", top.id));
    }
    let page = HistoryPage {
        layout: Layout::signed_in(&user, Section::Pipelines).live(live),
        next_link: page.next.map(|n| {
            format!(
                "/pipelines/{link}/executions?next={}{status_param}",
                segment(&n)
            )
        }),
        filters: HISTORY_FILTERS
            .iter()
            .map(|(value, label)| {
                (
                    format!("/pipelines/{link}/executions?status={value}"),
                    label.to_string(),
                    status.map(|s| s.as_str()) == Some(*value),
                )
            })
            .collect(),
        filtered: status.is_some(),
        can_release: user
            .caller
            .can(Action::StartPipelineExecution, &Resource::pipeline(&path)),
        name: path.into_inner(),
        link,
        rows,
    };
    render_with_status(hx, &page, StatusCode::OK)
}

// ---- One execution ----------------------------------------------------------------------------

pub(super) struct AttemptRow {
    pub stage: String,
    pub action: String,
    pub attempt: i32,
    pub status: Status,
    pub summary: String,
    pub started: String,
    pub duration: String,
    /// None for an approval (it runs nothing, so it has no log).
    pub log_link: Option<String>,
    /// An approval's answers: each in words (who, what, when, from where, the comment).
    pub decisions: Vec<String>,
    /// A waiting approval's review.
    pub review_link: Option<String>,
}

/// The parts of an execution's page that change while it runs (its live stream sends them).
pub(super) struct ExecutionParts {
    pub id: String,
    pub link: String,
    pub status: Status,
    pub version: i32,
    pub trigger: String,
    pub started: String,
    pub duration: String,
    pub stop_reason: Option<String>,
    pub attempts: Vec<AttemptRow>,
    /// Artifacts the execution produced: name, link, who made it.
    pub artifacts: Vec<(String, String, String)>,
    pub timeline: super::timeline::Timeline,
    /// Each succeeded attempt's output variables: (stage › action, name, value).
    pub outputs: Vec<(String, String, String)>,
    pub can_stop: bool,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "pipelines/execution.html", blocks = ["content"])]
struct ExecutionPage {
    layout: Layout,
    name: String,
    link: String,
    id: String,
    parts: ExecutionParts,
    variables: Vec<(String, String)>,
    revisions: Vec<(String, String, String)>,
    artifacts_expired: Option<String>,
    notice: Option<String>,
    /// Stages this execution succeeded in that the viewer may roll back to it: (name, link).
    rollbacks: Vec<(String, String)>,
    /// The execution a ROLLBACK execution went back to.
    rollback_target: Option<String>,
    csrf: String,
}
console_page!(ExecutionPage);

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn detail(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<(String, String)>,
    query: web::Query<DoneQuery>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let (name, id) = path.into_inner();
    let id = execution_id(&id)?;
    let (e, attempts) = execution_data(&state.services, &user.caller, &name, id).await?;
    let link = segment(&name);
    let page = ExecutionPage {
        layout: Layout::signed_in(&user, Section::Pipelines)
            .live(format!("/live?view=execution&name={link}&id={}", e.id)),
        id: e.id.to_string(),
        variables: e.variables.clone(),
        revisions: e
            .source_revisions
            .iter()
            .map(|r| {
                (
                    r.action_name.clone(),
                    r.revision_id.clone(),
                    r.revision_summary
                        .as_deref()
                        .and_then(|s| s.lines().next())
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect(),
        artifacts_expired: e.artifacts_expired.map(display_time),
        notice: match query.done.as_deref() {
            Some("started") => Some("The execution started.".to_string()),
            Some("stopping") => Some("The execution is stopping.".to_string()),
            Some("rolling-back") => Some(
                "This execution rolls the stage back with the artifacts and variables of the one it goes back to.".to_string(),
            ),
            _ => None,
        },
        rollbacks: rollback_stages(&user.caller, &name, &e, &attempts),
        rollback_target: e.rollback_target.map(|t| t.to_string()),
        csrf: user.csrf_token.clone(),
        parts: execution_parts(
            &user.caller,
            &user.csrf_token,
            &name,
            &e,
            &attempts,
            state.services.clock.now(),
        ),
        link,
        name,
    };
    render_with_status(hx, &page, StatusCode::OK)
}

/// The stages (not the first) in which every action's last attempt of this STANDARD execution
/// succeeded, and which the caller may roll back: where "Roll back to this execution" is
/// offered. The operation checks the rest (the pipeline's version, the stage not running).
fn rollback_stages(
    caller: &Caller,
    name: &str,
    e: &ExecutionView,
    attempts: &[executions::AttemptView],
) -> Vec<(String, String)> {
    if e.rollback_target.is_some() || e.status == "InProgress" {
        return Vec::new();
    }
    let mut stages: Vec<String> = Vec::new();
    for a in attempts {
        if !stages.contains(&a.stage_name) && a.action.action_type_id.category != "Source" {
            stages.push(a.stage_name.clone());
        }
    }
    stages
        .into_iter()
        .filter(|stage| {
            let mut last: std::collections::HashMap<&str, &executions::AttemptView> =
                std::collections::HashMap::new();
            for a in attempts.iter().filter(|a| &a.stage_name == stage) {
                let kept = last.entry(a.action_name.as_str()).or_insert(a);
                if a.attempt > kept.attempt {
                    *kept = a;
                }
            }
            !last.is_empty() && last.values().all(|a| a.status == "Succeeded")
        })
        .filter(|stage| caller.can(Action::RollbackStage, &Resource::stage(name, stage)))
        .map(|stage| {
            let link = segment(&stage);
            (stage, link)
        })
        .collect()
}

/// An execution and its attempts (oldest first), as `caller` may read them.
pub(super) async fn execution_data(
    s: &crate::ops::Services,
    caller: &Caller,
    name: &str,
    id: Uuid,
) -> Result<(ExecutionView, Vec<executions::AttemptView>), ConsoleError> {
    let e = executions::get_pipeline_execution(s, caller, name, id).await?;
    let mut attempts = Vec::new();
    if caller.can(Action::ListActionExecutions, &Resource::pipeline(name)) {
        let mut next = None;
        // An execution's attempts, at most a few pages of them.
        for _ in 0..10 {
            let page = executions::list_action_executions(
                s,
                caller,
                name,
                &executions::AttemptFilter {
                    execution_id: Some(id),
                },
                &Page {
                    next: next.take(),
                    max: Some(1000),
                },
            )
            .await?;
            attempts.extend(page.items);
            match page.next {
                Some(n) => next = Some(n),
                None => break,
            }
        }
    }
    // Oldest first reads as the run went.
    attempts.reverse();
    Ok((e, attempts))
}

/// What `caller` sees of an execution's changing parts: pure, so a live stream applies it to
/// data read once for all its viewers.
pub(super) fn execution_parts(
    caller: &Caller,
    csrf: &str,
    name: &str,
    e: &ExecutionView,
    attempts: &[executions::AttemptView],
    now: OffsetDateTime,
) -> ExecutionParts {
    let link = segment(name);
    let running = matches!(e.status.as_str(), "InProgress" | "Stopping");
    let spans: Vec<super::timeline::Span> = attempts
        .iter()
        .map(|a| super::timeline::Span {
            stage: &a.stage_name,
            action: &a.action_name,
            attempt: a.attempt,
            class: Status::of(&a.status).class,
            queued: a.started,
            claimed: a.claimed,
            ended: (a.status != "InProgress").then_some(a.updated),
            approval: a.approval.is_some(),
        })
        .collect();
    let timeline = super::timeline::lay_out(
        e.started,
        if running {
            now.max(e.updated)
        } else {
            e.updated
        },
        &spans,
    );
    let mut artifacts: Vec<(String, String, String)> = Vec::new();
    for a in attempts
        .iter()
        .filter(|a| a.status == "Succeeded" && e.artifacts_expired.is_none())
    {
        for (artifact, _) in &a.output_artifacts {
            artifacts.retain(|(n, _, _)| n != artifact);
            artifacts.push((
                artifact.clone(),
                format!(
                    "/pipelines/{link}/executions/{}/artifacts/{}",
                    e.id,
                    segment(artifact)
                ),
                format!("{} › {}", a.stage_name, a.action_name),
            ));
        }
    }
    ExecutionParts {
        id: e.id.to_string(),
        status: Status::of(&e.status),
        version: e.pipeline_version,
        trigger: trigger_text(e),
        started: display_time(e.started),
        duration: duration(e.started, e.updated),
        stop_reason: e.stop_reason.clone(),
        artifacts,
        timeline,
        outputs: attempts
            .iter()
            .filter(|a| a.status == "Succeeded")
            .flat_map(|a| {
                a.output_variables
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(move |(k, v)| {
                        (
                            format!("{} › {}", a.stage_name, a.action_name),
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
            })
            .collect(),
        attempts: attempts
            .iter()
            .map(|a| AttemptRow {
                stage: a.stage_name.clone(),
                action: a.action_name.clone(),
                attempt: a.attempt,
                status: Status::of(&a.status),
                summary: a.summary.clone().unwrap_or_default(),
                started: display_time(a.started),
                duration: duration(a.started, a.updated),
                log_link: a
                    .approval
                    .is_none()
                    .then(|| format!("/pipelines/{link}/actions/{}/log", a.id)),
                decisions: a
                    .approval
                    .iter()
                    .flat_map(|ap| &ap.decisions)
                    .map(|d| {
                        let mut text = format!(
                            "{} by {} at {}",
                            if d.approved { "Approved" } else { "Rejected" },
                            d.user_name,
                            display_time(d.decided_at)
                        );
                        if let Some(address) = &d.source_address {
                            text.push_str(&format!(" from {address}"));
                        }
                        if !d.comment.is_empty() {
                            text.push_str(&format!(": {}", d.comment));
                        }
                        text
                    })
                    .collect(),
                review_link: a
                    .approval
                    .as_ref()
                    .filter(|ap| {
                        ap.is_open()
                            && caller.can(
                                Action::PutApprovalResult,
                                &Resource::pipeline_action(name, &a.stage_name, &a.action_name),
                            )
                    })
                    .map(|ap| format!("/pipelines/{link}/approvals/{}", ap.id)),
            })
            .collect(),
        can_stop: matches!(e.status.as_str(), "InProgress" | "Stopping")
            && caller.can(Action::StopPipelineExecution, &Resource::pipeline(name)),
        csrf: csrf.to_string(),
        link,
    }
}

/// An execution's artifact, as a zip.
async fn download(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let (name, id, artifact) = path.into_inner();
    let id = execution_id(&id)?;
    let d =
        executions::artifact_download(&state.services, &user.caller, &name, id, &artifact).await?;
    Ok(crate::web::download::send(d).await?)
}

#[derive(Deserialize)]
struct StopForm {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    reason: String,
}

async fn stop(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: CsrfForm<StopForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (name, id) = path.into_inner();
    let id = execution_id(&id)?;
    let reason = form.form.reason.trim();
    if reason.chars().count() > 200 {
        return Err(ConsoleError::BadRequest(
            "The reason can be at most 200 characters.".into(),
        ));
    }
    executions::stop_pipeline_execution(
        &state.services,
        &form.user.caller,
        &name,
        id,
        form.form.mode == "abandon",
        Some(reason.to_string()).filter(|r| !r.is_empty()),
    )
    .await?;
    Ok(see_other(&format!(
        "/pipelines/{}/executions/{id}?done=stopping",
        segment(&name)
    )))
}

// ---- Stage buttons on the pipeline view -------------------------------------------------------

#[derive(Deserialize)]
struct RetryForm {
    execution: String,
    #[serde(default)]
    mode: String,
}

async fn retry(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: CsrfForm<RetryForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (name, stage) = path.into_inner();
    let id = execution_id(&form.form.execution)?;
    executions::retry_stage_execution(
        &state.services,
        &form.user.caller,
        &name,
        &stage,
        id,
        form.form.mode == "all",
    )
    .await?;
    Ok(see_other(&format!(
        "/pipelines/{}?done=retried",
        segment(&name)
    )))
}

#[derive(Deserialize)]
struct RollbackForm {
    execution: String,
}

async fn rollback(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: CsrfForm<RollbackForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (name, stage) = path.into_inner();
    let target = execution_id(&form.form.execution)?;
    let id = executions::rollback_stage(&state.services, &form.user.caller, &name, &stage, target)
        .await?;
    Ok(see_other(&format!(
        "/pipelines/{}/executions/{id}?done=rolling-back",
        segment(&name)
    )))
}

#[derive(Deserialize)]
struct TransitionForm {
    op: String,
    #[serde(default)]
    reason: String,
}

async fn transition(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: CsrfForm<TransitionForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (name, stage) = path.into_inner();
    let reason = match form.form.op.as_str() {
        "enable" => None,
        "disable" => {
            let reason = form.form.reason.trim();
            if reason.is_empty() {
                return Err(ConsoleError::BadRequest(
                    "Say why the transition is disabled (people waiting on it will see it).".into(),
                ));
            }
            Some(reason.to_string())
        }
        _ => {
            return Err(ConsoleError::BadRequest(
                "Unknown transition change.".into(),
            ));
        }
    };
    let done = if reason.is_some() {
        "disabled"
    } else {
        "enabled"
    };
    executions::set_stage_transition(
        &state.services,
        &form.user.caller,
        &name,
        &stage,
        false,
        reason,
    )
    .await?;
    Ok(see_other(&format!(
        "/pipelines/{}?done={done}",
        segment(&name)
    )))
}

// ---- Logs -------------------------------------------------------------------------------------

pub(super) struct LogLine {
    pub number: i32,
    /// Its text in pieces, ANSI colours as classes.
    pub pieces: Vec<super::ansi::Piece>,
}

pub(super) fn log_line(number: i32, text: &str) -> LogLine {
    LogLine {
        number,
        pieces: super::ansi::pieces(text),
    }
}

#[derive(Template)]
#[template(path = "pipelines/log.html", blocks = ["content"])]
struct LogPage {
    layout: Layout,
    name: String,
    link: String,
    /// The attempt's id.
    id: String,
    execution: String,
    stage: String,
    action: String,
    attempt: i32,
    status: Status,
    summary: String,
    lines: Vec<LogLine>,
    /// Where the lines go on from: streamed while the attempt runs, a link when a page is full.
    more: Option<More>,
    earlier: Option<String>,
    /// What the log is searched for ("" when it is not).
    query: String,
    /// A search's outcome in words ("3 lines contain …").
    found: Option<String>,
    /// A fleet deploy's hosts (none for any other action).
    hosts: Vec<HostRow>,
}
console_page!(LogPage);

/// One host of a fleet deploy, as the action's page shows it.
struct HostRow {
    name: String,
    status: Status,
    release: String,
    took: String,
    summary: String,
    lines: Vec<LogLine>,
}

/// The hosts of a fleet deploy's attempt, shown on its page.
async fn deploy_hosts(
    state: &AppState,
    caller: &Caller,
    name: &str,
    id: Uuid,
) -> Result<Vec<HostRow>, ConsoleError> {
    let hosts = crate::ops::deployments::deploy_hosts(&state.services, caller, name, id).await?;
    Ok(hosts
        .into_iter()
        .map(|h| {
            let class = match h.state.as_str() {
                "Deployed" => "status-succeeded",
                "Failed" | "RollbackFailed" => "status-failed",
                "Deploying" | "RollingBack" => "status-inprogress",
                "RolledBack" => "status-stopped",
                _ => "status-none",
            };
            let label = match h.state.as_str() {
                "RollingBack" => "Switching back",
                "RolledBack" => "Switched back",
                "RollbackFailed" => "Switch back failed",
                "Skipped" => "Not deployed",
                other => other,
            }
            .to_string();
            HostRow {
                name: h.name,
                status: Status { label, class },
                release: h.release.unwrap_or_default(),
                took: h.took.unwrap_or_default(),
                summary: h.summary.unwrap_or_default(),
                lines: h
                    .log
                    .iter()
                    .zip(1..)
                    .map(|(text, n)| log_line(n, text))
                    .collect(),
            }
        })
        .collect())
}

/// The rest of a log: streamed while the attempt runs (`live`: its live view goes on from
/// `url`'s line), a link when a page is full.
struct More {
    url: String,
    live: bool,
}

#[derive(Deserialize)]
struct LogQuery {
    from: Option<i32>,
    /// Only the lines containing this (case-insensitive).
    q: Option<String>,
}

/// Matches a search shows at most.
const SEARCH_LIMIT: usize = 1000;

/// Every line of an attempt's log, in order (at most 16 MiB were kept), with the attempt.
async fn whole_log(
    state: &AppState,
    caller: &Caller,
    name: &str,
    id: Uuid,
) -> Result<(executions::AttemptView, Vec<crate::db::logs::LogLine>), ConsoleError> {
    let mut from = 1;
    let mut all = Vec::new();
    loop {
        let page = executions::action_log(
            &state.services,
            caller,
            name,
            id,
            from,
            executions::LOG_PAGE_LIMIT,
        )
        .await?;
        let done = page.lines.is_empty() || page.next_line <= from;
        from = page.next_line;
        all.extend(page.lines);
        if done || all.len() > 2_000_000 {
            return Ok((page.attempt, all));
        }
    }
}

/// The log as a text file.
async fn log_download(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let (name, id) = path.into_inner();
    let id = execution_id(&id)?;
    let (attempt, lines) = whole_log(&state, &user.caller, &name, id).await?;
    let mut text = String::new();
    for l in &lines {
        text.push_str(&l.text);
        text.push('\n');
    }
    let file: String = format!(
        "{name}-{}-{}-{}.log",
        attempt.stage_name, attempt.action_name, attempt.attempt
    )
    .chars()
    .map(|c| {
        if c.is_ascii_alphanumeric() || "._-".contains(c) {
            c
        } else {
            '_'
        }
    })
    .collect();
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(text))
}

/// Lines shown per page.
const LOG_PAGE: i64 = 5000;

async fn log_lines(
    state: &AppState,
    caller: &Caller,
    name: &str,
    id: &str,
    from: i32,
) -> Result<(executions::LogPage, Vec<LogLine>, Option<More>), ConsoleError> {
    let id = execution_id(id)?;
    let page = executions::action_log(&state.services, caller, name, id, from, LOG_PAGE).await?;
    let lines = page
        .lines
        .iter()
        .map(|l| log_line(l.line, &l.text))
        .collect();
    let full = i64::try_from(page.lines.len()).unwrap_or(0) >= LOG_PAGE;
    let base = format!("/pipelines/{}/actions/{id}/log", segment(name));
    let more = if full {
        Some(More {
            url: format!("{base}?from={}", page.next_line),
            live: false,
        })
    } else if !page.complete {
        Some(More {
            url: format!(
                "/live?view=log&name={}&id={id}&from={}",
                segment(name),
                page.next_line
            ),
            live: true,
        })
    } else {
        None
    };
    Ok((page, lines, more))
}

async fn log_page(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<(String, String)>,
    query: web::Query<LogQuery>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let (name, id) = path.into_inner();
    let from = query.from.unwrap_or(1).max(1);
    let wanted: String = query
        .q
        .as_deref()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(200)
        .collect();
    let link = segment(&name);
    let layout = Layout::signed_in(&user, Section::Pipelines);
    if !wanted.is_empty() {
        // A search reads the whole log and shows the lines that contain the text.
        let (attempt, all) = whole_log(&state, &user.caller, &name, execution_id(&id)?).await?;
        let hosts = deploy_hosts(&state, &user.caller, &name, attempt.id).await?;
        let needle = wanted.to_lowercase();
        let mut matched = 0;
        let mut lines = Vec::new();
        for l in &all {
            let plain: String = super::ansi::pieces(&l.text)
                .into_iter()
                .map(|p| p.text)
                .collect();
            if plain.to_lowercase().contains(&needle) {
                matched += 1;
                if lines.len() < SEARCH_LIMIT {
                    lines.push(log_line(l.line, &l.text));
                }
            }
        }
        let found = match matched {
            0 => format!("No line contains “{wanted}”."),
            1 => format!("1 line contains “{wanted}”."),
            n if n > SEARCH_LIMIT => {
                format!("{n} lines contain “{wanted}”; the first {SEARCH_LIMIT} are shown.")
            }
            n => format!("{n} lines contain “{wanted}”."),
        };
        let page = LogPage {
            layout,
            id: attempt.id.to_string(),
            execution: attempt.execution_id.to_string(),
            stage: attempt.stage_name.clone(),
            action: attempt.action_name.clone(),
            attempt: attempt.attempt,
            status: Status::of(&attempt.status),
            // The log is on the page: its quoted tail would say it twice.
            summary: crate::providers::log::without_tail(
                attempt.summary.as_deref().unwrap_or_default(),
            )
            .to_string(),
            lines,
            more: None,
            earlier: None,
            query: wanted,
            found: Some(found),
            hosts,
            link,
            name,
        };
        return render_with_status(hx, &page, StatusCode::OK);
    }
    let (page, lines, more) = log_lines(&state, &user.caller, &name, &id, from).await?;
    let a = &page.attempt;
    let hosts = deploy_hosts(&state, &user.caller, &name, a.id).await?;
    let layout = match more.as_ref().filter(|m| m.live) {
        Some(m) => layout.live(m.url.clone()),
        None => layout,
    };
    let page = LogPage {
        layout,
        id: a.id.to_string(),
        execution: a.execution_id.to_string(),
        stage: a.stage_name.clone(),
        action: a.action_name.clone(),
        attempt: a.attempt,
        status: Status::of(&a.status),
        summary: crate::providers::log::without_tail(a.summary.as_deref().unwrap_or_default())
            .to_string(),
        lines,
        earlier: (from > 1).then(|| {
            format!(
                "/pipelines/{link}/actions/{id}/log?from={}",
                (i64::from(from) - LOG_PAGE).max(1)
            )
        }),
        more,
        query: String::new(),
        found: None,
        hosts,
        link,
        name,
    };
    render_with_status(hx, &page, StatusCode::OK)
}

// ---- The pipeline view's execution state ------------------------------------------------------

/// What the pipeline view shows of one action's latest attempt.
pub struct ActionState {
    pub status: Status,
    pub summary: String,
    pub log_link: Option<String>,
    pub when: String,
    /// A waiting approval: until when it waits.
    pub approval_deadline: Option<String>,
    /// Its review, for those allowed to answer it.
    pub review_link: Option<String>,
}

/// What the pipeline view shows of one stage: its latest execution there, its transition, and
/// the buttons the viewer may press.
pub struct StageState {
    pub status: Status,
    pub execution: Option<(String, String)>,
    /// When its latest execution last changed here (its actions' latest change).
    pub when: Option<String>,
    pub waiting: usize,
    pub disabled: Option<(String, String)>,
    pub retry_execution: Option<String>,
    pub can_toggle: bool,
    pub actions: Vec<(String, ActionState)>,
}

/// The latest execution state of the pipeline's current version, by stage name; `None` when the
/// viewer may not read it (nothing is refused or audited then: the view just shows less).
pub async fn pipeline_state(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<Option<Vec<(String, StageState)>>, ConsoleError> {
    let me = Resource::pipeline(name);
    if !caller.can(Action::GetPipelineState, &me) {
        return Ok(None);
    }
    let (_, stages) = executions::get_pipeline_state(&state.services, caller, name).await?;
    Ok(Some(stage_states(&|a, r| caller.can(a, r), name, stages)))
}

/// What a viewer sees of a pipeline's state: pure, their permissions (`can`, the one
/// authorization function) decide the buttons, so a live stream applies it to state read once
/// for all its viewers (and records which questions it asked, see `console::live`).
pub fn stage_states(
    can: &dyn Fn(Action, &Resource) -> bool,
    name: &str,
    stages: Vec<executions::StageStateView>,
) -> Vec<(String, StageState)> {
    let link = segment(name);
    {
        stages
            .into_iter()
            .map(|st| {
                let stage_resource = Resource::stage(name, &st.name);
                let when = st
                    .actions
                    .iter()
                    .filter_map(|a| a.latest.as_ref().map(|l| l.3))
                    .max()
                    .map(display_time);
                let status = st
                    .latest
                    .as_ref()
                    .map_or_else(Status::none, |(_, s)| Status::of(s));
                let retryable = st
                    .latest
                    .as_ref()
                    .filter(|(_, s)| s == "Failed" || s == "Stopped")
                    .map(|(id, _)| id.to_string());
                let can_retry = can(Action::RetryStageExecution, &stage_resource);
                let can_toggle = if st.disabled.is_some() {
                    can(Action::EnableStageTransition, &stage_resource)
                } else {
                    can(Action::DisableStageTransition, &stage_resource)
                };
                let actions = st
                    .actions
                    .into_iter()
                    .map(|a| {
                        let view = match a.latest {
                            None => ActionState {
                                status: Status::none(),
                                summary: String::new(),
                                log_link: None,
                                when: String::new(),
                                approval_deadline: None,
                                review_link: None,
                            },
                            Some((id, status, summary, at)) => ActionState {
                                approval_deadline: a
                                    .approval
                                    .as_ref()
                                    .filter(|ap| ap.is_open())
                                    .map(|ap| display_time(ap.deadline)),
                                review_link: a
                                    .approval
                                    .as_ref()
                                    .filter(|ap| {
                                        ap.is_open()
                                            && can(
                                                Action::PutApprovalResult,
                                                &Resource::pipeline_action(name, &st.name, &a.name),
                                            )
                                    })
                                    .map(|ap| format!("/pipelines/{link}/approvals/{}", ap.id)),
                                status: Status::of(&status),
                                summary: crate::providers::log::without_tail(
                                    summary.as_deref().unwrap_or_default(),
                                )
                                .lines()
                                .next()
                                .unwrap_or_default()
                                .chars()
                                .take(300)
                                .collect(),
                                // An approval runs nothing, so it has no log.
                                log_link: a
                                    .approval
                                    .is_none()
                                    .then(|| format!("/pipelines/{link}/actions/{id}/log")),
                                when: display_time(at),
                            },
                        };
                        (a.name, view)
                    })
                    .collect();
                (
                    st.name.clone(),
                    StageState {
                        status,
                        execution: st
                            .latest
                            .as_ref()
                            .map(|(id, _)| (id.to_string(), short(id))),
                        when,
                        waiting: st.inbound.len(),
                        disabled: st.disabled.map(|(reason, by, _)| {
                            let who = by.rsplit('/').next().unwrap_or(&by).to_string();
                            (reason, who)
                        }),
                        retry_execution: retryable.filter(|_| can_retry),
                        can_toggle,
                        actions,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_words_with_a_colour() {
        assert_eq!(Status::of("InProgress").label, "In progress");
        assert_eq!(Status::of("Stopping").class, "status-inprogress");
        assert_eq!(Status::of("Abandoned").class, "status-stopped");
        assert_eq!(Status::none().label, "Didn't run");
        let t = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(duration(t, t + time::Duration::seconds(59)), "59 s");
        assert_eq!(duration(t, t + time::Duration::seconds(61)), "1 min 1 s");
        assert_eq!(duration(t, t + time::Duration::seconds(3700)), "1 h 1 min");
    }
}
