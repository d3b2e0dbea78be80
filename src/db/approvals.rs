//! Manual approvals: the attempt that waits for answers (no job), its answers, the open ones for
//! the inbox and the rescuer, and what an earlier approval at the same gate promoted.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// An approval to request: its attempt (which gets no job) and what approvers are shown.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApproval {
    pub execution_id: Uuid,
    pub stage_index: i32,
    pub action_index: i32,
    pub attempt: i32,
    pub pipeline_id: Uuid,
    pub pipeline_name: String,
    pub started_by: String,
    pub stage_name: String,
    pub action_name: String,
    pub token: Uuid,
    pub deadline: OffsetDateTime,
    pub custom_data: Option<String>,
    pub external_entity_link: Option<String>,
    pub resolved_configuration: serde_json::Value,
    pub promoted: serde_json::Value,
    pub required_approvals: i32,
    pub approver_groups: Vec<String>,
    pub forbid_self_approval: bool,
    pub require_comment: bool,
}

/// Requests an approval: the attempt (InProgress, no job) and its approval, in one statement.
/// Returns the attempt's id (the approval's).
pub async fn request(
    conn: &mut PgConnection,
    a: &NewApproval,
    now: OffsetDateTime,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar!(
        r#"WITH attempt AS (
               INSERT INTO action_executions (execution_id, stage_index, action_index, attempt,
                                              status, started_at, updated_at, resolved_configuration,
                                              input_artifacts)
               VALUES ($1, $2, $3, $4, 'InProgress', $5, $5, $6, '{}'::jsonb)
               RETURNING id)
           INSERT INTO approvals (action_execution_id, pipeline_id, stage_name, action_name, token,
                                  requested_at, deadline, custom_data, external_entity_link,
                                  required_approvals, approver_groups, forbid_self_approval,
                                  require_comment, pipeline_name, execution_id, started_by,
                                  promoted)
           SELECT id, $7, $8, $9, $10, $5, $11, $12, $13, $14, $15, $16, $17, $18, $1, $19, $20
           FROM attempt
           RETURNING action_execution_id"#,
        a.execution_id,
        a.stage_index,
        a.action_index,
        a.attempt,
        now,
        a.resolved_configuration,
        a.pipeline_id,
        a.stage_name,
        a.action_name,
        a.token,
        a.deadline,
        a.custom_data,
        a.external_entity_link,
        a.required_approvals,
        &a.approver_groups,
        a.forbid_self_approval,
        a.require_comment,
        a.pipeline_name,
        a.started_by,
        a.promoted
    )
    .fetch_one(conn)
    .await
}

/// An approval with its attempt and execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRow {
    pub id: Uuid,
    pub pipeline_id: Uuid,
    pub pipeline_name: String,
    pub execution_id: Uuid,
    pub stage_index: i32,
    pub action_index: i32,
    pub attempt: i32,
    /// The attempt's status (`InProgress` while it waits).
    pub status: String,
    /// No newer attempt of the action exists in its execution.
    pub latest: bool,
    pub stage_name: String,
    pub action_name: String,
    pub token: Uuid,
    pub requested_at: OffsetDateTime,
    pub deadline: OffsetDateTime,
    pub custom_data: Option<String>,
    pub external_entity_link: Option<String>,
    pub required_approvals: i32,
    pub approver_groups: Vec<String>,
    pub forbid_self_approval: bool,
    pub require_comment: bool,
    pub outcome: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    /// Who started its execution (its trigger detail: an ARN for a person's start).
    pub started_by: String,
    /// What it promotes, as recorded when it was requested.
    pub promoted: serde_json::Value,
}

/// The approval a token names in a pipeline.
pub async fn by_token(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    token: Uuid,
) -> Result<Option<ApprovalRow>, sqlx::Error> {
    sqlx::query_as!(
        ApprovalRow,
        r#"SELECT p.action_execution_id AS id, p.pipeline_id, p.pipeline_name, a.execution_id, a.stage_index,
                  a.action_index, a.attempt, a.status,
                  NOT EXISTS (SELECT 1 FROM action_executions n
                              WHERE n.execution_id = a.execution_id AND n.stage_index = a.stage_index
                                AND n.action_index = a.action_index AND n.attempt > a.attempt) AS "latest!",
                  p.stage_name, p.action_name, p.token, p.requested_at, p.deadline, p.custom_data,
                  p.external_entity_link, p.required_approvals, p.approver_groups,
                  p.forbid_self_approval, p.require_comment, p.outcome, p.decided_at,
                  p.started_by, p.promoted
           FROM approvals p
           JOIN action_executions a ON a.id = p.action_execution_id
           WHERE p.pipeline_id = $1 AND p.token = $2"#,
        pipeline_id,
        token
    )
    .fetch_optional(conn)
    .await
}

/// The approvals of these attempts (those that are approvals).
pub async fn of_attempts(
    conn: &mut PgConnection,
    attempts: &[Uuid],
) -> Result<Vec<ApprovalRow>, sqlx::Error> {
    sqlx::query_as!(
        ApprovalRow,
        r#"SELECT p.action_execution_id AS id, p.pipeline_id, p.pipeline_name, a.execution_id, a.stage_index,
                  a.action_index, a.attempt, a.status,
                  NOT EXISTS (SELECT 1 FROM action_executions n
                              WHERE n.execution_id = a.execution_id AND n.stage_index = a.stage_index
                                AND n.action_index = a.action_index AND n.attempt > a.attempt) AS "latest!",
                  p.stage_name, p.action_name, p.token, p.requested_at, p.deadline, p.custom_data,
                  p.external_entity_link, p.required_approvals, p.approver_groups,
                  p.forbid_self_approval, p.require_comment, p.outcome, p.decided_at,
                  p.started_by, p.promoted
           FROM approvals p
           JOIN action_executions a ON a.id = p.action_execution_id
           WHERE p.action_execution_id = ANY($1)"#,
        attempts
    )
    .fetch_all(conn)
    .await
}

/// The open approvals of one gate with the same rules, counted (what the inbox authorizes: each
/// gate once, however many executions wait there).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenGate {
    pub id: i64,
    pub pipeline_name: String,
    pub stage_name: String,
    pub action_name: String,
    pub required_approvals: i32,
    pub approver_groups: Vec<String>,
    pub open: i64,
}

/// Every gate with open approvals (the counts the `approval_gates` trigger keeps).
pub async fn open_gates(conn: &mut PgConnection) -> Result<Vec<OpenGate>, sqlx::Error> {
    sqlx::query_as!(
        OpenGate,
        r#"SELECT id, pipeline_name, stage_name, action_name, required_approvals, approver_groups,
                  open::bigint AS "open!"
           FROM approval_gates WHERE open > 0"#
    )
    .fetch_all(conn)
    .await
}

/// The open approvals `principal` has answered already (of gates needing several answers), with
/// their gates.
pub async fn open_answered_by(
    conn: &mut PgConnection,
    principal: &str,
) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT p.action_execution_id, p.gate_id
           FROM approval_decisions d JOIN approvals p USING (action_execution_id)
           WHERE d.principal = $1 AND p.outcome IS NULL"#,
        principal
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.action_execution_id, r.gate_id))
        .collect())
}

/// Up to `limit` open approvals of these gates, oldest request first, after `after` (requested
/// at, id), leaving out `except`.
pub async fn open_of_gates(
    conn: &mut PgConnection,
    gates: &[i64],
    except: &[Uuid],
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<ApprovalRow>, sqlx::Error> {
    let (at, id) = after.map_or((None, None), |(at, id)| (Some(at), Some(id)));
    sqlx::query_as!(
        ApprovalRow,
        r#"SELECT p.action_execution_id AS id, p.pipeline_id, p.pipeline_name, p.execution_id,
                  a.stage_index, a.action_index, a.attempt, a.status, true AS "latest!",
                  p.stage_name, p.action_name, p.token, p.requested_at, p.deadline, p.custom_data,
                  p.external_entity_link, p.required_approvals, p.approver_groups,
                  p.forbid_self_approval, p.require_comment, p.outcome, p.decided_at, p.started_by,
                  p.promoted
           FROM approvals p JOIN action_executions a ON a.id = p.action_execution_id
           WHERE p.outcome IS NULL AND p.gate_id = ANY($1) AND NOT (p.action_execution_id = ANY($2))
             AND ($3::timestamptz IS NULL OR (p.requested_at, p.action_execution_id) > ($3, $4))
           ORDER BY p.requested_at, p.action_execution_id LIMIT $5"#,
        gates,
        except,
        at,
        id,
        limit
    )
    .fetch_all(conn)
    .await
}

/// What each source of an execution checked out, with the commits it saw behind it:
/// `(stage, action, commit id, commits)`.
pub async fn source_commits(
    conn: &mut PgConnection,
    execution_id: Uuid,
) -> Result<Vec<(i32, i32, String, Option<serde_json::Value>)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT DISTINCT ON (stage_index, action_index)
                  stage_index, action_index, output_variables->>'CommitId' AS "commit_id!",
                  source_commits
           FROM action_executions
           WHERE execution_id = $1 AND status = 'Succeeded' AND output_variables ? 'CommitId'
           ORDER BY stage_index, action_index, attempt DESC"#,
        execution_id
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.stage_index, r.action_index, r.commit_id, r.source_commits))
        .collect())
}

/// Closes the open approval of an attempt that ended otherwise (`Abandoned`, `Failed`).
pub async fn close(
    conn: &mut PgConnection,
    execution_id: Uuid,
    stage_index: i32,
    action_index: i32,
    attempt: i32,
    outcome: &str,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE approvals SET outcome = $5, decided_at = $6
           WHERE outcome IS NULL AND action_execution_id =
               (SELECT id FROM action_executions WHERE execution_id = $1 AND stage_index = $2
                  AND action_index = $3 AND attempt = $4)"#,
        execution_id,
        stage_index,
        action_index,
        attempt,
        outcome,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An answer that counted.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    pub approval_id: Uuid,
    pub principal: String,
    pub user_name: String,
    pub approved: bool,
    pub comment: String,
    pub source_address: Option<String>,
    pub decided_at: OffsetDateTime,
}

/// The answers recorded at these approvals, in the order they came.
pub async fn decisions(
    conn: &mut PgConnection,
    approvals: &[Uuid],
) -> Result<Vec<DecisionRow>, sqlx::Error> {
    sqlx::query_as!(
        DecisionRow,
        r#"SELECT action_execution_id AS approval_id, principal, user_name, approved, comment,
                  source_address, decided_at
           FROM approval_decisions WHERE action_execution_id = ANY($1)
           ORDER BY decided_at, principal"#,
        approvals
    )
    .fetch_all(conn)
    .await
}

/// Records one counted answer.
pub async fn record(conn: &mut PgConnection, d: &DecisionRow) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO approval_decisions (action_execution_id, principal, user_name, approved,
                                          comment, source_address, decided_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)"#,
        d.approval_id,
        d.principal,
        d.user_name,
        d.approved,
        d.comment,
        d.source_address,
        d.decided_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends an approval with its outcome (`Approved`, `Rejected`, `TimedOut`), once: `false` when it
/// had one already.
pub async fn decide(
    conn: &mut PgConnection,
    id: Uuid,
    outcome: &str,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        r#"UPDATE approvals SET outcome = $2, decided_at = $3
           WHERE action_execution_id = $1 AND outcome IS NULL"#,
        id,
        outcome,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An open approval whose deadline has passed.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiredRow {
    pub id: Uuid,
    pub pipeline_id: Uuid,
    pub execution_id: Uuid,
    pub stage_index: i32,
    pub action_index: i32,
    pub attempt: i32,
}

/// Open approvals whose deadline is at or before `now`, the earliest first, at most `limit`.
pub async fn expired(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<ExpiredRow>, sqlx::Error> {
    sqlx::query_as!(
        ExpiredRow,
        r#"SELECT p.action_execution_id AS id, p.pipeline_id, a.execution_id, a.stage_index,
                  a.action_index, a.attempt
           FROM approvals p JOIN action_executions a ON a.id = p.action_execution_id
           WHERE p.outcome IS NULL AND p.deadline <= $1 AND a.status = 'InProgress'
           ORDER BY p.deadline LIMIT $2"#,
        now,
        limit
    )
    .fetch_all(conn)
    .await
}

/// The execution whose approval at this gate (stage and action of the pipeline) was approved
/// last, other than `not`.
pub async fn last_approved_execution(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    stage_name: &str,
    action_name: &str,
    not: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT a.execution_id FROM approvals p
           JOIN action_executions a ON a.id = p.action_execution_id
           WHERE p.pipeline_id = $1 AND p.stage_name = $2 AND p.action_name = $3
             AND p.outcome = 'Approved' AND a.execution_id <> $4
           ORDER BY p.decided_at DESC LIMIT 1"#,
        pipeline_id,
        stage_name,
        action_name,
        not
    )
    .fetch_optional(conn)
    .await
}

/// Sets an approval attempt's summary (its answers so far, the deciding comment, or why it
/// ended).
pub async fn set_summary(
    conn: &mut PgConnection,
    execution_id: Uuid,
    stage_index: i32,
    action_index: i32,
    attempt: i32,
    summary: &str,
) -> Result<(), sqlx::Error> {
    let summary: String = summary.chars().take(2048).collect();
    sqlx::query!(
        r#"UPDATE action_executions SET summary = $5
           WHERE execution_id = $1 AND stage_index = $2 AND action_index = $3 AND attempt = $4"#,
        execution_id,
        stage_index,
        action_index,
        attempt,
        summary
    )
    .execute(conn)
    .await?;
    Ok(())
}
