//! Pipeline executions, their stages and action attempts, and the per-pipeline state the planner
//! needs (the runs lock, disabled transitions, the latest execution per stage).

use std::collections::HashMap;

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRow {
    pub id: Uuid,
    pub pipeline_id: Uuid,
    pub seq: i64,
    pub pipeline_version: i32,
    pub status: String,
    /// `waiting`, `in` or `finished`.
    pub place: String,
    pub place_stage: Option<i32>,
    pub waiting_since: Option<i64>,
    pub trigger_type: String,
    pub trigger_detail: String,
    pub variables: serde_json::Value,
    pub started_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub client_request_token: Option<String>,
    /// Source revision overrides: `[{actionName, revisionType, revisionValue}]`.
    pub source_revisions: serde_json::Value,
    pub stop_reason: Option<String>,
    /// When the retention task deleted its artifacts.
    pub artifacts_expired_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StageRow {
    pub execution_id: Uuid,
    pub stage_index: i32,
    pub status: String,
}

/// An action's latest attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    pub execution_id: Uuid,
    pub stage_index: i32,
    pub action_index: i32,
    pub attempt: i32,
    pub status: String,
}

/// The per-pipeline counters, locked until the transaction ends (created on first use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunsRow {
    pub next_seq: i64,
    pub clock: i64,
    /// The pipeline's name (read with the lock, for the events).
    pub pipeline_name: String,
    /// Its current version, whose execution mode rules its runs.
    pub current_version: i32,
    /// When its runs last changed.
    pub last_change_at: Option<OffsetDateTime>,
}

/// `None` when the pipeline does not exist (any more).
pub async fn lock_runs(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
) -> Result<Option<RunsRow>, sqlx::Error> {
    // One round trip: the upsert creates the row on first use and, either way, locks it.
    let row = sqlx::query!(
        r#"WITH up AS (
               INSERT INTO pipeline_runs (pipeline_id, next_seq, clock)
               SELECT $1, 1, 0 WHERE EXISTS (SELECT 1 FROM pipelines WHERE id = $1)
               ON CONFLICT (pipeline_id) DO UPDATE SET next_seq = pipeline_runs.next_seq
               RETURNING pipeline_id, next_seq, clock, last_change_at)
           SELECT up.next_seq, up.clock, up.last_change_at, p.name, p.current_version
           FROM up JOIN pipelines p ON p.id = up.pipeline_id"#,
        pipeline_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| RunsRow {
        next_seq: row.next_seq,
        clock: row.clock,
        pipeline_name: row.name,
        current_version: row.current_version,
        last_change_at: row.last_change_at,
    }))
}

pub async fn set_runs(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    runs: &RunsRow,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE pipeline_runs SET next_seq = $2, clock = $3, last_change_at = $4 WHERE pipeline_id = $1",
        pipeline_id,
        runs.next_seq,
        runs.clock,
        runs.last_change_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Disables a stage's inbound transition (`Some`), or enables it again (`None`).
pub async fn set_transition(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    stage_name: &str,
    disabled: Option<(&str, &str, OffsetDateTime)>,
) -> Result<(), sqlx::Error> {
    match disabled {
        Some((reason, by, at)) => {
            sqlx::query!(
                r#"INSERT INTO stage_transitions (pipeline_id, stage_name, reason, changed_by, changed_at)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (pipeline_id, stage_name) DO UPDATE
                   SET reason = EXCLUDED.reason, changed_by = EXCLUDED.changed_by, changed_at = EXCLUDED.changed_at"#,
                pipeline_id,
                stage_name,
                reason,
                by,
                at
            )
            .execute(conn)
            .await?;
        }
        None => {
            sqlx::query!(
                "DELETE FROM stage_transitions WHERE pipeline_id = $1 AND stage_name = $2",
                pipeline_id,
                stage_name
            )
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

pub async fn latest(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
) -> Result<Vec<(String, Uuid)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT stage_name, execution_id FROM stage_latest WHERE pipeline_id = $1",
        pipeline_id
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.stage_name, r.execution_id))
        .collect())
}

pub async fn set_latest(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    stage_name: &str,
    execution_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO stage_latest (pipeline_id, stage_name, execution_id) VALUES ($1, $2, $3)
           ON CONFLICT (pipeline_id, stage_name) DO UPDATE SET execution_id = EXCLUDED.execution_id"#,
        pipeline_id,
        stage_name,
        execution_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The pipeline's executions that are not finished, and `also` whatever its state.
pub async fn active(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    also: Option<Uuid>,
) -> Result<Vec<ExecutionRow>, sqlx::Error> {
    sqlx::query_as!(
        ExecutionRow,
        r#"SELECT id, pipeline_id, seq, pipeline_version, status, place, place_stage, waiting_since,
                  trigger_type, trigger_detail, variables, started_at, updated_at,
                  client_request_token, source_revisions, stop_reason, artifacts_expired_at
           FROM pipeline_executions
           WHERE pipeline_id = $1 AND (place <> 'finished' OR id = $2)
           ORDER BY seq"#,
        pipeline_id,
        also
    )
    .fetch_all(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<ExecutionRow>, sqlx::Error> {
    sqlx::query_as!(
        ExecutionRow,
        r#"SELECT id, pipeline_id, seq, pipeline_version, status, place, place_stage, waiting_since,
                  trigger_type, trigger_detail, variables, started_at, updated_at,
                  client_request_token, source_revisions, stop_reason, artifacts_expired_at
           FROM pipeline_executions WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// A page of a pipeline's executions, newest first, before `before_seq` when given; only those
/// whose stage named `succeeded_in` succeeded, when given (the stage's name in each execution's
/// own pinned version).
pub async fn history(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    before_seq: Option<i64>,
    succeeded_in: Option<&str>,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<ExecutionRow>, sqlx::Error> {
    sqlx::query_as!(
        ExecutionRow,
        r#"SELECT id, pipeline_id, seq, pipeline_version, status, place, place_stage, waiting_since,
                  trigger_type, trigger_detail, variables, started_at, updated_at,
                  client_request_token, source_revisions, stop_reason, artifacts_expired_at
           FROM pipeline_executions e
           WHERE pipeline_id = $1 AND ($2::bigint IS NULL OR seq < $2)
             AND ($4::text IS NULL OR EXISTS (
                 SELECT 1 FROM stage_executions s
                 JOIN pipeline_versions v ON v.pipeline_id = e.pipeline_id AND v.version = e.pipeline_version
                 WHERE s.execution_id = e.id AND s.status = 'Succeeded'
                   AND v.declaration -> 'stages' -> s.stage_index ->> 'name' = $4))
             AND ($5::text IS NULL OR status = $5)
           ORDER BY seq DESC LIMIT $3"#,
        pipeline_id,
        before_seq,
        limit,
        succeeded_in,
        status
    )
    .fetch_all(conn)
    .await
}

/// The newest execution of each named pipeline that has one, with its pipeline's name.
pub async fn latest_of_pipelines(
    conn: &mut PgConnection,
    names: &[String],
) -> Result<Vec<(String, ExecutionRow)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT p.name AS "pipeline_name!", e.id AS "id!", e.pipeline_id AS "pipeline_id!",
                  e.seq AS "seq!", e.pipeline_version AS "pipeline_version!", e.status AS "status!",
                  e.place AS "place!", e.place_stage, e.waiting_since,
                  e.trigger_type AS "trigger_type!", e.trigger_detail AS "trigger_detail!",
                  e.variables AS "variables!", e.started_at AS "started_at!",
                  e.updated_at AS "updated_at!", e.client_request_token,
                  e.source_revisions AS "source_revisions!", e.stop_reason, e.artifacts_expired_at
           FROM pipelines p
           CROSS JOIN LATERAL (
               SELECT * FROM pipeline_executions x WHERE x.pipeline_id = p.id
               ORDER BY x.seq DESC LIMIT 1) e
           WHERE p.name = ANY($1)"#,
        names
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.pipeline_name,
                ExecutionRow {
                    id: r.id,
                    pipeline_id: r.pipeline_id,
                    seq: r.seq,
                    pipeline_version: r.pipeline_version,
                    status: r.status,
                    place: r.place,
                    place_stage: r.place_stage,
                    waiting_since: r.waiting_since,
                    trigger_type: r.trigger_type,
                    trigger_detail: r.trigger_detail,
                    variables: r.variables,
                    started_at: r.started_at,
                    updated_at: r.updated_at,
                    client_request_token: r.client_request_token,
                    source_revisions: r.source_revisions,
                    stop_reason: r.stop_reason,
                    artifacts_expired_at: r.artifacts_expired_at,
                },
            )
        })
        .collect())
}

pub async fn stages_of(
    conn: &mut PgConnection,
    executions: &[Uuid],
) -> Result<Vec<StageRow>, sqlx::Error> {
    sqlx::query_as!(
        StageRow,
        r#"SELECT execution_id, stage_index, status FROM stage_executions
           WHERE execution_id = ANY($1) ORDER BY execution_id, stage_index"#,
        executions
    )
    .fetch_all(conn)
    .await
}

pub async fn insert(conn: &mut PgConnection, row: &ExecutionRow) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO pipeline_executions (id, pipeline_id, seq, pipeline_version, status, place,
               place_stage, waiting_since, trigger_type, trigger_detail, variables, started_at, updated_at,
               client_request_token, source_revisions, stop_reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"#,
        row.id,
        row.pipeline_id,
        row.seq,
        row.pipeline_version,
        row.status,
        row.place,
        row.place_stage,
        row.waiting_since,
        row.trigger_type,
        row.trigger_detail,
        row.variables,
        row.started_at,
        row.updated_at,
        row.client_request_token,
        row.source_revisions,
        row.stop_reason
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that a new execution is a ROLLBACK of `stage` with `target`'s artifacts.
pub async fn insert_rollback(
    conn: &mut PgConnection,
    id: Uuid,
    stage: i32,
    target: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO execution_rollbacks (execution_id, stage_index, target_execution_id) VALUES ($1, $2, $3)",
        id,
        stage,
        target
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A ROLLBACK execution's stage and target.
pub async fn rollback_of(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(i32, Uuid)>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT stage_index, target_execution_id FROM execution_rollbacks WHERE execution_id = $1",
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.stage_index, r.target_execution_id)))
}

/// The rollback targets of these executions (the ROLLBACK ones among them).
pub async fn rollback_targets(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT execution_id, target_execution_id FROM execution_rollbacks WHERE execution_id = ANY ($1)",
        ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.execution_id, r.target_execution_id))
        .collect())
}

/// The latest STANDARD execution on `version` whose stage `stage` succeeded, other than
/// `except`: where an automatic rollback goes back to.
pub async fn last_good_in_stage(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    version: i32,
    stage: i32,
    except: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT e.id FROM pipeline_executions e
           JOIN stage_executions s ON s.execution_id = e.id AND s.stage_index = $3
           WHERE e.pipeline_id = $1 AND e.pipeline_version = $2 AND s.status = 'Succeeded'
             AND e.id <> $4 AND e.artifacts_expired_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM execution_rollbacks r WHERE r.execution_id = e.id)
           ORDER BY e.seq DESC LIMIT 1"#,
        pipeline_id,
        version,
        stage,
        except
    )
    .fetch_optional(conn)
    .await
}

/// Whether an execution's stage was retried automatically already; records it if not.
pub async fn auto_retry_once(
    conn: &mut PgConnection,
    id: Uuid,
    stage: i32,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        r#"INSERT INTO stage_auto_retries (execution_id, stage_index, retried_at) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING"#,
        id,
        stage,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The status of an execution's stage, if it ran.
pub async fn stage_status(
    conn: &mut PgConnection,
    id: Uuid,
    stage: i32,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT status FROM stage_executions WHERE execution_id = $1 AND stage_index = $2",
        id,
        stage
    )
    .fetch_optional(conn)
    .await
}

/// Stores an execution's status and place.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
    place: &str,
    place_stage: Option<i32>,
    waiting_since: Option<i64>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE pipeline_executions SET status = $2, place = $3, place_stage = $4,
                  waiting_since = $5, updated_at = $6 WHERE id = $1"#,
        id,
        status,
        place,
        place_stage,
        waiting_since,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_stage(
    conn: &mut PgConnection,
    execution_id: Uuid,
    stage_index: i32,
    status: &str,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO stage_executions (execution_id, stage_index, status, updated_at)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (execution_id, stage_index) DO UPDATE
           SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at"#,
        execution_id,
        stage_index,
        status,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends an attempt; returns its job.
pub async fn end_action(
    conn: &mut PgConnection,
    execution_id: Uuid,
    stage_index: i32,
    action_index: i32,
    attempt: i32,
    status: &str,
    now: OffsetDateTime,
) -> Result<Option<i64>, sqlx::Error> {
    let job = sqlx::query_scalar!(
        r#"UPDATE action_executions SET status = $5, updated_at = $6
           WHERE execution_id = $1 AND stage_index = $2 AND action_index = $3 AND attempt = $4
           RETURNING job_id"#,
        execution_id,
        stage_index,
        action_index,
        attempt,
        status,
        now
    )
    .fetch_optional(conn)
    .await?;
    Ok(job.flatten())
}

/// A pipeline's wrapped data key: `(key id, wrapped)`. Created with `candidate` when it has none
/// (concurrent creators agree on the first).
pub async fn data_key(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    candidate: (&str, &str),
    now: OffsetDateTime,
) -> Result<(String, String), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO pipeline_data_keys (pipeline_id, key_id, wrapped, created_at)
           VALUES ($1, $2, $3, $4) ON CONFLICT (pipeline_id) DO NOTHING"#,
        pipeline_id,
        candidate.0,
        candidate.1,
        now
    )
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query!(
        "SELECT key_id, wrapped FROM pipeline_data_keys WHERE pipeline_id = $1",
        pipeline_id
    )
    .fetch_one(conn)
    .await?;
    Ok((row.key_id, row.wrapped))
}

/// Records what an attempt produced.
#[allow(clippy::too_many_arguments)]
pub async fn set_action_output(
    conn: &mut PgConnection,
    execution_id: Uuid,
    stage_index: i32,
    action_index: i32,
    attempt: i32,
    summary: Option<&str>,
    variables: &serde_json::Value,
    artifacts: &serde_json::Value,
    source_commits: Option<&serde_json::Value>,
) -> Result<(), sqlx::Error> {
    let summary = summary.map(|s| s.chars().take(2048).collect::<String>());
    sqlx::query!(
        r#"UPDATE action_executions SET summary = $5, output_variables = $6, output_artifacts = $7,
                  source_commits = $8
           WHERE execution_id = $1 AND stage_index = $2 AND action_index = $3 AND attempt = $4"#,
        execution_id,
        stage_index,
        action_index,
        attempt,
        summary,
        variables,
        artifacts,
        source_commits
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What an execution's succeeded attempts produced: `(stage, action, variables, artifacts)`,
/// oldest attempt first.
pub async fn outputs_of(
    conn: &mut PgConnection,
    execution_id: Uuid,
) -> Result<Vec<(i32, i32, serde_json::Value, serde_json::Value)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT stage_index, action_index, output_variables AS "output_variables!",
                  output_artifacts AS "output_artifacts!"
           FROM action_executions
           WHERE execution_id = $1 AND status = 'Succeeded'
             AND output_variables IS NOT NULL AND output_artifacts IS NOT NULL
           ORDER BY attempt"#,
        execution_id
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.stage_index,
                r.action_index,
                r.output_variables,
                r.output_artifacts,
            )
        })
        .collect())
}

/// A disabled inbound transition: `(stage name, reason, changed by, changed at)`.
pub type DisabledTransition = (String, String, String, OffsetDateTime);

pub async fn transitions(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
) -> Result<Vec<DisabledTransition>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT stage_name, reason, changed_by, changed_at FROM stage_transitions WHERE pipeline_id = $1",
        pipeline_id
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.stage_name, r.reason, r.changed_by, r.changed_at))
        .collect())
}

/// An action's latest attempt in one stage of an execution, as GetPipelineState shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub id: Uuid,
    pub action_index: i32,
    pub attempt: i32,
    pub status: String,
    pub summary: Option<String>,
    pub updated_at: OffsetDateTime,
}

pub async fn latest_attempts(
    conn: &mut PgConnection,
    execution_id: Uuid,
    stage_index: i32,
) -> Result<Vec<AttemptRow>, sqlx::Error> {
    sqlx::query_as!(
        AttemptRow,
        r#"SELECT DISTINCT ON (action_index) id, action_index, attempt, status, summary, updated_at
           FROM action_executions WHERE execution_id = $1 AND stage_index = $2
           ORDER BY action_index, attempt DESC"#,
        execution_id,
        stage_index
    )
    .fetch_all(conn)
    .await
}

/// The id of an attempt.
pub async fn action_id(
    conn: &mut PgConnection,
    execution_id: Uuid,
    stage_index: i32,
    action_index: i32,
    attempt: i32,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT id FROM action_executions
           WHERE execution_id = $1 AND stage_index = $2 AND action_index = $3 AND attempt = $4"#,
        execution_id,
        stage_index,
        action_index,
        attempt
    )
    .fetch_optional(conn)
    .await
}

/// Records what an attempt runs with: its resolved configuration (secrets masked) and the
/// artifacts it reads.
pub async fn set_action_input(
    conn: &mut PgConnection,
    id: Uuid,
    resolved_configuration: &serde_json::Value,
    input_artifacts: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE action_executions SET resolved_configuration = $2, input_artifacts = $3
           WHERE id = $1"#,
        id,
        resolved_configuration,
        input_artifacts
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The execution a pipeline's start with this client request token made, if any.
pub async fn by_client_request_token(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    token: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT id FROM pipeline_executions WHERE pipeline_id = $1 AND client_request_token = $2"#,
        pipeline_id,
        token
    )
    .fetch_optional(conn)
    .await
}

/// Records why an execution was stopped.
pub async fn set_stop_reason(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE pipeline_executions SET stop_reason = $2 WHERE id = $1"#,
        id,
        reason
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A source action's checked-out revision in an execution.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionRow {
    pub execution_id: Uuid,
    /// The execution's pipeline and pinned version (where the action's name is).
    pub pipeline_id: Uuid,
    pub pipeline_version: i32,
    pub stage_index: i32,
    pub action_index: i32,
    pub commit_id: String,
    pub commit_message: Option<String>,
    pub repository_url: Option<String>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
}

/// The revisions the source actions of these executions produced (their latest succeeded
/// attempt's `CommitId`).
pub async fn revisions_of(
    conn: &mut PgConnection,
    executions: &[Uuid],
) -> Result<Vec<RevisionRow>, sqlx::Error> {
    sqlx::query_as!(
        RevisionRow,
        r#"SELECT DISTINCT ON (a.execution_id, a.stage_index, a.action_index)
                  a.execution_id, e.pipeline_id, e.pipeline_version, a.stage_index, a.action_index,
                  a.output_variables->>'CommitId' AS "commit_id!",
                  a.output_variables->>'CommitMessage' AS commit_message,
                  a.output_variables->>'RepositoryUrl' AS repository_url,
                  a.output_variables->>'AuthorName' AS author_name,
                  a.output_variables->>'AuthorEmail' AS author_email
           FROM action_executions a JOIN pipeline_executions e ON e.id = a.execution_id
           WHERE a.execution_id = ANY($1) AND a.status = 'Succeeded' AND a.output_variables ? 'CommitId'
           ORDER BY a.execution_id, a.stage_index, a.action_index, a.attempt DESC"#,
        executions
    )
    .fetch_all(conn)
    .await
}

/// An action attempt as ListActionExecutions shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptDetailRow {
    pub id: Uuid,
    pub pipeline_id: Uuid,
    pub execution_id: Uuid,
    pub pipeline_version: i32,
    pub stage_index: i32,
    pub action_index: i32,
    pub attempt: i32,
    pub status: String,
    pub started_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub summary: Option<String>,
    pub resolved_configuration: Option<serde_json::Value>,
    pub input_artifacts: Option<serde_json::Value>,
    pub output_artifacts: Option<serde_json::Value>,
    pub output_variables: Option<serde_json::Value>,
    /// When a worker claimed its job (none for an approval, or while it waits in the queue).
    pub claimed_at: Option<OffsetDateTime>,
}

/// A page of a pipeline's action attempts, newest first; after `(started, id)` when given.
pub async fn attempts_page(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    execution_id: Option<Uuid>,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<AttemptDetailRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        AttemptDetailRow,
        r#"SELECT a.id, e.pipeline_id, a.execution_id, e.pipeline_version, a.stage_index, a.action_index,
                  a.attempt, a.status, a.started_at, a.updated_at, a.summary,
                  a.resolved_configuration, a.input_artifacts, a.output_artifacts,
                  a.output_variables, j.claimed_at AS "claimed_at?"
           FROM action_executions a JOIN pipeline_executions e ON e.id = a.execution_id
           LEFT JOIN jobs j ON j.id = a.job_id
           WHERE e.pipeline_id = $1 AND ($2::uuid IS NULL OR a.execution_id = $2)
             AND ($3::timestamptz IS NULL OR (a.started_at, a.id) < ($3, $4::uuid))
           ORDER BY a.started_at DESC, a.id DESC LIMIT $5"#,
        pipeline_id,
        execution_id,
        after_at,
        after_id,
        limit
    )
    .fetch_all(conn)
    .await
}

/// One attempt by id.
pub async fn attempt(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<AttemptDetailRow>, sqlx::Error> {
    sqlx::query_as!(
        AttemptDetailRow,
        r#"SELECT a.id, e.pipeline_id, a.execution_id, e.pipeline_version, a.stage_index, a.action_index,
                  a.attempt, a.status, a.started_at, a.updated_at, a.summary,
                  a.resolved_configuration, a.input_artifacts, a.output_artifacts,
                  a.output_variables, j.claimed_at AS "claimed_at?"
           FROM action_executions a JOIN pipeline_executions e ON e.id = a.execution_id
           LEFT JOIN jobs j ON j.id = a.job_id
           WHERE a.id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// The jobs of a pipeline's running action attempts, and how many of its executions are
/// unfinished.
pub async fn running_of_pipeline(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
) -> Result<(Vec<i64>, i64), sqlx::Error> {
    let jobs = sqlx::query_scalar!(
        r#"SELECT a.job_id AS "job_id!" FROM action_executions a
           JOIN pipeline_executions e ON e.id = a.execution_id
           WHERE e.pipeline_id = $1 AND a.status = 'InProgress' AND a.job_id IS NOT NULL"#,
        pipeline_id
    )
    .fetch_all(&mut *conn)
    .await?;
    let unfinished = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM pipeline_executions
           WHERE pipeline_id = $1 AND place <> 'finished'"#,
        pipeline_id
    )
    .fetch_one(conn)
    .await?;
    Ok((jobs, unfinished))
}

/// Finished executions started before `cutoff` whose artifacts are still kept, oldest first,
/// with the addresses of every artifact their attempts produced.
pub async fn expiring(
    conn: &mut PgConnection,
    cutoff: OffsetDateTime,
    limit: i64,
) -> Result<Vec<(Uuid, Vec<String>)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT e.id,
                  coalesce(array_agg(o.value->>'address') FILTER (WHERE o.value IS NOT NULL), '{}')
                      AS "addresses!: Vec<String>"
           FROM (SELECT id, started_at FROM pipeline_executions
                 WHERE artifacts_expired_at IS NULL AND place = 'finished' AND started_at < $1
                 ORDER BY started_at LIMIT $2) e
           LEFT JOIN action_executions a ON a.execution_id = e.id
           LEFT JOIN LATERAL jsonb_each(coalesce(a.output_artifacts, '{}')) o ON true
           GROUP BY e.id, e.started_at ORDER BY e.started_at"#,
        cutoff,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.addresses)).collect())
}

pub async fn set_artifacts_expired(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE pipeline_executions SET artifacts_expired_at = $2 WHERE id = $1",
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What the planner needs of an unfinished (or `also`) execution.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ActiveRow {
    pub id: Uuid,
    pub seq: i64,
    pub pipeline_version: i32,
    pub status: String,
    pub place: String,
    pub place_stage: Option<i32>,
    pub waiting_since: Option<i64>,
    /// A ROLLBACK execution's one stage.
    #[serde(default)]
    pub rollback_stage: Option<i32>,
}

#[derive(serde::Deserialize)]
struct StageJson {
    execution_id: Uuid,
    stage_index: i32,
    status: String,
}

#[derive(serde::Deserialize)]
struct ActionJson {
    execution_id: Uuid,
    stage_index: i32,
    action_index: i32,
    attempt: i32,
    status: String,
}

/// A pipeline's runs as the planner needs them, in one round trip: its unfinished executions
/// (and `also`), their stage states and latest action attempts, the disabled transitions and the
/// latest execution per stage.
pub struct RunsState {
    pub executions: Vec<ActiveRow>,
    pub stages: Vec<StageRow>,
    pub actions: Vec<ActionRow>,
    pub disabled: Vec<String>,
    pub latest: Vec<(String, Uuid)>,
}

pub async fn runs_state(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    also: Option<Uuid>,
) -> Result<RunsState, sqlx::Error> {
    let row = sqlx::query!(
        r#"WITH e AS (
               SELECT x.id, x.seq, x.pipeline_version, x.status, x.place, x.place_stage,
                      x.waiting_since, r.stage_index AS rollback_stage
               FROM pipeline_executions x LEFT JOIN execution_rollbacks r ON r.execution_id = x.id
               WHERE x.pipeline_id = $1 AND (x.place <> 'finished' OR x.id = $2))
           SELECT
             (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.seq), '[]') FROM e) AS "executions!",
             (SELECT coalesce(jsonb_agg(jsonb_build_object('execution_id', s.execution_id,
                        'stage_index', s.stage_index, 'status', s.status)), '[]')
              FROM stage_executions s WHERE s.execution_id IN (SELECT id FROM e)) AS "stages!",
             (SELECT coalesce(jsonb_agg(to_jsonb(a)), '[]') FROM (
                 SELECT DISTINCT ON (execution_id, stage_index, action_index)
                        execution_id, stage_index, action_index, attempt, status
                 FROM action_executions WHERE execution_id IN (SELECT id FROM e)
                 ORDER BY execution_id, stage_index, action_index, attempt DESC) a) AS "actions!",
             (SELECT coalesce(jsonb_agg(stage_name ORDER BY stage_name), '[]')
              FROM stage_transitions WHERE pipeline_id = $1) AS "disabled!",
             (SELECT coalesce(jsonb_agg(jsonb_build_array(stage_name, execution_id)), '[]')
              FROM stage_latest WHERE pipeline_id = $1) AS "latest!""#,
        pipeline_id,
        also
    )
    .fetch_one(conn)
    .await?;
    let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
    let stages: Vec<StageJson> = serde_json::from_value(row.stages).map_err(decode)?;
    let actions: Vec<ActionJson> = serde_json::from_value(row.actions).map_err(decode)?;
    Ok(RunsState {
        executions: serde_json::from_value(row.executions).map_err(decode)?,
        stages: stages
            .into_iter()
            .map(|s| StageRow {
                execution_id: s.execution_id,
                stage_index: s.stage_index,
                status: s.status,
            })
            .collect(),
        actions: actions
            .into_iter()
            .map(|a| ActionRow {
                execution_id: a.execution_id,
                stage_index: a.stage_index,
                action_index: a.action_index,
                attempt: a.attempt,
                status: a.status,
            })
            .collect(),
        disabled: serde_json::from_value(row.disabled).map_err(decode)?,
        latest: serde_json::from_value(row.latest).map_err(decode)?,
    })
}

/// One attempt to start: its execution, stage, action, attempt number and job payload.
pub struct NewAttempt {
    pub execution_id: Uuid,
    pub stage_index: i32,
    pub action_index: i32,
    pub attempt: i32,
    pub payload: serde_json::Value,
}

/// Starts attempts in one statement: a job each (kind `kind`, runnable now), the attempt rows
/// pointing at them, and one NOTIFY on `channel` at commit.
pub async fn start_attempts(
    conn: &mut PgConnection,
    attempts: &[NewAttempt],
    kind: &str,
    max_attempts: i32,
    channel: &str,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    if attempts.is_empty() {
        return Ok(());
    }
    let executions: Vec<Uuid> = attempts.iter().map(|a| a.execution_id).collect();
    let stages: Vec<i32> = attempts.iter().map(|a| a.stage_index).collect();
    let actions: Vec<i32> = attempts.iter().map(|a| a.action_index).collect();
    let numbers: Vec<i32> = attempts.iter().map(|a| a.attempt).collect();
    let payloads: Vec<serde_json::Value> = attempts.iter().map(|a| a.payload.clone()).collect();
    sqlx::query!(
        r#"WITH input AS (
               SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::int[], $4::int[], $5::jsonb[])
                   WITH ORDINALITY AS t(execution_id, stage_index, action_index, attempt, payload, n)),
           queued AS (
               INSERT INTO jobs (kind, payload, state, max_attempts, run_at, created_at)
               SELECT $6, payload, 'available', $7, $8, $8 FROM input ORDER BY n
               RETURNING id, payload)
           INSERT INTO action_executions (execution_id, stage_index, action_index, attempt, status,
                                          job_id, started_at, updated_at)
           SELECT i.execution_id, i.stage_index, i.action_index, i.attempt, 'InProgress', q.id, $8, $8
           FROM input i JOIN queued q ON q.payload = i.payload
           CROSS JOIN (SELECT pg_notify($9, (SELECT count(*) FROM input)::text)) AS woken"#,
        &executions,
        &stages,
        &actions,
        &numbers,
        &payloads,
        kind,
        max_attempts,
        now,
        channel
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Everything the pipeline view shows of a pipeline's state, in one round trip (the live view
/// reads it on every change of the pipeline): the pipeline, each stage's latest execution,
/// the disabled transitions, the executions waiting before a stage, and of the latest
/// executions their pinned versions, stage statuses and each action's latest attempt.
#[derive(Debug, Clone)]
pub struct ViewState {
    pub pipeline: super::pipelines::PipelineRow,
    /// (stage name, execution).
    pub latest: Vec<(String, Uuid)>,
    pub transitions: Vec<DisabledTransition>,
    /// (execution, pinned version, stage index, waiting since), oldest first.
    pub waiting: Vec<(Uuid, i32, Option<i32>, Option<i64>)>,
    /// The latest executions' pinned versions.
    pub versions: HashMap<Uuid, i32>,
    /// (execution, stage index) → status.
    pub stage_status: HashMap<(Uuid, i32), String>,
    /// (execution, stage index) → each action's latest attempt.
    pub attempts: HashMap<(Uuid, i32), Vec<AttemptRow>>,
}

pub async fn view_state(
    conn: &mut PgConnection,
    pipeline_name: &str,
) -> Result<Option<ViewState>, sqlx::Error> {
    let row = sqlx::query!(
        // One scan per table, aggregated into arrays in step (the same ORDER BY in each
        // aggregate): cheap to plan, which matters as much as running it here.
        r#"SELECT p.id, p.name, p.current_version, p.created_at, p.updated_at,
               COALESCE(l.stages, '{}') AS "latest_stages!", COALESCE(l.ids, '{}') AS "latest_ids!",
               COALESCE(t.stages, '{}') AS "disabled_stages!", COALESCE(t.reasons, '{}') AS "disabled_reasons!",
               COALESCE(t.by, '{}') AS "disabled_by!", COALESCE(t.at, '{}') AS "disabled_at!",
               COALESCE(w.ids, '{}') AS "waiting_ids!", COALESCE(w.versions, '{}') AS "waiting_versions!",
               COALESCE(w.stages, '{}') AS "waiting_stages!", COALESCE(w.since, '{}') AS "waiting_since!",
               COALESCE(e.ids, '{}') AS "shown_ids!", COALESCE(e.versions, '{}') AS "shown_versions!",
               COALESCE(s.executions, '{}') AS "stage_executions!", COALESCE(s.indexes, '{}') AS "stage_indexes!",
               COALESCE(s.statuses, '{}') AS "stage_statuses!",
               COALESCE(a.executions, '{}') AS "attempt_executions!", COALESCE(a.stages, '{}') AS "attempt_stages!",
               COALESCE(a.ids, '{}') AS "attempt_ids!", COALESCE(a.actions, '{}') AS "attempt_actions!",
               COALESCE(a.numbers, '{}') AS "attempt_numbers!", COALESCE(a.statuses, '{}') AS "attempt_statuses!",
               COALESCE(a.has_summary, '{}') AS "attempt_has_summary!",
               COALESCE(a.summaries, '{}') AS "attempt_summaries!", COALESCE(a.updated, '{}') AS "attempt_updated!"
           FROM pipelines p
           LEFT JOIN LATERAL (
               SELECT array_agg(stage_name ORDER BY stage_name) AS stages,
                      array_agg(execution_id ORDER BY stage_name) AS ids
               FROM stage_latest WHERE pipeline_id = p.id) l ON true
           LEFT JOIN LATERAL (
               SELECT array_agg(stage_name ORDER BY stage_name) AS stages,
                      array_agg(reason ORDER BY stage_name) AS reasons,
                      array_agg(changed_by ORDER BY stage_name) AS by,
                      array_agg(changed_at ORDER BY stage_name) AS at
               FROM stage_transitions WHERE pipeline_id = p.id) t ON true
           LEFT JOIN LATERAL (
               SELECT array_agg(id ORDER BY seq) AS ids,
                      array_agg(pipeline_version ORDER BY seq) AS versions,
                      array_agg(COALESCE(place_stage, -1) ORDER BY seq) AS stages,
                      array_agg(COALESCE(waiting_since, -1) ORDER BY seq) AS since
               FROM pipeline_executions WHERE pipeline_id = p.id AND place = 'waiting') w ON true
           LEFT JOIN LATERAL (
               SELECT array_agg(id ORDER BY id) AS ids, array_agg(pipeline_version ORDER BY id) AS versions
               FROM pipeline_executions
               WHERE id IN (SELECT execution_id FROM stage_latest WHERE pipeline_id = p.id)) e ON true
           LEFT JOIN LATERAL (
               SELECT array_agg(execution_id ORDER BY execution_id, stage_index) AS executions,
                      array_agg(stage_index ORDER BY execution_id, stage_index) AS indexes,
                      array_agg(status ORDER BY execution_id, stage_index) AS statuses
               FROM stage_executions
               WHERE execution_id IN (SELECT execution_id FROM stage_latest WHERE pipeline_id = p.id)) s ON true
           LEFT JOIN LATERAL (
               SELECT array_agg(execution_id ORDER BY execution_id, stage_index, action_index) AS executions,
                      array_agg(stage_index ORDER BY execution_id, stage_index, action_index) AS stages,
                      array_agg(id ORDER BY execution_id, stage_index, action_index) AS ids,
                      array_agg(action_index ORDER BY execution_id, stage_index, action_index) AS actions,
                      array_agg(attempt ORDER BY execution_id, stage_index, action_index) AS numbers,
                      array_agg(status ORDER BY execution_id, stage_index, action_index) AS statuses,
                      array_agg(summary IS NOT NULL ORDER BY execution_id, stage_index, action_index) AS has_summary,
                      array_agg(COALESCE(summary, '') ORDER BY execution_id, stage_index, action_index) AS summaries,
                      array_agg(updated_at ORDER BY execution_id, stage_index, action_index) AS updated
               FROM (SELECT DISTINCT ON (execution_id, stage_index, action_index)
                            execution_id, stage_index, id, action_index, attempt, status, summary, updated_at
                     FROM action_executions
                     WHERE execution_id IN (SELECT execution_id FROM stage_latest WHERE pipeline_id = p.id)
                     ORDER BY execution_id, stage_index, action_index, attempt DESC) latest_attempts) a ON true
           WHERE p.name = $1"#,
        pipeline_name
    )
    .fetch_optional(conn)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let mut attempts: HashMap<(Uuid, i32), Vec<AttemptRow>> = HashMap::new();
    for i in 0..r.attempt_ids.len() {
        attempts
            .entry((r.attempt_executions[i], r.attempt_stages[i]))
            .or_default()
            .push(AttemptRow {
                id: r.attempt_ids[i],
                action_index: r.attempt_actions[i],
                attempt: r.attempt_numbers[i],
                status: r.attempt_statuses[i].clone(),
                summary: r.attempt_has_summary[i].then(|| r.attempt_summaries[i].clone()),
                updated_at: r.attempt_updated[i],
            });
    }
    Ok(Some(ViewState {
        pipeline: super::pipelines::PipelineRow {
            id: r.id,
            name: r.name,
            current_version: r.current_version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        },
        latest: r.latest_stages.into_iter().zip(r.latest_ids).collect(),
        transitions: r
            .disabled_stages
            .into_iter()
            .zip(r.disabled_reasons)
            .zip(r.disabled_by)
            .zip(r.disabled_at)
            .map(|(((stage, reason), by), at)| (stage, reason, by, at))
            .collect(),
        waiting: (0..r.waiting_ids.len())
            .map(|i| {
                (
                    r.waiting_ids[i],
                    r.waiting_versions[i],
                    Some(r.waiting_stages[i]).filter(|s| *s >= 0),
                    Some(r.waiting_since[i]).filter(|s| *s >= 0),
                )
            })
            .collect(),
        versions: r.shown_ids.into_iter().zip(r.shown_versions).collect(),
        stage_status: (0..r.stage_executions.len())
            .map(|i| {
                (
                    (r.stage_executions[i], r.stage_indexes[i]),
                    r.stage_statuses[i].clone(),
                )
            })
            .collect(),
        attempts,
    }))
}
