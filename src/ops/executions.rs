//! Pipeline executions: starting and stopping them (a person's acts: authorized and audited), and
//! the engine's own changes (an action's attempt ended), all applied through [`advance`]: the
//! pipeline's runs lock, its runs loaded, the planner's [`engine::apply`], and every effect written
//! (states, action attempts, their jobs, one NOTIFY) in the caller's one transaction.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Caller, Kind, Op, Services};
use crate::access::{Action, Resource};
use crate::artifacts::sealed::DataKey;
use crate::db::{self, executions::ExecutionRow, executions::RunsRow};
use crate::engine::{
    self, ActionRun, ActionStatus, Effect, Event, Execution, ExecutionStatus, Place, Runs, Shape,
    StageStatus, variables,
};
use crate::error::AppError;
use crate::pipeline::ExecutionMode;
use crate::pipeline::wire::PipelineDeclaration;
use crate::providers;

/// The job kind that runs one action attempt.
pub const ACTION_JOB: &str = "action";
/// How often a worker may pick an action's job up again after losing its worker.
const ACTION_JOB_ATTEMPTS: i32 = 3;

/// How an execution was started (CodePipeline's `trigger`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// `StartPipelineExecution`, `CreatePipeline`, `Webhook`, …
    pub trigger_type: &'static str,
    /// The caller's ARN for manual starts.
    pub detail: String,
}

/// What a caller sees of an execution (GetPipelineExecution's `pipelineExecution`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionView {
    pub id: Uuid,
    pub pipeline_name: String,
    pub pipeline_version: i32,
    pub status: String,
    pub trigger: Trigger,
    pub variables: Vec<(String, String)>,
    pub started: OffsetDateTime,
    pub updated: OffsetDateTime,
    /// What its source actions checked out.
    pub source_revisions: Vec<SourceRevision>,
    /// StopPipelineExecution's reason, when one was given.
    pub stop_reason: Option<String>,
    /// When its artifacts were deleted for their age.
    pub artifacts_expired: Option<OffsetDateTime>,
    /// A ROLLBACK execution's target (`None`: a STANDARD execution).
    pub rollback_target: Option<Uuid>,
}

/// What a source action checked out (CodePipeline's `SourceRevision`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRevision {
    pub action_name: String,
    pub revision_id: String,
    pub revision_summary: Option<String>,
}

pub(super) fn execution_not_found(id: Uuid, name: &str) -> AppError {
    AppError::NotFound {
        code: "PipelineExecutionNotFoundException",
        message: format!("The pipeline '{name}' has no execution {id}"),
    }
}

pub(super) fn pipeline_not_found(name: &str) -> AppError {
    AppError::NotFound {
        code: "PipelineNotFoundException",
        message: format!("Sluice does not have a pipeline with name '{name}'"),
    }
}

fn corrupt(what: &str) -> AppError {
    AppError::Internal(anyhow::anyhow!(
        "stored execution state is unreadable: {what}"
    ))
}

/// A pipeline version as the engine uses it: its declaration (secrets sealed) and its shape.
struct Pinned {
    declaration: Arc<PipelineDeclaration>,
    shape: Arc<Shape>,
}

/// Pinned versions already read, by (pipeline id, version). Versions never change once saved,
/// and pipeline ids are never reused, so an entry never goes stale; the cache is emptied when
/// full. It spares every transition a query and a JSON parse per version it touches.
type PinnedCache = std::sync::Mutex<HashMap<(Uuid, i32), Arc<Pinned>>>;
static PINNED: std::sync::LazyLock<PinnedCache> = std::sync::LazyLock::new(Default::default);
const PINNED_CAPACITY: usize = 1024;

async fn pinned(
    conn: &mut sqlx::PgConnection,
    pipeline_id: Uuid,
    version: i32,
) -> Result<Arc<Pinned>, AppError> {
    if let Some(hit) = PINNED
        .lock()
        .ok()
        .and_then(|c| c.get(&(pipeline_id, version)).cloned())
    {
        return Ok(hit);
    }
    pinned_fresh(conn, pipeline_id, version).await
}

/// [`pinned`] read from the database, replacing what the cache held. The one thing that can
/// change in a saved version is the sealing of its secrets (`sluice keys rotate` reseals them
/// while every process is stopped); a process that still finds an older sealing cached (only
/// one that shares this cache with a server from before the rotation: tests) reads it again.
async fn pinned_fresh(
    conn: &mut sqlx::PgConnection,
    pipeline_id: Uuid,
    version: i32,
) -> Result<Arc<Pinned>, AppError> {
    let row = db::pipelines::version(conn, pipeline_id, version)
        .await?
        .ok_or_else(|| corrupt("an execution's pipeline version is missing"))?;
    let declaration: PipelineDeclaration = serde_json::from_str(&row.declaration).map_err(|e| {
        AppError::Internal(anyhow::Error::new(e).context("a stored declaration does not parse"))
    })?;
    let entry = Arc::new(Pinned {
        shape: Arc::new(Shape::of_declaration(&declaration)),
        declaration: Arc::new(declaration),
    });
    if let Ok(mut cache) = PINNED.lock() {
        if cache.len() >= PINNED_CAPACITY {
            cache.clear();
        }
        cache.insert((pipeline_id, version), entry.clone());
    }
    Ok(entry)
}

/// A stored declaration, parsed (it was validated when saved).
pub(super) async fn declaration(
    conn: &mut sqlx::PgConnection,
    pipeline_id: Uuid,
    version: i32,
) -> Result<Arc<PipelineDeclaration>, AppError> {
    Ok(pinned(conn, pipeline_id, version)
        .await?
        .declaration
        .clone())
}

fn mode_of(decl: &PipelineDeclaration) -> ExecutionMode {
    match decl.execution_mode.as_deref() {
        Some("QUEUED") => ExecutionMode::Queued,
        Some("PARALLEL") => ExecutionMode::Parallel,
        _ => ExecutionMode::Superseded,
    }
}

/// A new execution to add to the runs.
pub(super) struct NewExecution {
    id: Uuid,
    version: i32,
    shape: Arc<Shape>,
    trigger: Trigger,
    variables: serde_json::Value,
    client_request_token: Option<String>,
    source_revisions: serde_json::Value,
    /// A ROLLBACK execution: the stage it runs and the execution it runs it with.
    rollback: Option<(usize, Uuid)>,
}

/// What to apply.
pub(super) enum Change {
    Start(Box<NewExecution>),
    Event(Event),
}

/// The runs of a pipeline as stored: its executions that are not finished (and `also`).
async fn load(
    conn: &mut sqlx::PgConnection,
    pipeline_id: Uuid,
    mode: ExecutionMode,
    counters: &RunsRow,
    also: Option<Uuid>,
) -> Result<(Runs, HashMap<Uuid, i32>), AppError> {
    let state = db::executions::runs_state(conn, pipeline_id, also).await?;
    let rows = state.executions;
    let stages = state.stages;
    let actions = state.actions;
    let mut runs = Runs::new(mode);
    runs.clock = u64::try_from(counters.clock).map_err(|_| corrupt("clock"))?;
    let versions = rows.iter().map(|r| (r.id, r.pipeline_version)).collect();
    for row in rows {
        let shape = pinned(conn, pipeline_id, row.pipeline_version)
            .await?
            .shape
            .clone();
        let seq = u64::try_from(row.seq).map_err(|_| corrupt("seq"))?;
        let mut e = Execution::new(row.id, seq, shape);
        e.status = ExecutionStatus::parse(&row.status).ok_or_else(|| corrupt("status"))?;
        e.place = place_of(&row)?;
        e.only_stage = row.rollback_stage.and_then(|s| usize::try_from(s).ok());
        runs.executions.push(e);
    }
    for s in stages {
        let e = runs
            .executions
            .iter_mut()
            .find(|e| e.id == s.execution_id)
            .ok_or_else(|| corrupt("stage of an unknown execution"))?;
        let run = usize::try_from(s.stage_index)
            .ok()
            .and_then(|i| e.stages.get_mut(i))
            .ok_or_else(|| corrupt("stage index"))?;
        run.status = Some(StageStatus::parse(&s.status).ok_or_else(|| corrupt("stage status"))?);
    }
    for a in actions {
        let e = runs
            .executions
            .iter_mut()
            .find(|e| e.id == a.execution_id)
            .ok_or_else(|| corrupt("action of an unknown execution"))?;
        let run = usize::try_from(a.stage_index)
            .ok()
            .and_then(|si| e.stages.get_mut(si))
            .and_then(|s| {
                usize::try_from(a.action_index)
                    .ok()
                    .and_then(|ai| s.actions.get_mut(ai))
            })
            .ok_or_else(|| corrupt("action index"))?;
        *run = ActionRun {
            attempt: u32::try_from(a.attempt).map_err(|_| corrupt("attempt"))?,
            status: Some(ActionStatus::parse(&a.status).ok_or_else(|| corrupt("action status"))?),
        };
    }
    runs.disabled = state.disabled.into_iter().collect();
    runs.latest = state.latest.into_iter().collect();
    Ok((runs, versions))
}

fn place_of(row: &db::executions::ActiveRow) -> Result<Place, AppError> {
    let stage = || {
        row.place_stage
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| corrupt("place"))
    };
    Ok(match row.place.as_str() {
        "finished" => Place::Finished,
        "in" => Place::In { stage: stage()? },
        "waiting" => Place::Waiting {
            stage: stage()?,
            since: row
                .waiting_since
                .and_then(|s| u64::try_from(s).ok())
                .ok_or_else(|| corrupt("waiting_since"))?,
        },
        _ => return Err(corrupt("place")),
    })
}

/// The stored columns of a place.
fn place_columns(place: Place) -> (&'static str, Option<i32>, Option<i64>) {
    let index = |i: usize| i32::try_from(i).ok();
    match place {
        Place::Finished => ("finished", None, None),
        Place::In { stage } => ("in", index(stage), None),
        Place::Waiting { stage, since } => ("waiting", index(stage), i64::try_from(since).ok()),
    }
}

fn index(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

/// Applies one change to a pipeline's runs, inside the caller's transaction: the runs lock is
/// taken first, so the plan is made from, and written over, states nobody else is changing.
/// Returns how many jobs it queued. An approval that cannot be requested (a reference in its
/// CustomData that does not resolve) fails at once, as a change of its own.
pub(super) async fn advance(
    conn: &mut sqlx::PgConnection,
    now: OffsetDateTime,
    pipeline_id: Uuid,
    change: Change,
    stop_comment: Option<&str>,
) -> Result<usize, AppError> {
    let (mut queued, mut failed, mut stages) =
        advance_once(conn, now, pipeline_id, change, stop_comment).await?;
    loop {
        let (next, automatic) = if let Some(event) = failed.pop() {
            (Change::Event(event), false)
        } else if let Some((id, stage)) = stages.pop() {
            match on_failure(conn, now, pipeline_id, id, stage).await? {
                Some(change) => (change, true),
                None => continue,
            }
        } else {
            return Ok(queued);
        };
        // A refused automatic retry or rollback changes nothing (a refusal writes nothing) and
        // leaves the failure as it is.
        let (more, events, failures) = match advance_once(conn, now, pipeline_id, next, None).await
        {
            Err(AppError::Rejected { message, .. }) if automatic => {
                tracing::info!(%pipeline_id, "an automatic retry or rollback was refused: {message}");
                continue;
            }
            other => other?,
        };
        queued += more;
        failed.extend(events);
        stages.extend(failures);
    }
}

/// [`advance`] for one change: the jobs it queued, the completions of the approvals that
/// could not be requested, and the stages that failed (execution, stage).
async fn advance_once(
    conn: &mut sqlx::PgConnection,
    now: OffsetDateTime,
    pipeline_id: Uuid,
    change: Change,
    stop_comment: Option<&str>,
) -> Result<(usize, Vec<Event>, Vec<(Uuid, usize)>), AppError> {
    let mut counters =
        db::executions::lock_runs(conn, pipeline_id)
            .await?
            .ok_or(AppError::NotFound {
                code: "PipelineNotFoundException",
                message: "The pipeline no longer exists".into(),
            })?;
    // Never earlier than the change before: `now` was read before waiting for the lock.
    let now = counters.last_change_at.map_or(now, |last| now.max(last));
    counters.last_change_at = Some(now);
    // The current version's execution mode rules every run of the pipeline.
    let mode = mode_of(
        &pinned(conn, pipeline_id, counters.current_version)
            .await?
            .declaration,
    );
    let (also, event, new) = match change {
        Change::Event(event) => {
            let also = match &event {
                Event::Stop { id, .. } | Event::Retry { id, .. } => Some(*id),
                Event::ActionCompleted { id, .. } => Some(*id),
                _ => None,
            };
            (also, event, None)
        }
        Change::Start(new) => {
            let seq = u64::try_from(counters.next_seq).map_err(|_| corrupt("next_seq"))?;
            counters.next_seq += 1;
            let event = match new.rollback {
                Some((stage, _)) => Event::Rollback {
                    id: new.id,
                    seq,
                    shape: new.shape.clone(),
                    stage,
                },
                None => Event::Start {
                    id: new.id,
                    seq,
                    shape: new.shape.clone(),
                },
            };
            (None, event, Some((new, seq)))
        }
    };
    let resumed = matches!(event, Event::Retry { .. });
    let (mut runs, mut versions) = load(conn, pipeline_id, mode, &counters, also).await?;
    let before = runs.clone();
    let effects = engine::apply(&mut runs, event).map_err(|refusal| match refusal {
        engine::Refusal::ExecutionNotFound => AppError::NotFound {
            code: refusal.exception(),
            message: refusal.to_string(),
        },
        other => AppError::Rejected {
            code: other.exception(),
            message: other.to_string(),
        },
    })?;

    // Executions: the new one is inserted, changed ones updated.
    for e in &runs.executions {
        let (place, place_stage, waiting_since) = place_columns(e.place);
        match before.get(e.id) {
            None => {
                let (new, seq) = new
                    .as_ref()
                    .ok_or_else(|| corrupt("an unexpected execution"))?;
                db::executions::insert(
                    conn,
                    &ExecutionRow {
                        id: e.id,
                        pipeline_id,
                        seq: i64::try_from(*seq).map_err(|_| corrupt("seq"))?,
                        pipeline_version: new.version,
                        status: e.status.as_str().to_string(),
                        place: place.to_string(),
                        place_stage,
                        waiting_since,
                        trigger_type: new.trigger.trigger_type.to_string(),
                        trigger_detail: new.trigger.detail.clone(),
                        variables: new.variables.clone(),
                        started_at: now,
                        updated_at: now,
                        client_request_token: new.client_request_token.clone(),
                        source_revisions: new.source_revisions.clone(),
                        stop_reason: None,
                        artifacts_expired_at: None,
                    },
                )
                .await?;
                if let Some((stage, target)) = new.rollback {
                    db::executions::insert_rollback(conn, e.id, index(stage), target).await?;
                }
            }
            Some(old) if old.status != e.status || old.place != e.place => {
                db::executions::update(
                    conn,
                    e.id,
                    e.status.as_str(),
                    place,
                    place_stage,
                    waiting_since,
                    now,
                )
                .await?;
            }
            Some(_) => {}
        }
    }
    if let Some((new, _)) = &new {
        versions.insert(new.id, new.version);
    }
    // Attempts are started in one statement (jobs, attempt rows, the NOTIFY), flushed before
    // anything that could refer to them. Approvals get no job: they wait as rows.
    let mut starting: Vec<db::executions::NewAttempt> = Vec::new();
    let mut queued = 0;
    let mut failed = Vec::new();
    async fn flush(
        conn: &mut sqlx::PgConnection,
        starting: &mut Vec<db::executions::NewAttempt>,
        now: OffsetDateTime,
    ) -> Result<(), AppError> {
        db::executions::start_attempts(
            conn,
            starting,
            ACTION_JOB,
            ACTION_JOB_ATTEMPTS,
            db::jobs::CHANNEL,
            now,
        )
        .await?;
        starting.clear();
        Ok(())
    }
    let mut failed_stages = Vec::new();
    for effect in &effects {
        match *effect {
            Effect::StageStatus { id, stage, status } => {
                db::executions::set_stage(conn, id, index(stage), status.as_str(), now).await?;
                if status == StageStatus::Failed {
                    failed_stages.push((id, stage));
                }
            }
            Effect::StartAction {
                id,
                stage,
                action,
                attempt,
            } => {
                let shape = runs.get(id).map(|e| e.shape.clone());
                let is_approval = shape
                    .as_ref()
                    .and_then(|sh| sh.stages.get(stage)?.types.get(action))
                    .is_some_and(super::approvals::is_manual_approval);
                if is_approval {
                    let version = *versions
                        .get(&id)
                        .ok_or_else(|| corrupt("an execution's version"))?;
                    let decl = declaration(conn, pipeline_id, version).await?;
                    let requested = super::approvals::request(
                        conn,
                        now,
                        pipeline_id,
                        &decl,
                        super::approvals::Gate {
                            execution_id: id,
                            stage,
                            action,
                            attempt,
                        },
                    )
                    .await?;
                    if !requested {
                        failed.push(Event::ActionCompleted {
                            id,
                            stage,
                            action,
                            attempt,
                            succeeded: false,
                        });
                    }
                    continue;
                }
                queued += 1;
                let attempt = i32::try_from(attempt).map_err(|_| corrupt("attempt"))?;
                starting.push(db::executions::NewAttempt {
                    execution_id: id,
                    stage_index: index(stage),
                    action_index: index(action),
                    attempt,
                    payload: json!({
                        "pipelineId": pipeline_id,
                        "executionId": id,
                        "stage": stage,
                        "action": action,
                        "attempt": attempt,
                    }),
                });
            }
            Effect::ActionStatus {
                id,
                stage,
                action,
                attempt,
                status,
            } => {
                flush(conn, &mut starting, now).await?;
                let attempt = i32::try_from(attempt).map_err(|_| corrupt("attempt"))?;
                let job = db::executions::end_action(
                    conn,
                    id,
                    index(stage),
                    index(action),
                    attempt,
                    status.as_str(),
                    now,
                )
                .await?;
                if status == ActionStatus::Abandoned
                    && let Some(job) = job
                {
                    db::jobs::cancel(conn, job, now).await?;
                }
                // An abandoned approval is closed with its attempt (it waits for nobody now).
                let is_approval = runs
                    .get(id)
                    .and_then(|e| e.shape.stages.get(stage)?.types.get(action).cloned())
                    .is_some_and(|t| super::approvals::is_manual_approval(&t));
                if status == ActionStatus::Abandoned && is_approval {
                    db::approvals::close(
                        conn,
                        id,
                        index(stage),
                        index(action),
                        attempt,
                        "Abandoned",
                        now,
                    )
                    .await?;
                }
            }
            Effect::ExecutionStatus { .. } | Effect::Waiting { .. } => {}
        }
    }
    flush(conn, &mut starting, now).await?;
    for (stage, id) in &runs.latest {
        if before.latest.get(stage) != Some(id) {
            db::executions::set_latest(conn, pipeline_id, stage, *id).await?;
        }
    }
    // The state changes as events, in the same transaction.
    let context = engine::events::Context {
        pipeline: &counters.pipeline_name,
        started: new.as_ref().map(|(n, _)| n.id),
        trigger: new
            .as_ref()
            .map(|(n, _)| (n.trigger.trigger_type, n.trigger.detail.as_str())),
        stop_comment,
        resumed,
    };
    let events = engine::events::of(&effects, &context, |id| {
        let shape = runs.get(id)?.shape.as_ref();
        Some((shape, *versions.get(&id)?))
    });
    let (types, details): (Vec<String>, Vec<serde_json::Value>) = events
        .into_iter()
        .map(|e| (e.detail_type.to_string(), e.detail))
        .unzip();
    db::events::append(conn, pipeline_id, now, &types, &details).await?;
    counters.clock = i64::try_from(runs.clock).map_err(|_| corrupt("clock"))?;
    db::executions::set_runs(conn, pipeline_id, &counters).await?;
    Ok((queued, failed, failed_stages))
}

/// What a StartPipelineExecution asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartRequest {
    /// Pipeline variables given at start (each declared; the others take their defaults).
    pub variables: Vec<(String, String)>,
    /// A repeated token returns the execution the first request started (ClientRequestToken:
    /// 1-128 of `A-Za-z0-9-`, checked by the API).
    pub client_request_token: Option<String>,
    /// Commits source actions must check out instead of their branch's head.
    pub source_revisions: Vec<SourceRevisionOverride>,
}

/// One source revision override (only `COMMIT_ID` for the built-in Git source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRevisionOverride {
    pub action_name: String,
    pub revision_type: String,
    pub revision_value: String,
}

/// StartPipelineExecution: a new execution of the pipeline's current version.
pub async fn start_pipeline_execution(
    s: &Services,
    c: &Caller,
    name: &str,
    request: StartRequest,
) -> Result<Uuid, AppError> {
    let done = Op::run(
        s,
        c,
        Kind::Change,
        Action::StartPipelineExecution,
        Resource::pipeline(name),
        json!({
            "name": name,
            "variables": request.variables.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
            "clientRequestToken": request.client_request_token,
            "sourceRevisions": request.source_revisions.iter().map(|r| json!({"actionName": r.action_name, "revisionType": r.revision_type, "revisionValue": r.revision_value})).collect::<Vec<_>>(),
        }),
        async |op| {
            let trigger = Trigger {
                trigger_type: "StartPipelineExecution",
                detail: Resource::user(op.caller().user_name()).to_string(),
            };
            start_in(op, name, request, trigger).await
        },
    )
    .await?;
    // Work it queued starts at once on this process's workers.
    s.wake.notify_waiters();
    Ok(done)
}

/// Starts an execution inside an operation's transaction (StartPipelineExecution, and
/// CreatePipeline's first run).
pub(super) async fn start_in(
    op: &mut Op<'_>,
    name: &str,
    request: StartRequest,
    trigger: Trigger,
) -> Result<Uuid, AppError> {
    let now = op.now();
    let (id, repeated) = start_on(op.conn(), now, name, request, trigger).await?;
    op.add_audit_param("pipelineExecutionId", json!(id));
    if repeated {
        op.add_audit_param("repeated", json!(true));
    }
    Ok(id)
}

/// [`start_in`] on a connection in a transaction, for the engine's own starts (polling): the
/// execution, and whether its client request token had started it before.
pub(super) async fn start_on(
    conn: &mut sqlx::PgConnection,
    now: OffsetDateTime,
    name: &str,
    request: StartRequest,
    trigger: Trigger,
) -> Result<(Uuid, bool), AppError> {
    let row = db::pipelines::find(conn, super::pipelines::existing_name(name)?)
        .await?
        .ok_or_else(|| pipeline_not_found(name))?;
    if let Some(token) = &request.client_request_token {
        // Under the runs lock, so two requests with one token never both start.
        db::executions::lock_runs(conn, row.id)
            .await?
            .ok_or_else(|| pipeline_not_found(name))?;
        if let Some(id) = db::executions::by_client_request_token(conn, row.id, token).await? {
            return Ok((id, true));
        }
    }
    let decl = declaration(conn, row.id, row.current_version).await?;
    let values =
        variables::start_variables(decl.variables.as_deref().unwrap_or(&[]), &request.variables)
            .map_err(|m| AppError::validation("variables", m))?;
    let mut overrides = Vec::new();
    for r in &request.source_revisions {
        let action = decl
            .stages
            .iter()
            .flat_map(|s| &s.actions)
            .find(|a| a.name == r.action_name)
            .filter(|a| a.action_type_id.category == "Source")
            .ok_or_else(|| {
                AppError::validation(
                    "sourceRevisions",
                    format!("the pipeline has no source action named {}", r.action_name),
                )
            })?;
        if action.action_type_id.provider == "Upload" && r.revision_type != "S3_OBJECT_VERSION_ID" {
            return Err(AppError::validation(
                "sourceRevisions",
                format!(
                    "{} is an Upload source: its revisionType must be S3_OBJECT_VERSION_ID",
                    r.action_name
                ),
            ));
        }
        if action.action_type_id.provider == "Git" && r.revision_type != "COMMIT_ID" {
            return Err(AppError::validation(
                "sourceRevisions",
                format!(
                    "{} is a Git source: its revisionType must be COMMIT_ID",
                    r.action_name
                ),
            ));
        }
        let commit_id = (7..=64).contains(&r.revision_value.len())
            && r.revision_value.chars().all(|c| c.is_ascii_hexdigit());
        if r.revision_type == "COMMIT_ID" && !commit_id {
            return Err(AppError::validation(
                "sourceRevisions",
                format!(
                    "the revisionValue for {} must be a commit id (7 to 64 hexadecimal digits)",
                    r.action_name
                ),
            ));
        }
        if overrides
            .iter()
            .any(|o: &serde_json::Value| o["actionName"] == json!(r.action_name))
        {
            return Err(AppError::validation(
                "sourceRevisions",
                format!("{} has more than one override", r.action_name),
            ));
        }
        overrides.push(json!({
            "actionName": r.action_name,
            "revisionType": r.revision_type,
            "revisionValue": r.revision_value.to_ascii_lowercase(),
        }));
    }
    let id = Uuid::new_v4();
    let new = NewExecution {
        id,
        version: row.current_version,
        shape: Arc::new(Shape::of_declaration(&decl)),
        trigger,
        variables: json!(
            values
                .iter()
                .map(|(n, v)| json!({"name": n, "resolvedValue": v}))
                .collect::<Vec<_>>()
        ),
        client_request_token: request.client_request_token,
        source_revisions: json!(overrides),
        rollback: None,
    };
    advance(conn, now, row.id, Change::Start(Box::new(new)), None).await?;
    Ok((id, false))
}

/// The pipeline an execution belongs to, checked against the name the caller gave.
async fn owning_pipeline(
    conn: &mut sqlx::PgConnection,
    name: &str,
    execution_id: Uuid,
) -> Result<(db::pipelines::PipelineRow, ExecutionRow), AppError> {
    let pipeline = db::pipelines::find(conn, super::pipelines::existing_name(name)?)
        .await?
        .ok_or_else(|| pipeline_not_found(name))?;
    let execution = db::executions::get(conn, execution_id)
        .await?
        .filter(|e| e.pipeline_id == pipeline.id)
        .ok_or_else(|| execution_not_found(execution_id, name))?;
    Ok((pipeline, execution))
}

/// StopPipelineExecution: stop and wait, or stop and abandon.
pub async fn stop_pipeline_execution(
    s: &Services,
    c: &Caller,
    name: &str,
    execution_id: Uuid,
    abandon: bool,
    reason: Option<String>,
) -> Result<Uuid, AppError> {
    Op::run(
        s,
        c,
        Kind::Change,
        Action::StopPipelineExecution,
        Resource::pipeline(name),
        json!({"pipelineName": name, "pipelineExecutionId": execution_id, "abandon": abandon, "reason": reason}),
        async |op| {
            let now = op.now();
            let (pipeline, _) = owning_pipeline(op.conn(), name, execution_id).await?;
            advance(
                op.conn(),
                now,
                pipeline.id,
                Change::Event(Event::Stop {
                    id: execution_id,
                    abandon,
                }),
                reason.as_deref().filter(|r| !r.is_empty()),
            )
            .await?;
            if let Some(reason) = reason.as_deref().filter(|r| !r.is_empty()) {
                db::executions::set_stop_reason(op.conn(), execution_id, reason).await?;
            }
            Ok(execution_id)
        },
    )
    .await
}

/// GetPipelineExecution.
pub async fn get_pipeline_execution(
    s: &Services,
    c: &Caller,
    name: &str,
    execution_id: Uuid,
) -> Result<ExecutionView, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::GetPipelineExecution,
        Resource::pipeline(name),
        json!({"pipelineName": name, "pipelineExecutionId": execution_id}),
        async |op| {
            let (pipeline, row) = owning_pipeline(op.conn(), name, execution_id).await?;
            let mut views = views(op.conn(), &pipeline.name, vec![row]).await?;
            views.pop().ok_or_else(|| corrupt("an execution's view"))
        },
    )
    .await
}

/// The stored start-time variables, as `(name, value)`.
fn variables_of(stored: &serde_json::Value) -> Vec<(String, String)> {
    stored
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| {
                    Some((
                        v.get("name")?.as_str()?.to_string(),
                        v.get("resolvedValue")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The views of executions of one pipeline, with their source revisions.
async fn views(
    conn: &mut sqlx::PgConnection,
    pipeline_name: &str,
    rows: Vec<ExecutionRow>,
) -> Result<Vec<ExecutionView>, AppError> {
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    // A ROLLBACK execution shows the revisions of the execution it went back to.
    let targets: HashMap<Uuid, Uuid> = db::executions::rollback_targets(conn, &ids)
        .await?
        .into_iter()
        .collect();
    ids.extend(targets.values().copied());
    let revisions = db::executions::revisions_of(conn, &ids).await?;
    let mut versions: HashMap<(Uuid, i32), Arc<PipelineDeclaration>> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut sources = Vec::new();
        let target = targets.get(&row.id).copied();
        let source_id = target.unwrap_or(row.id);
        for r in revisions.iter().filter(|r| r.execution_id == source_id) {
            let key = (row.pipeline_id, row.pipeline_version);
            if let std::collections::hash_map::Entry::Vacant(slot) = versions.entry(key) {
                slot.insert(declaration(conn, row.pipeline_id, row.pipeline_version).await?);
            }
            let action_name = usize::try_from(r.stage_index)
                .ok()
                .zip(usize::try_from(r.action_index).ok())
                .and_then(|(si, ai)| versions[&key].stages.get(si)?.actions.get(ai))
                .map(|a| a.name.clone());
            if let Some(action_name) = action_name {
                sources.push(SourceRevision {
                    action_name,
                    revision_id: r.commit_id.clone(),
                    revision_summary: r
                        .commit_message
                        .as_ref()
                        .map(|m| m.chars().take(2048).collect()),
                });
            }
        }
        let mut v = view(pipeline_name, row);
        v.source_revisions = sources;
        v.rollback_target = target;
        out.push(v);
    }
    Ok(out)
}

fn view(pipeline_name: &str, row: ExecutionRow) -> ExecutionView {
    let variables = variables_of(&row.variables);
    ExecutionView {
        source_revisions: Vec::new(),
        stop_reason: row.stop_reason.clone(),
        artifacts_expired: row.artifacts_expired_at,
        rollback_target: None,
        id: row.id,
        pipeline_name: pipeline_name.to_string(),
        pipeline_version: row.pipeline_version,
        status: row.status,
        trigger: Trigger {
            trigger_type: match row.trigger_type.as_str() {
                "CreatePipeline" => "CreatePipeline",
                "Webhook" => "Webhook",
                "WebhookV2" => "WebhookV2",
                "PollForSourceChanges" => "PollForSourceChanges",
                "PutActionRevision" => "PutActionRevision",
                "ManualRollback" => "ManualRollback",
                "AutomatedRollback" => "AutomatedRollback",
                _ => "StartPipelineExecution",
            },
            detail: row.trigger_detail,
        },
        variables,
        started: row.started_at,
        updated: row.updated_at,
    }
}

/// What an action job carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionJob {
    pub pipeline_id: Uuid,
    pub execution_id: Uuid,
    pub stage: usize,
    pub action: usize,
    pub attempt: u32,
}

impl ActionJob {
    pub fn of(payload: &serde_json::Value) -> Result<ActionJob, AppError> {
        serde_json::from_value(payload.clone()).map_err(|e| {
            AppError::Internal(anyhow::Error::new(e).context("an action job's payload"))
        })
    }
}

/// The largest artifact an action may produce by default (1 GiB).
pub const ARTIFACT_LIMIT: u64 = 1 << 30;
/// How long artifacts are kept by default.
pub const ARTIFACT_RETENTION_DAYS: i64 = 365;

/// The pipeline's artifact data key, created (and stored wrapped by the master key) on first use.
/// Where a pipeline's wrapped data key belongs (its sealing's associated data).
pub(crate) fn data_key_context(pipeline_id: Uuid, key_id: &str) -> String {
    format!("artifact-data-key:{pipeline_id}:{key_id}")
}

async fn data_key(
    s: &Services,
    conn: &mut sqlx::PgConnection,
    pipeline_id: Uuid,
) -> Result<DataKey, AppError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let context = |key_id: &str| data_key_context(pipeline_id, key_id);
    let candidate = DataKey::generate(Uuid::new_v4().to_string());
    let wrapped = s
        .root_key
        .seal(&b64.encode(candidate.bytes()), &context(&candidate.id));
    let (key_id, stored) =
        db::executions::data_key(conn, pipeline_id, (&candidate.id, &wrapped), s.clock.now())
            .await?;
    let bytes = s
        .root_key
        .open(&stored, &context(&key_id))
        .and_then(|text| b64.decode(text).ok())
        .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
        .ok_or_else(|| corrupt("the pipeline's data key does not open with this master key"))?;
    Ok(DataKey::new(key_id, bytes))
}

/// An action job ready to run: the provider's context (whose log the worker connects), the
/// attempt's id (its log's key) and the secrets its log must mask.
pub struct Prepared {
    pub context: providers::Context,
    pub action_execution_id: Uuid,
    pub secrets: Vec<String>,
}

/// The scope `#{…}` references resolve in, for an action of the execution `row`: the
/// execution's variables and the output variables of its earlier actions that have a namespace
/// (`outputs`: what [`db::executions::outputs_of`] read, oldest attempt first, so the latest
/// attempt's values win).
pub(super) fn reference_scope(
    decl: &PipelineDeclaration,
    row: &ExecutionRow,
    outputs: &[(i32, i32, serde_json::Value, serde_json::Value)],
) -> variables::Scope {
    let mut scope = variables::Scope {
        execution_id: row.id.to_string(),
        variables: view(&decl.name, row.clone())
            .variables
            .into_iter()
            .collect(),
        namespaces: Default::default(),
    };
    for (si, ai, vars, _) in outputs {
        let namespace = usize::try_from(*si)
            .ok()
            .and_then(|si| decl.stages.get(si))
            .and_then(|st| usize::try_from(*ai).ok().and_then(|ai| st.actions.get(ai)))
            .and_then(|a| a.namespace.clone());
        if let (Some(ns), Some(map)) = (namespace, vars.as_object()) {
            let values = map
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
            scope.namespaces.insert(ns, values);
        }
    }
    scope
}

/// What a worker needs to run an action job: the action as declared in the execution's pinned
/// version, its configuration resolved (secrets opened), the pipeline's artifact key and store;
/// what it runs with is recorded on the attempt (secrets masked). `Ok(None)` when
/// the execution or its pipeline is gone; `Err(summary)` inside when the action cannot run.
pub async fn prepare_action(
    s: &Services,
    job: &ActionJob,
) -> Result<Option<Result<Prepared, String>>, AppError> {
    let mut conn = s.pool.acquire().await?;
    let Some(row) = db::executions::get(&mut conn, job.execution_id).await? else {
        return Ok(None);
    };
    if db::pipelines::find_by_id(&mut conn, row.pipeline_id)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let decl = declaration(&mut conn, row.pipeline_id, row.pipeline_version).await?;
    let action = decl
        .stages
        .get(job.stage)
        .and_then(|s| s.actions.get(job.action))
        .ok_or_else(|| corrupt("an action job's action"))?
        .clone();
    let Some(store) = s.artifacts.clone() else {
        return Ok(Some(Err("this worker has no artifact store".into())));
    };
    // A ROLLBACK execution reads the stages before its own from the execution it goes back to.
    let mut outputs = Vec::new();
    if let Some((stage, target)) = db::executions::rollback_of(&mut conn, row.id).await? {
        outputs.extend(
            db::executions::outputs_of(&mut conn, target)
                .await?
                .into_iter()
                .filter(|(si, ..)| *si < stage),
        );
    }
    outputs.extend(db::executions::outputs_of(&mut conn, row.id).await?);
    let scope = reference_scope(&decl, &row, &outputs);
    let mut produced: HashMap<String, crate::artifacts::store::Address> = HashMap::new();
    // A source action keeps the commit of the execution: an override given at start, or what an
    // earlier attempt of the same action checked out.
    let mut revision = row
        .source_revisions
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["actionName"] == json!(action.name))
        .and_then(|o| o["revisionValue"].as_str())
        .map(str::to_string);
    for (si, ai, vars, artifacts) in &outputs {
        if index(job.stage) == *si
            && index(job.action) == *ai
            && let Some(commit) = vars
                .get("CommitId")
                .or_else(|| vars.get("VersionId"))
                .and_then(|c| c.as_str())
        {
            revision = Some(commit.to_string());
        }
        for (name, stored) in artifacts.as_object().into_iter().flatten() {
            if let Some(address) = stored
                .get("address")
                .and_then(|a| a.as_str())
                .and_then(crate::artifacts::store::Address::parse)
            {
                produced.insert(name.clone(), address);
            }
        }
    }
    let id = &action.action_type_id;
    let action_type =
        crate::pipeline::action_types::find(&id.category, &id.owner, &id.provider, &id.version);
    let configuration = action.configuration.clone().unwrap_or_default();
    let is_secret = |k: &str| {
        action_type
            .and_then(|t| t.property(k))
            .is_some_and(|p| p.secret())
    };
    let mut resolved = match variables::resolve(&configuration, &scope, is_secret) {
        Ok(r) => r,
        Err(unresolved) => return Ok(Some(Err(unresolved.to_string()))),
    };
    let stage_name = &decl.stages[job.stage].name;
    let mut secrets = Vec::new();
    let mut shown = serde_json::Map::new();
    for (key, value) in resolved.iter_mut() {
        if is_secret(key) {
            let context =
                super::pipelines::secret_context(row.pipeline_id, stage_name, &action.name, key);
            let mut plain = s.root_key.open(value, &context);
            if plain.is_none() {
                let fresh = pinned_fresh(&mut conn, row.pipeline_id, row.pipeline_version).await?;
                plain = fresh
                    .declaration
                    .stages
                    .get(job.stage)
                    .and_then(|st| st.actions.get(job.action))
                    .and_then(|a| a.configuration.as_ref())
                    .and_then(|c| c.get(key))
                    .and_then(|stored| s.root_key.open(stored, &context));
            }
            let Some(plain) = plain else {
                return Ok(Some(Err(format!(
                    "the secret {key} does not open with this server's master key; set it again"
                ))));
            };
            *value = plain;
            secrets.push(value.clone());
            shown.insert(key.clone(), json!("****"));
        } else {
            shown.insert(key.clone(), json!(value));
        }
    }
    let mut inputs = Vec::new();
    for input in action.input_artifacts.iter().flatten() {
        match produced.get(&input.name) {
            Some(address) => inputs.push((input.name.clone(), address.clone())),
            None => {
                return Ok(Some(Err(format!(
                    "the input artifact {} was not produced in this execution",
                    input.name
                ))));
            }
        }
    }
    let git_credentials = match resolved.get("ConnectionName") {
        Some(name) if id.provider == "Git" => {
            match super::connections::credentials_for(s, &mut conn, name).await? {
                Ok(credentials) => {
                    secrets.extend(credentials.masked());
                    Some(credentials)
                }
                Err(why) => return Ok(Some(Err(why))),
            }
        }
        _ => None,
    };
    let key = data_key(s, &mut conn, row.pipeline_id).await?;
    let attempt = i32::try_from(job.attempt).map_err(|_| corrupt("attempt"))?;
    let action_execution_id = db::executions::action_id(
        &mut conn,
        row.id,
        index(job.stage),
        index(job.action),
        attempt,
    )
    .await?
    .ok_or_else(|| corrupt("an action job's attempt"))?;
    let read: serde_json::Map<_, _> = inputs
        .iter()
        .map(|(name, address)| (name.clone(), json!({"address": address.as_str()})))
        .collect();
    db::executions::set_action_input(&mut conn, action_execution_id, &json!(shown), &json!(read))
        .await?;
    // A webhook gets links to its inputs, on this server or (from a worker) on one that is up.
    let artifact_links = if id.provider == "Webhook" && !inputs.is_empty() {
        let base = match &s.public_url {
            Some(url) => Some(url.clone()),
            None => {
                db::workers::a_server_url(&mut conn, s.clock.now() - time::Duration::seconds(30))
                    .await?
            }
        };
        base.map(|base| crate::artifacts::links::Links {
            base,
            key: s.root_key.derive(crate::artifacts::links::KEY_LABEL),
        })
    } else {
        None
    };
    Ok(Some(Ok(Prepared {
        context: providers::Context {
            pipeline_name: decl.name.clone(),
            pipeline_id: row.pipeline_id,
            stage_name: stage_name.clone(),
            execution_id: row.id,
            attempt_id: action_execution_id,
            action,
            configuration: resolved,
            inputs,
            key,
            store,
            artifact_limit: s.artifact_limit,
            revision,
            log: providers::log::Log::discarding(),
            runner: s.runner.clone(),
            git_credentials,
            deploy_root: s.deploy_root.clone(),
            webhooks: Some(s.webhooks.clone()),
            artifact_links,
        },
        action_execution_id,
        secrets,
    })))
}

/// A worker finished an action job: the job is finished under its lease and the action's attempt
/// ends, in one transaction, so a result is recorded exactly once and never by a worker that lost
/// its lease (`Ok(false)`: nothing was written). The engine's own work: no person asked for it,
/// so nothing is authorized or audited as a person's act (as `Caller::engine` would do), and it
/// runs in a transaction of its own rather than through `Op` (whose futures a spawned worker
/// task cannot hold).
pub async fn finish_action_job(
    s: &Services,
    claimed: &db::jobs::Claimed,
    result: &Result<providers::Output, String>,
) -> Result<bool, AppError> {
    let job = ActionJob::of(&claimed.payload)?;
    let now = s.clock.now();
    let succeeded = result.is_ok();
    let error = result.as_ref().err().map(String::as_str);
    let outcome = if succeeded {
        db::jobs::Outcome::Succeeded
    } else {
        db::jobs::Outcome::Failed
    };
    let mut tx = s.pool.begin().await?;
    if !db::jobs::finish(&mut tx, claimed.id, claimed.lease, outcome, error, now).await? {
        return Ok(false);
    }
    let (summary, variables, artifacts, commits) = match result {
        Ok(output) => (
            output.summary.clone(),
            json!(output.variables),
            json!(
                output
                    .artifacts
                    .iter()
                    .map(|(name, stored)| (
                        name.clone(),
                        json!({"address": stored.address.as_str(), "size": stored.size})
                    ))
                    .collect::<serde_json::Map<_, _>>()
            ),
            (!output.commits.is_empty()).then(|| json!(output.commits)),
        ),
        Err(summary) => (Some(summary.clone()), json!({}), json!({}), None),
    };
    let attempt = i32::try_from(job.attempt).map_err(|_| corrupt("attempt"))?;
    db::executions::set_action_output(
        &mut tx,
        job.execution_id,
        index(job.stage),
        index(job.action),
        attempt,
        summary.as_deref(),
        &variables,
        &artifacts,
        commits.as_ref(),
    )
    .await?;
    let queued = end_attempt(&mut tx, now, job, succeeded).await?;
    tx.commit().await?;
    wake_for(s, queued);
    tracing::debug!(
        job = claimed.id,
        ms = (s.clock.now() - now).as_seconds_f64() * 1000.0,
        "job finished and the engine moved on"
    );
    Ok(true)
}

/// The rescuer gave up on an action job (its workers kept stopping answering): its attempt fails.
pub async fn abandon_action_job(s: &Services, payload: &serde_json::Value) -> Result<(), AppError> {
    let job = ActionJob::of(payload)?;
    let now = s.clock.now();
    let mut tx = s.pool.begin().await?;
    let queued = end_attempt(&mut tx, now, job, false).await?;
    tx.commit().await?;
    wake_for(s, queued);
    Ok(())
}

/// Wakes as many of this process's idle workers as there are new jobs (each takes one), rather
/// than every idle worker for each commit: on two cores a herd of empty claims delays the ones
/// that find work.
pub(super) fn wake_for(s: &Services, jobs: usize) {
    for _ in 0..jobs {
        s.wake.notify_one();
    }
}

/// Ends an attempt through the planner; how many actions that started (jobs queued).
pub(super) async fn end_attempt(
    conn: &mut sqlx::PgConnection,
    now: OffsetDateTime,
    job: ActionJob,
    succeeded: bool,
) -> Result<usize, AppError> {
    match advance(
        conn,
        now,
        job.pipeline_id,
        Change::Event(Event::ActionCompleted {
            id: job.execution_id,
            stage: job.stage,
            action: job.action,
            attempt: job.attempt,
            succeeded,
        }),
        None,
    )
    .await
    {
        Ok(queued) => Ok(queued),
        // The pipeline was deleted meanwhile: there is nothing left to move on.
        Err(AppError::NotFound { .. }) => Ok(0),
        Err(e) => Err(e),
    }
}

pub(super) fn stage_not_found(name: &str, stage: &str) -> AppError {
    AppError::NotFound {
        code: "StageNotFoundException",
        message: format!("The pipeline '{name}' has no stage '{stage}'"),
    }
}

/// RetryStageExecution: the stage of a failed or stopped execution runs again, its failed
/// actions only or all of them.
pub async fn retry_stage_execution(
    s: &Services,
    c: &Caller,
    name: &str,
    stage: &str,
    execution_id: Uuid,
    all_actions: bool,
) -> Result<Uuid, AppError> {
    let done = Op::run(
        s,
        c,
        Kind::Change,
        Action::RetryStageExecution,
        Resource::stage(name, stage),
        json!({"pipelineName": name, "stageName": stage, "pipelineExecutionId": execution_id,
               "retryMode": if all_actions { "ALL_ACTIONS" } else { "FAILED_ACTIONS" }}),
        async |op| {
            let now = op.now();
            let (pipeline, _) = owning_pipeline(op.conn(), name, execution_id).await?;
            let decl = declaration(op.conn(), pipeline.id, pipeline.current_version).await?;
            if !decl.stages.iter().any(|st| st.name == stage) {
                return Err(stage_not_found(name, stage));
            }
            advance(
                op.conn(),
                now,
                pipeline.id,
                Change::Event(Event::Retry {
                    id: execution_id,
                    stage: stage.to_string(),
                    all_actions,
                }),
                None,
            )
            .await?;
            Ok(execution_id)
        },
    )
    .await?;
    // Work it queued starts at once on this process's workers.
    s.wake.notify_waiters();
    Ok(done)
}

fn unable_to_roll_back(message: String) -> AppError {
    AppError::Rejected {
        code: "UnableToRollbackStageException",
        message,
    }
}

/// RollbackStage: a ROLLBACK execution that re-runs the stage with the source revisions,
/// variables and artifacts of `target`, which must have succeeded in that stage on the
/// pipeline's current version (and not be a rollback itself); not the source stage, not in
/// PARALLEL mode, not while the stage runs.
pub async fn rollback_stage(
    s: &Services,
    c: &Caller,
    name: &str,
    stage: &str,
    target: Uuid,
) -> Result<Uuid, AppError> {
    let done = Op::run(
        s,
        c,
        Kind::Change,
        Action::RollbackStage,
        Resource::stage(name, stage),
        json!({"pipelineName": name, "stageName": stage, "targetPipelineExecutionId": target}),
        async |op| {
            let now = op.now();
            let (pipeline, target_row) = owning_pipeline(op.conn(), name, target).await?;
            let decl = declaration(op.conn(), pipeline.id, pipeline.current_version).await?;
            let index = decl
                .stages
                .iter()
                .position(|st| st.name == stage)
                .ok_or_else(|| stage_not_found(name, stage))?;
            let trigger = Trigger {
                trigger_type: "ManualRollback",
                detail: Resource::user(op.caller().user_name()).to_string(),
            };
            let id = start_rollback(
                op.conn(),
                now,
                &pipeline,
                &decl,
                index,
                &target_row,
                trigger,
            )
            .await?;
            op.add_audit_param("pipelineExecutionId", json!(id));
            Ok(id)
        },
    )
    .await?;
    s.wake.notify_waiters();
    Ok(done)
}

/// Starts a ROLLBACK execution of stage `index` with `target`'s revisions, variables and
/// artifacts, after CodePipeline's checks.
async fn start_rollback(
    conn: &mut sqlx::PgConnection,
    now: OffsetDateTime,
    pipeline: &db::pipelines::PipelineRow,
    decl: &PipelineDeclaration,
    index: usize,
    target: &ExecutionRow,
    trigger: Trigger,
) -> Result<Uuid, AppError> {
    let new = rollback_execution(conn, pipeline, decl, index, target, trigger).await?;
    let id = new.id;
    advance(conn, now, pipeline.id, Change::Start(Box::new(new)), None).await?;
    Ok(id)
}

/// A ROLLBACK execution of stage `index` with `target`'s revisions, variables and artifacts,
/// after CodePipeline's checks; not started yet.
async fn rollback_execution(
    conn: &mut sqlx::PgConnection,
    pipeline: &db::pipelines::PipelineRow,
    decl: &PipelineDeclaration,
    index: usize,
    target: &ExecutionRow,
    trigger: Trigger,
) -> Result<NewExecution, AppError> {
    let stage = &decl.stages[index].name;
    if mode_of(decl) == ExecutionMode::Parallel {
        return Err(unable_to_roll_back(
            "a PARALLEL pipeline's stages cannot be rolled back".into(),
        ));
    }
    if index == 0 {
        return Err(unable_to_roll_back(
            "the source stage cannot be rolled back".into(),
        ));
    }
    if target.pipeline_version != pipeline.current_version {
        return Err(AppError::Rejected {
            code: "PipelineExecutionOutdatedException",
            message: format!(
                "The execution {} ran version {} of the pipeline; rollbacks go to an execution of the current version ({})",
                target.id, target.pipeline_version, pipeline.current_version
            ),
        });
    }
    if db::executions::rollback_of(conn, target.id)
        .await?
        .is_some()
    {
        return Err(unable_to_roll_back(format!(
            "the execution {} is a rollback itself; roll back to the execution it went back to",
            target.id
        )));
    }
    let ran = db::executions::stage_status(conn, target.id, index_i32(index)).await?;
    if ran.as_deref() != Some("Succeeded") {
        return Err(unable_to_roll_back(format!(
            "the execution {} did not succeed in the stage {stage}",
            target.id
        )));
    }
    if target.artifacts_expired_at.is_some() {
        return Err(unable_to_roll_back(format!(
            "the artifacts of the execution {} were deleted",
            target.id
        )));
    }
    // Under the runs lock, so that of two rollbacks asked at once the second sees the first.
    db::executions::lock_runs(conn, pipeline.id)
        .await?
        .ok_or_else(|| pipeline_not_found(&pipeline.name))?;
    let runs = db::executions::runs_state(conn, pipeline.id, None).await?;
    let busy = runs.executions.iter().any(|e| {
        matches!(e.place.as_str(), "in" | "waiting") && e.place_stage == Some(index_i32(index))
    });
    if busy {
        return Err(unable_to_roll_back(format!(
            "the stage {stage} is running or has an execution waiting for it; roll back once it has ended"
        )));
    }
    Ok(NewExecution {
        id: Uuid::new_v4(),
        version: pipeline.current_version,
        shape: Arc::new(Shape::of_declaration(decl)),
        trigger,
        variables: target.variables.clone(),
        client_request_token: None,
        source_revisions: target.source_revisions.clone(),
        rollback: Some((index, target.id)),
    })
}

/// What a stage's `onFailure` asks for once it failed in a STANDARD execution: one automatic
/// retry (RETRY), or a ROLLBACK execution to the last execution that succeeded there on the
/// same version (ROLLBACK; none such, nothing happens). `None` when there is nothing to do.
async fn on_failure(
    conn: &mut sqlx::PgConnection,
    now: OffsetDateTime,
    pipeline_id: Uuid,
    id: Uuid,
    stage: usize,
) -> Result<Option<Change>, AppError> {
    let Some(row) = db::executions::get(conn, id).await? else {
        return Ok(None);
    };
    if db::executions::rollback_of(conn, id).await?.is_some() {
        return Ok(None);
    }
    let decl = declaration(conn, pipeline_id, row.pipeline_version).await?;
    let Some(rule) = decl.stages.get(stage).and_then(|st| st.on_failure.as_ref()) else {
        return Ok(None);
    };
    match rule.result.as_deref() {
        Some("RETRY") => {
            if !db::executions::auto_retry_once(conn, id, index_i32(stage), now).await? {
                return Ok(None);
            }
            let all_actions = rule
                .retry_configuration
                .as_ref()
                .and_then(|r| r.retry_mode.as_deref())
                == Some("ALL_ACTIONS");
            Ok(Some(Change::Event(Event::Retry {
                id,
                stage: decl.stages[stage].name.clone(),
                all_actions,
            })))
        }
        Some("ROLLBACK") => {
            let Some(pipeline) = db::pipelines::find_by_id(conn, pipeline_id).await? else {
                return Ok(None);
            };
            if pipeline.current_version != row.pipeline_version {
                return Ok(None);
            }
            let Some(target) = db::executions::last_good_in_stage(
                conn,
                pipeline_id,
                row.pipeline_version,
                index_i32(stage),
                id,
            )
            .await?
            else {
                tracing::info!(execution = %id, stage, "no earlier execution succeeded in the stage: nothing to roll back to");
                return Ok(None);
            };
            let Some(target_row) = db::executions::get(conn, target).await? else {
                return Ok(None);
            };
            let trigger = Trigger {
                trigger_type: "AutomatedRollback",
                detail: format!("the stage {} failed in {id}", decl.stages[stage].name),
            };
            match rollback_execution(conn, &pipeline, &decl, stage, &target_row, trigger).await {
                Ok(new) => Ok(Some(Change::Start(Box::new(new)))),
                Err(AppError::Rejected { message, .. }) => {
                    tracing::info!(execution = %id, stage, "no automatic rollback: {message}");
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        }
        _ => Ok(None),
    }
}

fn index_i32(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

/// EnableStageTransition / DisableStageTransition. `outbound` names the transition out of
/// `stage` (the inbound transition of the stage after it); the first stage has no inbound
/// transition, the last no outbound one. Disabling needs a reason.
pub async fn set_stage_transition(
    s: &Services,
    c: &Caller,
    name: &str,
    stage: &str,
    outbound: bool,
    disabled_reason: Option<String>,
) -> Result<(), AppError> {
    let action = if disabled_reason.is_some() {
        Action::DisableStageTransition
    } else {
        Action::EnableStageTransition
    };
    Op::run(
        s,
        c,
        Kind::Change,
        action,
        Resource::stage(name, stage),
        json!({"pipelineName": name, "stageName": stage,
               "transitionType": if outbound { "Outbound" } else { "Inbound" }, "reason": disabled_reason}),
        async |op| {
            let now = op.now();
            let pipeline = db::pipelines::find(op.conn(), super::pipelines::existing_name(name)?)
                .await?
                .ok_or_else(|| pipeline_not_found(name))?;
            let decl = declaration(op.conn(), pipeline.id, pipeline.current_version).await?;
            let index = decl
                .stages
                .iter()
                .position(|st| st.name == stage)
                .ok_or_else(|| stage_not_found(name, stage))?;
            let gate = if outbound { index + 1 } else { index };
            let gated = decl
                .stages
                .get(gate)
                .filter(|_| gate > 0)
                .ok_or_else(|| {
                    AppError::validation(
                        "transitionType",
                        if outbound {
                            "the last stage has no outbound transition"
                        } else {
                            "the first stage has no inbound transition"
                        },
                    )
                })?
                .name
                .clone();
            if let Some(reason) = &disabled_reason {
                let valid = (1..=300).contains(&reason.chars().count())
                    && reason.chars().all(|ch| {
                        ch.is_ascii_alphanumeric() || "!@ ().*?-".contains(ch)
                    });
                if !valid {
                    return Err(AppError::validation(
                        "reason",
                        "must be 1-300 of letters, digits, spaces and ! @ ( ) . * ? -",
                    ));
                }
            }
            let by = Resource::user(op.caller().user_name()).to_string();
            db::executions::set_transition(
                op.conn(),
                pipeline.id,
                &gated,
                disabled_reason.as_deref().map(|r| (r, by.as_str(), now)),
            )
            .await?;
            advance(
                op.conn(),
                now,
                pipeline.id,
                Change::Event(Event::Transition {
                    stage: gated,
                    enabled: disabled_reason.is_none(),
                }),
                None,
            )
            .await?;
            Ok(())
        },
    )
    .await?;
    // Work it queued starts at once on this process's workers.
    s.wake.notify_waiters();
    Ok(())
}

/// ListPipelineExecutions: newest first, a page at a time; only those that succeeded in a stage,
/// or (the console's filter) those with a status, when asked.
pub async fn list_pipeline_executions(
    s: &Services,
    c: &Caller,
    name: &str,
    succeeded_in_stage: Option<&str>,
    status: Option<ExecutionStatus>,
    page: &super::Page,
) -> Result<super::Paged<ExecutionView>, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::ListPipelineExecutions,
        Resource::pipeline(name),
        json!({"pipelineName": name, "filter": {"succeededInStage": succeeded_in_stage}}),
        async |op| {
            let limit = page.limit()?;
            let before = match &page.next {
                None => None,
                Some(t) => Some(t.parse::<i64>().map_err(|_| AppError::Rejected {
                    code: "InvalidNextTokenException",
                    message: "nextToken is not a token from an earlier page".into(),
                })?),
            };
            let pipeline = db::pipelines::find(op.conn(), super::pipelines::existing_name(name)?)
                .await?
                .ok_or_else(|| pipeline_not_found(name))?;
            let rows = db::executions::history(
                op.conn(),
                pipeline.id,
                before,
                succeeded_in_stage,
                status.map(ExecutionStatus::as_str),
                limit + 1,
            )
            .await?;
            let paged = super::Paged::from_rows(rows, limit, |r| r.seq.to_string());
            Ok(super::Paged {
                items: views(op.conn(), &pipeline.name, paged.items).await?,
                next: paged.next,
            })
        },
    )
    .await
}

/// GetPipelineState's view of one stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StageStateView {
    pub name: String,
    /// The execution that entered the stage last, and its status there.
    pub latest: Option<(Uuid, String)>,
    /// Executions waiting in front of the stage, first arrived first.
    pub inbound: Vec<Uuid>,
    /// `None` when enabled; else (reason, changed by, changed at).
    pub disabled: Option<(String, String, OffsetDateTime)>,
    pub actions: Vec<ActionStateView>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActionStateView {
    pub name: String,
    /// The latest execution's attempt of this action: (id, status, summary, last change).
    pub latest: Option<(String, String, Option<String>, OffsetDateTime)>,
    /// When that attempt is a manual approval: its token, answers and rules.
    pub approval: Option<super::approvals::ApprovalView>,
}

/// The newest execution of each named pipeline the caller may list the executions of (the
/// pipelines list's "Latest execution" column; no source revisions): by pipeline name, absent
/// when it has none or the caller may not see it. Part of listing pipelines, so it is authorized like that.
pub async fn latest_executions(
    s: &Services,
    c: &Caller,
    names: &[String],
) -> Result<HashMap<String, ExecutionView>, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::ListPipelines,
        Resource::All,
        json!({"latestExecutions": names.len()}),
        async |op| {
            let visible: Vec<String> = names
                .iter()
                .filter(|n| {
                    op.caller()
                        .can(Action::ListPipelineExecutions, &Resource::pipeline(n))
                })
                .take(1000)
                .cloned()
                .collect();
            // One query for the page, without source revisions (the list does not show them).
            let rows = db::executions::latest_of_pipelines(op.conn(), &visible).await?;
            Ok(rows
                .into_iter()
                .map(|(name, row)| {
                    let v = view(&name, row);
                    (name, v)
                })
                .collect())
        },
    )
    .await
}

/// GetPipelineState: each stage of the current version, with the latest execution in it, its
/// inbound executions, its inbound transition and its actions' latest attempts.
pub async fn get_pipeline_state(
    s: &Services,
    c: &Caller,
    name: &str,
) -> Result<(db::pipelines::PipelineRow, Vec<StageStateView>), AppError> {
    let (row, _, stages) = get_pipeline_state_with_declaration(s, c, name).await?;
    Ok((row, stages))
}

/// [`get_pipeline_state`] with the current version's declaration it was read against (as it may
/// be shown: secrets masked), in one transaction: the live pipeline view draws from both.
pub async fn get_pipeline_state_with_declaration(
    s: &Services,
    c: &Caller,
    name: &str,
) -> Result<
    (
        db::pipelines::PipelineRow,
        Arc<PipelineDeclaration>,
        Vec<StageStateView>,
    ),
    AppError,
> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::GetPipelineState,
        Resource::pipeline(name),
        json!({"name": name}),
        async |op| {
            // One round trip for the state; declarations come from the caches.
            let state =
                db::executions::view_state(op.conn(), super::pipelines::existing_name(name)?)
                    .await?
                    .ok_or_else(|| pipeline_not_found(name))?;
            let db::executions::ViewState {
                pipeline,
                latest,
                transitions,
                waiting: waiting_rows,
                versions: pinned_versions,
                stage_status,
                mut attempts,
            } = state;
            let decl = declaration(op.conn(), pipeline.id, pipeline.current_version).await?;
            let latest: HashMap<String, Uuid> = latest.into_iter().collect();
            let disabled: HashMap<String, (String, String, OffsetDateTime)> = transitions
                .into_iter()
                .map(|(stage, reason, by, at)| (stage, (reason, by, at)))
                .collect();
            // Stage names of the versions executions pinned, read once each.
            let mut versions: HashMap<i32, Arc<PipelineDeclaration>> = HashMap::new();
            versions.insert(pipeline.current_version, decl.clone());
            let mut waiting: Vec<(i64, String, Uuid)> = Vec::new();
            for (id, version, place_stage, since) in waiting_rows {
                let Some(stage) = place_stage else { continue };
                if let std::collections::hash_map::Entry::Vacant(slot) = versions.entry(version) {
                    slot.insert(declaration(op.conn(), pipeline.id, version).await?);
                }
                if let Some(stage_name) = usize::try_from(stage)
                    .ok()
                    .and_then(|i| versions[&version].stages.get(i))
                    .map(|st| st.name.clone())
                {
                    waiting.push((since.unwrap_or(0), stage_name, id));
                }
            }
            waiting.sort();
            // Approval details only for attempts of approval actions (their own reads).
            let mut approval_attempts = Vec::new();
            for ((execution, stage_index), rows) in &attempts {
                let Some(&version) = pinned_versions.get(execution) else {
                    continue;
                };
                if let std::collections::hash_map::Entry::Vacant(slot) = versions.entry(version) {
                    slot.insert(declaration(op.conn(), pipeline.id, version).await?);
                }
                let stage = usize::try_from(*stage_index)
                    .ok()
                    .and_then(|si| versions[&version].stages.get(si));
                for a in rows {
                    let category = stage
                        .and_then(|st| {
                            usize::try_from(a.action_index)
                                .ok()
                                .and_then(|ai| st.actions.get(ai))
                        })
                        .map(|x| x.action_type_id.category.as_str());
                    if category == Some("Approval") {
                        approval_attempts.push(a.id);
                    }
                }
            }
            let mut approvals =
                super::approvals::of_attempts(op.conn(), &approval_attempts).await?;
            let mut stages = Vec::new();
            for stage in &decl.stages {
                let mut view = StageStateView {
                    name: stage.name.clone(),
                    latest: None,
                    inbound: waiting
                        .iter()
                        .filter(|(_, n, _)| *n == stage.name)
                        .map(|(_, _, id)| *id)
                        .collect(),
                    disabled: disabled.get(&stage.name).cloned(),
                    actions: stage
                        .actions
                        .iter()
                        .map(|a| ActionStateView {
                            name: a.name.clone(),
                            latest: None,
                            approval: None,
                        })
                        .collect(),
                };
                if let Some(id) = latest.get(&stage.name)
                    && let Some(version) = pinned_versions.get(id)
                {
                    let pinned = versions[version].clone();
                    if let Some(position) =
                        pinned.stages.iter().position(|st| st.name == stage.name)
                    {
                        let at = index(position);
                        if let Some(status) = stage_status.get(&(*id, at)) {
                            view.latest = Some((*id, status.clone()));
                        }
                        for a in attempts.remove(&(*id, at)).unwrap_or_default() {
                            let Some(action_name) = usize::try_from(a.action_index)
                                .ok()
                                .and_then(|i| pinned.stages[position].actions.get(i))
                                .map(|x| x.name.clone())
                            else {
                                continue;
                            };
                            if let Some(v) = view.actions.iter_mut().find(|v| v.name == action_name)
                            {
                                v.approval = approvals.remove(&a.id);
                                v.latest =
                                    Some((a.id.to_string(), a.status, a.summary, a.updated_at));
                            }
                        }
                    }
                }
                stages.push(view);
            }
            let shown = super::pipelines::shown_declaration(
                s,
                op.conn(),
                &pipeline,
                pipeline.current_version,
            )
            .await?;
            Ok((pipeline, shown, stages))
        },
    )
    .await
}

/// An action attempt as ListActionExecutions shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptView {
    pub id: Uuid,
    pub execution_id: Uuid,
    pub pipeline_version: i32,
    pub stage_name: String,
    pub action_name: String,
    pub attempt: i32,
    pub status: String,
    pub started: OffsetDateTime,
    pub updated: OffsetDateTime,
    /// When a worker claimed it: from `started` until then it waited in the queue.
    pub claimed: Option<OffsetDateTime>,
    pub summary: Option<String>,
    /// The action as declared in the execution's version (secrets masked).
    pub action: crate::pipeline::wire::ActionDeclaration,
    /// Its configuration as it ran (references resolved, secrets masked); none before it started.
    pub resolved_configuration: Option<serde_json::Value>,
    pub input_artifacts: Vec<(String, String)>,
    pub output_artifacts: Vec<(String, String)>,
    pub output_variables: serde_json::Value,
    /// When the attempt is a manual approval: its token, answers and rules.
    pub approval: Option<super::approvals::ApprovalView>,
}

/// ListActionExecutions' filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptFilter {
    pub execution_id: Option<Uuid>,
}

/// ListActionExecutions: a pipeline's action attempts, newest first, `nextToken` paged.
pub async fn list_action_executions(
    s: &Services,
    c: &Caller,
    name: &str,
    filter: &AttemptFilter,
    page: &super::Page,
) -> Result<super::Paged<AttemptView>, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::ListActionExecutions,
        Resource::pipeline(name),
        json!({"pipelineName": name, "filter": {"pipelineExecutionId": filter.execution_id}}),
        async |op| {
            let limit = page.limit()?;
            let bad_token = || AppError::Rejected {
                code: "InvalidNextTokenException",
                message: "nextToken is not a token from an earlier page".into(),
            };
            let after = match &page.next {
                None => None,
                Some(t) => {
                    let (nanos, id) = t.split_once('_').ok_or_else(bad_token)?;
                    let nanos: i128 = nanos.parse().map_err(|_| bad_token())?;
                    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos)
                        .map_err(|_| bad_token())?;
                    Some((at, id.parse::<Uuid>().map_err(|_| bad_token())?))
                }
            };
            let pipeline = db::pipelines::find(op.conn(), super::pipelines::existing_name(name)?)
                .await?
                .ok_or_else(|| pipeline_not_found(name))?;
            if let Some(id) = filter.execution_id {
                db::executions::get(op.conn(), id)
                    .await?
                    .filter(|e| e.pipeline_id == pipeline.id)
                    .ok_or_else(|| execution_not_found(id, name))?;
            }
            let rows = db::executions::attempts_page(
                op.conn(),
                pipeline.id,
                filter.execution_id,
                after,
                limit + 1,
            )
            .await?;
            let paged = super::Paged::from_rows(rows, limit, |r| {
                format!("{}_{}", r.started_at.unix_timestamp_nanos(), r.id)
            });
            let mut versions = HashMap::new();
            let mut items = Vec::with_capacity(paged.items.len());
            for row in paged.items {
                items.push(attempt_view(op.conn(), pipeline.id, &mut versions, row).await?);
            }
            let ids: Vec<Uuid> = items.iter().map(|a| a.id).collect();
            let mut approvals = super::approvals::of_attempts(op.conn(), &ids).await?;
            for item in &mut items {
                item.approval = approvals.remove(&item.id);
            }
            Ok(super::Paged {
                items,
                next: paged.next,
            })
        },
    )
    .await
}

async fn attempt_view(
    conn: &mut sqlx::PgConnection,
    pipeline_id: Uuid,
    versions: &mut HashMap<i32, PipelineDeclaration>,
    row: db::executions::AttemptDetailRow,
) -> Result<AttemptView, AppError> {
    if let std::collections::hash_map::Entry::Vacant(slot) = versions.entry(row.pipeline_version) {
        let decl = declaration(conn, pipeline_id, row.pipeline_version).await?;
        slot.insert(super::pipelines::masked((*decl).clone()));
    }
    let decl = &versions[&row.pipeline_version];
    let stage = usize::try_from(row.stage_index)
        .ok()
        .and_then(|i| decl.stages.get(i))
        .ok_or_else(|| corrupt("an attempt's stage"))?;
    let action = usize::try_from(row.action_index)
        .ok()
        .and_then(|i| stage.actions.get(i))
        .ok_or_else(|| corrupt("an attempt's action"))?;
    let artifacts = |v: &Option<serde_json::Value>| -> Vec<(String, String)> {
        v.as_ref()
            .and_then(|v| v.as_object())
            .into_iter()
            .flatten()
            .map(|(name, stored)| {
                (
                    name.clone(),
                    stored["address"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    Ok(AttemptView {
        id: row.id,
        execution_id: row.execution_id,
        pipeline_version: row.pipeline_version,
        stage_name: stage.name.clone(),
        action_name: action.name.clone(),
        attempt: row.attempt,
        status: row.status,
        started: row.started_at,
        updated: row.updated_at,
        claimed: row.claimed_at,
        summary: row.summary,
        action: action.clone(),
        resolved_configuration: row.resolved_configuration,
        input_artifacts: artifacts(&row.input_artifacts),
        output_artifacts: artifacts(&row.output_artifacts),
        output_variables: row.output_variables.unwrap_or_else(|| json!({})),
        approval: None,
    })
}

/// A page of an attempt's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    pub attempt: AttemptView,
    pub lines: Vec<db::logs::LogLine>,
    /// The line to ask for next.
    pub next_line: i32,
    /// The attempt has ended and every line is here: asking again brings nothing new.
    pub complete: bool,
}

/// The most lines one page of a log holds.
pub const LOG_PAGE_LIMIT: i64 = 10_000;

/// GetActionExecutionLog (Sluice's): an attempt's log from line `from` on; allowed with
/// `codepipeline:ListActionExecutions` on its pipeline. `from` 0 asks for the last `max` lines.
pub async fn action_log(
    s: &Services,
    c: &Caller,
    name: &str,
    attempt_id: Uuid,
    from: i32,
    max: i64,
) -> Result<LogPage, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::ListActionExecutions,
        Resource::pipeline(name),
        json!({"pipelineName": name, "actionExecutionId": attempt_id, "startLine": from}),
        async |op| {
            if !(1..=LOG_PAGE_LIMIT).contains(&max) {
                return Err(AppError::validation(
                    "maxLines",
                    format!("must be between 1 and {LOG_PAGE_LIMIT}"),
                ));
            }
            if from < 0 {
                return Err(AppError::validation("startLine", "must be 0 or more"));
            }
            let not_found = || AppError::NotFound {
                code: "ActionExecutionNotFoundException",
                message: format!("The pipeline '{name}' has no action execution {attempt_id}"),
            };
            let pipeline = db::pipelines::find(op.conn(), super::pipelines::existing_name(name)?)
                .await?
                .ok_or_else(|| pipeline_not_found(name))?;
            let row = db::executions::attempt(op.conn(), attempt_id)
                .await?
                .filter(|a| a.pipeline_id == pipeline.id)
                .ok_or_else(not_found)?;
            // Read before the lines: an attempt seen ended has all its lines written.
            let ended = row.status != "InProgress";
            let lines = if from == 0 {
                db::logs::tail(op.conn(), attempt_id, max).await?
            } else {
                db::logs::page(op.conn(), attempt_id, from, max).await?
            };
            let next_line = lines.last().map_or(from.max(1), |l| l.line + 1);
            let complete = ended && (from == 0 || i64::try_from(lines.len()).unwrap_or(0) < max);
            let mut versions = HashMap::new();
            let attempt = attempt_view(op.conn(), pipeline.id, &mut versions, row).await?;
            Ok(LogPage {
                attempt,
                lines,
                next_line,
                complete,
            })
        },
    )
    .await
}

/// Before a pipeline is deleted (in the deletion's transaction): its running actions' jobs are
/// cancelled, so their workers stop at once (the cancellation NOTIFY) and can record nothing;
/// the executions themselves go with the pipeline. Returns how many executions were unfinished.
pub(super) async fn stop_all_before_delete(
    conn: &mut sqlx::PgConnection,
    now: OffsetDateTime,
    pipeline_id: Uuid,
) -> Result<i64, AppError> {
    if db::executions::lock_runs(conn, pipeline_id)
        .await?
        .is_none()
    {
        return Ok(0);
    }
    let (jobs, unfinished) = db::executions::running_of_pipeline(conn, pipeline_id).await?;
    for job in jobs {
        db::jobs::cancel(conn, job, now).await?;
    }
    Ok(unfinished)
}

/// An artifact of an execution, ready to be opened for a download.
pub struct ArtifactDownload {
    pub store: Arc<crate::artifacts::store::ArtifactStore>,
    pub key: DataKey,
    pub address: crate::artifacts::store::Address,
    pub name: String,
}

/// An execution's artifact by name (the latest succeeded attempt's that produced it), for those
/// allowed `codepipeline:GetPipelineExecution` on its pipeline.
pub async fn artifact_download(
    s: &Services,
    c: &Caller,
    name: &str,
    execution_id: Uuid,
    artifact: &str,
) -> Result<ArtifactDownload, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::GetPipelineExecution,
        Resource::pipeline(name),
        json!({"pipelineName": name, "pipelineExecutionId": execution_id, "artifact": artifact}),
        async |op| {
            let (pipeline, row) = owning_pipeline(op.conn(), name, execution_id).await?;
            if let Some(at) = row.artifacts_expired_at {
                return Err(AppError::NotFound {
                    code: "ArtifactNotFoundException",
                    message: format!(
                        "The artifacts of execution {execution_id} were deleted on {} (they are kept for {} days)",
                        at.date(),
                        s.artifact_retention.whole_days()
                    ),
                });
            }
            let mut found = None;
            for (_, _, _, artifacts) in db::executions::outputs_of(op.conn(), row.id).await? {
                if let Some(address) = artifacts
                    .get(artifact)
                    .and_then(|a| a.get("address"))
                    .and_then(|a| a.as_str())
                    .and_then(crate::artifacts::store::Address::parse)
                {
                    found = Some(address);
                }
            }
            let address = found.ok_or_else(|| AppError::NotFound {
                code: "ArtifactNotFoundException",
                message: format!(
                    "The execution {execution_id} produced no artifact named {artifact}"
                ),
            })?;
            let store = s.artifacts.clone().ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("this server has no artifact store"))
            })?;
            let key = data_key(s, op.conn(), pipeline.id).await?;
            Ok(ArtifactDownload {
                store,
                key,
                address,
                name: artifact.to_string(),
            })
        },
    )
    .await
}

/// The artifact a signed link grants (`artifacts::links`): the link is the authority, so no
/// caller is asked; a link to a pipeline that is gone, or with a bad signature or past its
/// expiry, finds nothing.
pub async fn linked_artifact(s: &Services, token: &str) -> Result<ArtifactDownload, AppError> {
    let not_found = || AppError::NotFound {
        code: "ArtifactNotFoundException",
        message: "This artifact link is not valid (it may have expired)".into(),
    };
    let key = s.root_key.derive(crate::artifacts::links::KEY_LABEL);
    let link = crate::artifacts::links::verify(&key, token, s.clock.now().unix_timestamp())
        .map_err(|_| not_found())?;
    let mut conn = s.pool.acquire().await?;
    if db::pipelines::find_by_id(&mut conn, link.pipeline_id)
        .await?
        .is_none()
    {
        return Err(not_found());
    }
    let store = s
        .artifacts
        .clone()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("this server has no artifact store")))?;
    let data_key = data_key(s, &mut conn, link.pipeline_id).await?;
    Ok(ArtifactDownload {
        store,
        key: data_key,
        address: link.address,
        name: link.name,
    })
}

/// The retention task: deletes the artifacts of finished executions started longer ago than
/// the retention, and records on each execution when (its page says so). The engine's own work,
/// run by the leader; a batch at a time. Returns how many executions it expired.
pub async fn expire_artifacts(s: &Services) -> Result<usize, AppError> {
    let Some(store) = s.artifacts.clone() else {
        return Ok(0);
    };
    let now = s.clock.now();
    let mut conn = s.pool.acquire().await?;
    let batch = db::executions::expiring(&mut conn, now - s.artifact_retention, 200).await?;
    let count = batch.len();
    for (id, addresses) in batch {
        for a in addresses
            .iter()
            .filter_map(|a| crate::artifacts::store::Address::parse(a))
        {
            store.delete(&a).await.map_err(|e| {
                AppError::Internal(anyhow::Error::new(e).context("deleting artifacts"))
            })?;
        }
        db::executions::set_artifacts_expired(&mut conn, id, now).await?;
    }
    Ok(count)
}
