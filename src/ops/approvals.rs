//! Manual approvals (`Approval/AWS/Manual/1`): requesting one when the engine starts the action
//! (a row and a fresh token, no job and no worker), PutApprovalResult (authorized on the action,
//! judged by the gate's rules, audited with the answer), deadlines, the inbox and the review.
//!
//! Every change here takes the pipeline's runs lock first, as every change to its executions
//! does, so two answers to one approval are serialized: the first that decides it wins and the
//! others find it decided.

use std::collections::HashMap;

use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::executions::{self, ActionJob};
use super::{Caller, Kind, Op, Services};
use crate::access::{Action, Resource};
use crate::db;
use crate::engine::approval::{self, Approver, Recorded, Rules, Verdict};
use crate::engine::variables;
use crate::error::AppError;
use crate::pipeline::wire::PipelineDeclaration;

/// CodePipeline's approval timeout when the action sets none: 7 days.
pub const DEFAULT_TIMEOUT_MINUTES: i64 = 7 * 24 * 60;
/// The longest comment an answer may carry (CodePipeline's ApprovalSummary).
pub const MAX_COMMENT_CHARS: usize = 512;
/// The summary of an approval that was not answered in time.
pub const TIMED_OUT: &str = "approval timed out";

/// Whether an action type (category, owner, provider, version) is the manual approval.
pub fn is_manual_approval(t: &[String; 4]) -> bool {
    t[0] == "Approval" && t[1] == "AWS" && t[2] == "Manual" && t[3] == "1"
}

/// The action attempt an approval is requested for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gate {
    pub execution_id: Uuid,
    pub stage: usize,
    pub action: usize,
    pub attempt: u32,
}

fn corrupt(what: &str) -> AppError {
    AppError::Internal(anyhow::anyhow!(
        "stored approval state is unreadable: {what}"
    ))
}

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Requests an approval for the engine (inside [`executions::advance`]): its attempt with no
/// job, a fresh token, the deadline, CustomData and ExternalEntityLink with their references
/// resolved, and the rules. `Ok(false)`: it cannot be requested (a reference does not resolve);
/// its attempt is recorded with the reason, and the caller fails it.
pub(super) async fn request(
    conn: &mut sqlx::PgConnection,
    now: OffsetDateTime,
    pipeline_id: Uuid,
    decl: &PipelineDeclaration,
    gate: Gate,
) -> Result<bool, AppError> {
    let row = db::executions::get(conn, gate.execution_id)
        .await?
        .ok_or_else(|| corrupt("an approval's execution"))?;
    let stage = decl
        .stages
        .get(gate.stage)
        .ok_or_else(|| corrupt("an approval's stage"))?;
    let action = stage
        .actions
        .get(gate.action)
        .ok_or_else(|| corrupt("an approval's action"))?;
    let configuration = action.configuration.clone().unwrap_or_default();
    // Validated when the pipeline was saved.
    let rules = Rules::of_configuration(&configuration).unwrap_or_default();
    let outputs = db::executions::outputs_of(conn, row.id).await?;
    let scope = executions::reference_scope(decl, &row, &outputs);
    let (resolved, problem) = match variables::resolve(&configuration, &scope, |_| false) {
        Ok(resolved) => {
            let link_ok = resolved.get("ExternalEntityLink").is_none_or(|link| {
                crate::pipeline::check_format(crate::pipeline::action_types::Format::HttpUrl, link)
                    .is_ok()
                    && !link.contains("#{")
            });
            if link_ok {
                (resolved, None)
            } else {
                (
                    resolved,
                    Some("ExternalEntityLink is not an http:// or https:// URL once its variables are resolved".to_string()),
                )
            }
        }
        Err(unresolved) => (configuration.clone(), Some(unresolved.to_string())),
    };
    let minutes = action.timeout_in_minutes.unwrap_or(DEFAULT_TIMEOUT_MINUTES);
    let attempt = i32::try_from(gate.attempt).map_err(|_| corrupt("attempt"))?;
    let promoted = promoted_of(conn, gate.execution_id).await?;
    let id = db::approvals::request(
        conn,
        &db::approvals::NewApproval {
            execution_id: gate.execution_id,
            stage_index: to_i32(gate.stage),
            action_index: to_i32(gate.action),
            attempt,
            pipeline_id,
            pipeline_name: decl.name.clone(),
            started_by: row.trigger_detail.clone(),
            stage_name: stage.name.clone(),
            action_name: action.name.clone(),
            token: Uuid::new_v4(),
            deadline: now + Duration::minutes(minutes),
            custom_data: resolved.get("CustomData").cloned(),
            external_entity_link: resolved
                .get("ExternalEntityLink")
                .filter(|_| problem.is_none())
                .cloned(),
            resolved_configuration: json!(resolved),
            promoted: json!(promoted),
            required_approvals: i32::try_from(rules.required()).unwrap_or(1),
            approver_groups: rules.groups().iter().map(|g| g.to_string()).collect(),
            forbid_self_approval: rules.forbid_self(),
            require_comment: rules.require_comment(),
        },
        now,
    )
    .await?;
    match problem {
        None => Ok(true),
        Some(summary) => {
            db::approvals::set_summary(
                conn,
                gate.execution_id,
                to_i32(gate.stage),
                to_i32(gate.action),
                attempt,
                &summary,
            )
            .await?;
            db::approvals::decide(conn, id, "Failed", now).await?;
            Ok(false)
        }
    }
}

/// An approver's answer (CodePipeline's `ApprovalStatus`, case-sensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Approved,
    Rejected,
}

impl Answer {
    pub fn parse(text: &str) -> Option<Answer> {
        match text {
            "Approved" => Some(Answer::Approved),
            "Rejected" => Some(Answer::Rejected),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Approved => "Approved",
            Answer::Rejected => "Rejected",
        }
    }
}

/// What PutApprovalResult did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    pub at: OffsetDateTime,
    pub verdict: Verdict,
}

fn invalid_token(message: &str) -> AppError {
    AppError::Rejected {
        code: "InvalidApprovalTokenException",
        message: message.to_string(),
    }
}

/// PutApprovalResult: authorized as `codepipeline:PutApprovalResult` on the action, then the
/// token must name the action's open approval request, and the answer must count under the
/// gate's rules. An answer that decides the gate ends the action (Approved: Succeeded, with the
/// comment as its summary; Rejected: Failed) and the engine moves on, in the same transaction
/// as the answer and its audit event.
#[allow(clippy::too_many_arguments)]
pub async fn put_approval_result(
    s: &Services,
    c: &Caller,
    pipeline_name: &str,
    stage_name: &str,
    action_name: &str,
    token: &str,
    answer: Answer,
    comment: &str,
) -> Result<Answered, AppError> {
    let mut queued = 0;
    let answered = Op::run(
        s,
        c,
        Kind::Change,
        Action::PutApprovalResult,
        Resource::pipeline_action(pipeline_name, stage_name, action_name),
        json!({"pipelineName": pipeline_name, "stageName": stage_name, "actionName": action_name,
               "result": {"status": answer.as_str(), "summary": comment}, "token": token}),
        async |op| {
            let now = op.now();
            let caller = op.caller();
            if comment.chars().count() > MAX_COMMENT_CHARS {
                return Err(AppError::validation(
                    "result.summary",
                    format!("must be at most {MAX_COMMENT_CHARS} characters"),
                ));
            }
            let token = parse_token(token)?;
            let pipeline = db::pipelines::find(
                op.conn(),
                super::pipelines::existing_name(pipeline_name)?,
            )
            .await?
            .ok_or_else(|| executions::pipeline_not_found(pipeline_name))?;
            let decl =
                executions::declaration(op.conn(), pipeline.id, pipeline.current_version).await?;
            let stage = decl
                .stages
                .iter()
                .find(|st| st.name == stage_name)
                .ok_or_else(|| executions::stage_not_found(pipeline_name, stage_name))?;
            if !stage.actions.iter().any(|a| a.name == action_name) {
                return Err(AppError::NotFound {
                    code: "ActionNotFoundException",
                    message: format!(
                        "The stage '{stage_name}' of the pipeline '{pipeline_name}' has no action '{action_name}'"
                    ),
                });
            }
            // Answers to one pipeline's approvals are serialized by its runs lock.
            db::executions::lock_runs(op.conn(), pipeline.id)
                .await?
                .ok_or_else(|| executions::pipeline_not_found(pipeline_name))?;
            let row = db::approvals::by_token(op.conn(), pipeline.id, token)
                .await?
                .filter(|r| r.stage_name == stage_name && r.action_name == action_name)
                .ok_or_else(|| invalid_token("The token does not name an approval request of this action"))?;
            if !row.latest {
                return Err(invalid_token(
                    "The approval request of this token was replaced by a newer one (its stage was retried)",
                ));
            }
            match row.outcome.as_deref() {
                Some(done @ ("Approved" | "Rejected")) => {
                    return Err(AppError::Rejected {
                        code: "ApprovalAlreadyCompletedException",
                        message: format!("The approval request was already answered: {done}"),
                    });
                }
                Some(_) => return Err(invalid_token("The approval request has expired")),
                None => {}
            }
            if row.status != "InProgress" {
                return Err(invalid_token(
                    "The approval request is no longer open: its execution was stopped",
                ));
            }
            if row.deadline <= now {
                return Err(invalid_token("The approval request has expired"));
            }
            let principal = Resource::user(caller.user_name()).to_string();
            let earlier = db::approvals::decisions(op.conn(), &[row.id]).await?;
            let recorded: Vec<Recorded> = earlier
                .iter()
                .map(|d| Recorded {
                    principal: d.principal.clone(),
                    approve: d.approved,
                })
                .collect();
            let groups = db::groups::names_for_user(op.conn(), caller.user_id).await?;
            let promoted: Vec<Promoted> =
                serde_json::from_value(row.promoted.clone()).unwrap_or_default();
            let authored = promoted.iter().any(|p| p.written_by(caller.user_name()));
            let rules = stored_rules(&row);
            let approver = Approver {
                principal: &principal,
                groups: &groups,
                started_execution: row.started_by.eq_ignore_ascii_case(&principal),
                authored_revision: authored,
            };
            let verdict = approval::decide(
                &rules,
                &recorded,
                &approver,
                answer == Answer::Approved,
                comment,
            )
            .map_err(|refusal| AppError::validation("result", refusal.to_string()))?;
            db::approvals::record(
                op.conn(),
                &db::approvals::DecisionRow {
                    approval_id: row.id,
                    principal: principal.clone(),
                    user_name: caller.user_name().to_string(),
                    approved: answer == Answer::Approved,
                    comment: comment.to_string(),
                    source_address: caller.actor.source_ip.clone(),
                    decided_at: now,
                },
            )
            .await?;
            // The attempt's summary: the answers so far, or the deciding comment (CodePipeline's).
            let outcome = match verdict {
                Verdict::Counted { .. } => None,
                Verdict::Approved => Some("Approved"),
                Verdict::Rejected => Some("Rejected"),
            };
            let text = match (verdict, outcome) {
                (Verdict::Counted { approvals, required }, _) => {
                    format!("{approvals} of {required} approvals")
                }
                (_, Some(o)) if comment.trim().is_empty() => format!("{o} by {}", caller.user_name()),
                _ => comment.to_string(),
            };
            db::approvals::set_summary(
                op.conn(),
                row.execution_id,
                row.stage_index,
                row.action_index,
                row.attempt,
                &text,
            )
            .await?;
            let Some(outcome) = outcome else {
                if let Verdict::Counted { approvals, required } = verdict {
                    op.add_audit_param("approvals", json!(approvals));
                    op.add_audit_param("requiredApprovals", json!(required));
                }
                return Ok(Answered { at: now, verdict });
            };
            db::approvals::decide(op.conn(), row.id, outcome, now).await?;
            queued = executions::end_attempt(
                op.conn(),
                now,
                attempt_of(
                    pipeline.id,
                    row.execution_id,
                    row.stage_index,
                    row.action_index,
                    row.attempt,
                )?,
                outcome == "Approved",
            )
            .await?;
            op.add_audit_param("outcome", json!(outcome));
            op.add_audit_param("pipelineExecutionId", json!(row.execution_id));
            Ok(Answered { at: now, verdict })
        },
    )
    .await?;
    executions::wake_for(s, queued);
    Ok(answered)
}

/// An approval's attempt as the engine names it (what [`executions::end_attempt`] ends).
fn attempt_of(
    pipeline_id: Uuid,
    execution_id: Uuid,
    stage: i32,
    action: i32,
    attempt: i32,
) -> Result<ActionJob, AppError> {
    Ok(ActionJob {
        pipeline_id,
        execution_id,
        stage: usize::try_from(stage).map_err(|_| corrupt("stage"))?,
        action: usize::try_from(action).map_err(|_| corrupt("action"))?,
        attempt: u32::try_from(attempt).map_err(|_| corrupt("attempt"))?,
    })
}

/// A token as sent: CodePipeline's pattern (a lowercase UUID).
fn parse_token(text: &str) -> Result<Uuid, AppError> {
    let shaped = text.len() == 36
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c) || c == '-');
    match Uuid::parse_str(text) {
        Ok(token) if shaped && token.hyphenated().to_string() == text => Ok(token),
        _ => Err(AppError::validation("token", "is not an approval token")),
    }
}

fn stored_rules(row: &db::approvals::ApprovalRow) -> Rules {
    Rules::stored(
        row.required_approvals,
        &row.approver_groups,
        row.forbid_self_approval,
        row.require_comment,
    )
}

/// Fails every open approval whose deadline has passed ("approval timed out"), each in a
/// transaction of its own: the engine's work, run by the leader. How many it failed.
pub async fn expire_approvals(s: &Services) -> Result<usize, AppError> {
    let mut failed = 0;
    loop {
        let now = s.clock.now();
        let expired = {
            let mut conn = s.pool.acquire().await?;
            db::approvals::expired(&mut conn, now, 100).await?
        };
        if expired.is_empty() {
            return Ok(failed);
        }
        let batch = expired.len();
        for e in expired {
            let mut tx = s.pool.begin().await?;
            if db::executions::lock_runs(&mut tx, e.pipeline_id)
                .await?
                .is_none()
            {
                continue;
            }
            // Answered or stopped meanwhile: `decide` finds an outcome, or the attempt ended.
            let still_open = db::approvals::of_attempts(&mut tx, &[e.id])
                .await?
                .first()
                .is_some_and(|r| r.status == "InProgress" && r.outcome.is_none());
            if !still_open || !db::approvals::decide(&mut tx, e.id, "TimedOut", now).await? {
                continue;
            }
            db::approvals::set_summary(
                &mut tx,
                e.execution_id,
                e.stage_index,
                e.action_index,
                e.attempt,
                TIMED_OUT,
            )
            .await?;
            let queued = executions::end_attempt(
                &mut tx,
                now,
                attempt_of(
                    e.pipeline_id,
                    e.execution_id,
                    e.stage_index,
                    e.action_index,
                    e.attempt,
                )?,
                false,
            )
            .await?;
            tx.commit().await?;
            executions::wake_for(s, queued);
            failed += 1;
        }
        if batch < 100 {
            return Ok(failed);
        }
    }
}

/// What a source action checked out, as approvers see it (kept with the approval as JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Promoted {
    pub action_name: String,
    pub commit_id: String,
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    pub repository_url: Option<String>,
}

impl Promoted {
    /// The author as approvers read it: `Name <address>`, or whichever is known.
    pub fn author(&self) -> String {
        match (self.author_name.is_empty(), self.author_email.is_empty()) {
            (false, false) => format!("{} <{}>", self.author_name, self.author_email),
            (false, true) => self.author_name.clone(),
            _ => self.author_email.clone(),
        }
    }

    /// Whether the user wrote this revision (for `ForbidSelfApproval`).
    pub fn written_by(&self, user_name: &str) -> bool {
        approval::is_author(user_name, &self.author_name, &self.author_email)
    }
}

/// An approval as the inbox, the review and the API show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalView {
    pub id: Uuid,
    pub pipeline_name: String,
    pub execution_id: Uuid,
    pub stage_name: String,
    pub action_name: String,
    pub token: Uuid,
    pub requested_at: OffsetDateTime,
    pub deadline: OffsetDateTime,
    pub custom_data: Option<String>,
    pub external_entity_link: Option<String>,
    pub rules: Rules,
    /// `None` while it waits (and its attempt runs); else Approved, Rejected, TimedOut, or
    /// Abandoned/Failed/… for an attempt that ended otherwise.
    pub outcome: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    pub decisions: Vec<db::approvals::DecisionRow>,
    pub promoted: Vec<Promoted>,
    /// Who started its execution (an ARN for a person's start).
    pub started_by: String,
}

impl ApprovalView {
    pub fn approvals(&self) -> usize {
        self.decisions.iter().filter(|d| d.approved).count()
    }

    pub fn is_open(&self) -> bool {
        self.outcome.is_none()
    }

    /// Who answered last (CodePipeline's `lastUpdatedBy`).
    pub fn last_updated_by(&self) -> Option<&str> {
        self.decisions.last().map(|d| d.principal.as_str())
    }
}

/// What an execution promotes: its source actions' revisions, with their names from its pinned
/// version.
async fn promoted_of(
    conn: &mut sqlx::PgConnection,
    execution_id: Uuid,
) -> Result<Vec<Promoted>, AppError> {
    let revisions = db::executions::revisions_of(conn, &[execution_id]).await?;
    let mut names = source_names(conn, &revisions).await?;
    Ok(revisions
        .into_iter()
        .map(|r| Promoted {
            action_name: names
                .remove(&(r.execution_id, r.stage_index, r.action_index))
                .unwrap_or_default(),
            commit_id: r.commit_id,
            message: r.commit_message.unwrap_or_default(),
            author_name: r.author_name.unwrap_or_default(),
            author_email: r.author_email.unwrap_or_default(),
            repository_url: r.repository_url,
        })
        .collect())
}

/// Builds the views of approval rows, with their answers (one query, only for approvals that
/// can have answers).
async fn views_of(
    conn: &mut sqlx::PgConnection,
    rows: Vec<db::approvals::ApprovalRow>,
) -> Result<Vec<ApprovalView>, AppError> {
    // An open approval that one answer decides has no answers yet.
    let ids: Vec<Uuid> = rows
        .iter()
        .filter(|r| r.outcome.is_some() || r.status != "InProgress" || r.required_approvals > 1)
        .map(|r| r.id)
        .collect();
    let mut decisions: HashMap<Uuid, Vec<db::approvals::DecisionRow>> = HashMap::new();
    if !ids.is_empty() {
        for d in db::approvals::decisions(conn, &ids).await? {
            decisions.entry(d.approval_id).or_default().push(d);
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let rules = stored_rules(&r);
            let outcome = match (&r.outcome, r.status.as_str()) {
                (Some(o), _) => Some(o.clone()),
                (None, "InProgress") => None,
                (None, status) => Some(status.to_string()),
            };
            ApprovalView {
                started_by: r.started_by,
                decisions: decisions.remove(&r.id).unwrap_or_default(),
                promoted: serde_json::from_value(r.promoted).unwrap_or_default(),
                id: r.id,
                pipeline_name: r.pipeline_name,
                execution_id: r.execution_id,
                stage_name: r.stage_name,
                action_name: r.action_name,
                token: r.token,
                requested_at: r.requested_at,
                deadline: r.deadline,
                custom_data: r.custom_data,
                external_entity_link: r.external_entity_link,
                rules,
                outcome,
                decided_at: r.decided_at,
            }
        })
        .collect())
}

/// The names of the source actions of these revisions, from their executions' pinned versions.
async fn source_names(
    conn: &mut sqlx::PgConnection,
    revisions: &[db::executions::RevisionRow],
) -> Result<HashMap<(Uuid, i32, i32), String>, AppError> {
    let mut names = HashMap::new();
    for r in revisions {
        let decl = executions::declaration(conn, r.pipeline_id, r.pipeline_version).await?;
        if let Some(action) = usize::try_from(r.stage_index)
            .ok()
            .and_then(|si| decl.stages.get(si))
            .and_then(|st| {
                usize::try_from(r.action_index)
                    .ok()
                    .and_then(|ai| st.actions.get(ai))
            })
        {
            names.insert(
                (r.execution_id, r.stage_index, r.action_index),
                action.name.clone(),
            );
        }
    }
    Ok(names)
}

/// The approvals of these attempts (for GetPipelineState and ListActionExecutions), by attempt.
pub(super) async fn of_attempts(
    conn: &mut sqlx::PgConnection,
    attempts: &[Uuid],
) -> Result<HashMap<Uuid, ApprovalView>, AppError> {
    if attempts.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = db::approvals::of_attempts(conn, attempts).await?;
    Ok(views_of(conn, rows)
        .await?
        .into_iter()
        .map(|v| (v.id, v))
        .collect())
}

/// One waiting approval the caller may answer, and what they may do there.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub approval: ApprovalView,
    /// Why the caller may only reject (they started the execution, or wrote its revision, and
    /// the gate forbids approving one's own).
    pub reject_only: Option<String>,
}

/// A page of the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbox {
    pub items: Vec<Pending>,
    /// How many approvals the caller may answer in all.
    pub total: usize,
    /// The marker of the next page, if any.
    pub next: Option<String>,
}

/// The most approvals one page of the inbox shows.
pub const INBOX_PAGE: usize = 50;

/// What the caller may answer: the gates whose open approvals count their answer, and the open
/// approvals of those gates they answered already (so they are left out).
struct Answerable {
    gates: Vec<db::approvals::OpenGate>,
    answered: Vec<Uuid>,
    total: usize,
    /// The caller's groups (read only when a gate names groups).
    groups: Vec<String>,
}

/// The gates with open approvals the caller may answer: each gate authorized once as
/// `codepipeline:PutApprovalResult` on its action (so a user allowed on one action sees that one
/// only), and kept only where the gate's rules would count the caller's answer (a member of its
/// groups); approvals they answered already are left out. Reads the open approvals grouped by
/// gate, not one by one.
async fn answerable(conn: &mut sqlx::PgConnection, c: &Caller) -> Result<Answerable, AppError> {
    let gates = db::approvals::open_gates(conn).await?;
    let mut allowed: HashMap<(String, String, String), bool> = HashMap::new();
    let gates: Vec<db::approvals::OpenGate> = gates
        .into_iter()
        .filter(|g| {
            *allowed
                .entry((
                    g.pipeline_name.clone(),
                    g.stage_name.clone(),
                    g.action_name.clone(),
                ))
                .or_insert_with(|| {
                    c.can(
                        Action::PutApprovalResult,
                        &Resource::pipeline_action(&g.pipeline_name, &g.stage_name, &g.action_name),
                    )
                })
        })
        .collect();
    if gates.is_empty() {
        return Ok(Answerable {
            gates,
            answered: Vec::new(),
            total: 0,
            groups: Vec::new(),
        });
    }
    let groups = if gates.iter().any(|g| !g.approver_groups.is_empty()) {
        db::groups::names_for_user(conn, c.user_id).await?
    } else {
        Vec::new()
    };
    let principal = Resource::user(c.user_name()).to_string();
    let approver = Approver {
        principal: &principal,
        groups: &groups,
        started_execution: false,
        authored_revision: false,
    };
    // Would the caller's rejection count there? Then they may answer.
    let gates: Vec<db::approvals::OpenGate> = gates
        .into_iter()
        .filter(|g| {
            let rules = Rules::stored(g.required_approvals, &g.approver_groups, false, false);
            approval::decide(&rules, &[], &approver, false, "a comment").is_ok()
        })
        .collect();
    let answered: Vec<Uuid> = if gates.iter().any(|g| g.required_approvals > 1) {
        db::approvals::open_answered_by(conn, &principal)
            .await?
            .into_iter()
            .filter(|(_, gate)| gates.iter().any(|g| g.id == *gate))
            .map(|(id, _)| id)
            .collect()
    } else {
        Vec::new()
    };
    let open: i64 = gates.iter().map(|g| g.open).sum();
    let total = usize::try_from(open)
        .unwrap_or(0)
        .saturating_sub(answered.len());
    Ok(Answerable {
        gates,
        answered,
        total,
        groups,
    })
}

fn inbox_marker(at: OffsetDateTime, id: Uuid) -> String {
    format!("{}_{id}", at.unix_timestamp_nanos())
}

fn parse_inbox_marker(text: &str) -> Option<(OffsetDateTime, Uuid)> {
    let (nanos, id) = text.split_once('_')?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos.parse().ok()?).ok()?;
    Some((at, id.parse().ok()?))
}

/// The approvals inbox: a page of the open approvals the caller may answer ([`answerable`]),
/// oldest request first, after the marker `after` (a marker that does not read starts over),
/// with what each promotes and whether the caller may only reject it.
pub async fn inbox(s: &Services, c: &Caller, after: Option<&str>) -> Result<Inbox, AppError> {
    let mut conn = s.pool.acquire().await?;
    let mine = answerable(&mut conn, c).await?;
    if mine.gates.is_empty() {
        return Ok(Inbox {
            items: Vec::new(),
            total: 0,
            next: None,
        });
    }
    let gates: Vec<i64> = mine.gates.iter().map(|g| g.id).collect();
    let mut rows = db::approvals::open_of_gates(
        &mut conn,
        &gates,
        &mine.answered,
        after.and_then(parse_inbox_marker),
        i64::try_from(INBOX_PAGE).unwrap_or(50) + 1,
    )
    .await?;
    let next = if rows.len() > INBOX_PAGE {
        rows.truncate(INBOX_PAGE);
        rows.last().map(|r| inbox_marker(r.requested_at, r.id))
    } else {
        None
    };
    let groups = &mine.groups;
    let principal = Resource::user(c.user_name()).to_string();
    let items = views_of(&mut conn, rows)
        .await?
        .into_iter()
        .map(|v| {
            let approver = approver_facts(c, &principal, groups, &v);
            let reject_only =
                approval::decide(&v.rules, &recorded_of(&v), &approver, true, "a comment")
                    .err()
                    .map(|why| why.to_string());
            Pending {
                approval: v,
                reject_only,
            }
        })
        .collect();
    Ok(Inbox {
        items,
        total: mine.total,
        next,
    })
}

fn recorded_of(v: &ApprovalView) -> Vec<Recorded> {
    v.decisions
        .iter()
        .map(|d| Recorded {
            principal: d.principal.clone(),
            approve: d.approved,
        })
        .collect()
}

fn approver_facts<'a>(
    c: &Caller,
    principal: &'a str,
    groups: &'a [String],
    v: &ApprovalView,
) -> Approver<'a> {
    Approver {
        principal,
        groups,
        started_execution: v.started_by.eq_ignore_ascii_case(principal),
        authored_revision: v.promoted.iter().any(|p| p.written_by(c.user_name())),
    }
}

/// How many approvals the caller may answer (the navigation's count).
pub async fn inbox_count(s: &Services, c: &Caller) -> Result<usize, AppError> {
    let mut conn = s.pool.acquire().await?;
    Ok(answerable(&mut conn, c).await?.total)
}

/// The commits a review lists: those since the execution last approved at this gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// No execution was approved here before.
    FirstApproval,
    /// The commits after `since` up to the promoted one, newest first (empty: the same commit).
    Commits { since: String, commits: Vec<Commit> },
    /// The last approved commit is not among the ones the source saw (more than it keeps, or
    /// the branch was rewritten).
    Unknown { since: String, shown: Vec<Commit> },
}

pub use crate::providers::SourceCommit as Commit;

/// The review of one approval: the approval, what each source promotes since the last approval
/// here, and what the caller may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub approval: ApprovalView,
    /// Per source action (by name): the commits since the last approval at this gate.
    pub since: Vec<(String, Since)>,
    /// The caller may answer (the policies allow it and the rules count them).
    pub can_answer: bool,
    /// Why the caller may not answer, or may only reject.
    pub note: Option<String>,
    pub reject_only: bool,
}

/// An approval's review: authorized as `codepipeline:GetPipelineState` on its pipeline (what
/// the pipeline view shows); whether the caller may answer is the same decision
/// PutApprovalResult makes (the policies, then the rules).
pub async fn review(
    s: &Services,
    c: &Caller,
    pipeline_name: &str,
    approval_id: Uuid,
) -> Result<Review, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::GetPipelineState,
        Resource::pipeline(pipeline_name),
        json!({"pipelineName": pipeline_name, "approvalId": approval_id}),
        async |op| {
            let not_found = || AppError::NotFound {
                code: "ActionExecutionNotFoundException",
                message: format!("The pipeline '{pipeline_name}' has no approval {approval_id}"),
            };
            let pipeline =
                db::pipelines::find(op.conn(), super::pipelines::existing_name(pipeline_name)?)
                    .await?
                    .ok_or_else(|| executions::pipeline_not_found(pipeline_name))?;
            let row = db::approvals::of_attempts(op.conn(), &[approval_id])
                .await?
                .into_iter()
                .find(|r| r.pipeline_id == pipeline.id)
                .ok_or_else(not_found)?;
            let latest = row.latest;
            let v = views_of(op.conn(), vec![row])
                .await?
                .pop()
                .ok_or_else(not_found)?;
            let since = commits_since(op.conn(), pipeline.id, &v).await?;
            let caller = op.caller();
            let allowed = caller.can(
                Action::PutApprovalResult,
                &Resource::pipeline_action(&v.pipeline_name, &v.stage_name, &v.action_name),
            );
            let (can_answer, note, reject_only) = if !v.is_open() || !latest {
                (false, None, false)
            } else if !allowed {
                (
                    false,
                    Some("Your permissions do not let you answer this approval.".to_string()),
                    false,
                )
            } else {
                let groups = db::groups::names_for_user(op.conn(), caller.user_id).await?;
                let principal = Resource::user(caller.user_name()).to_string();
                let approver = approver_facts(caller, &principal, &groups, &v);
                let recorded = recorded_of(&v);
                match approval::decide(&v.rules, &recorded, &approver, false, "a comment") {
                    Err(why) => (false, Some(why.to_string()), false),
                    Ok(_) => {
                        match approval::decide(&v.rules, &recorded, &approver, true, "a comment") {
                            Ok(_) => (true, None, false),
                            Err(why) => (true, Some(why.to_string()), true),
                        }
                    }
                }
            };
            Ok(Review {
                approval: v,
                since,
                can_answer,
                note,
                reject_only,
            })
        },
    )
    .await
}

/// For each source the execution promotes, the commits since the execution last approved at
/// the same gate (from the commits the Git source recorded behind the one it checked out).
async fn commits_since(
    conn: &mut sqlx::PgConnection,
    pipeline_id: Uuid,
    v: &ApprovalView,
) -> Result<Vec<(String, Since)>, AppError> {
    let previous = db::approvals::last_approved_execution(
        conn,
        pipeline_id,
        &v.stage_name,
        &v.action_name,
        v.execution_id,
    )
    .await?;
    let now_revisions = db::executions::revisions_of(conn, &[v.execution_id]).await?;
    let mut names = source_names(conn, &now_revisions).await?;
    let before: HashMap<String, String> = match previous {
        None => HashMap::new(),
        Some(previous) => {
            let revisions = db::executions::revisions_of(conn, &[previous]).await?;
            let mut names = source_names(conn, &revisions).await?;
            revisions
                .into_iter()
                .filter_map(|r| {
                    let name = names.remove(&(r.execution_id, r.stage_index, r.action_index))?;
                    Some((name, r.commit_id))
                })
                .collect()
        }
    };
    let mut seen: HashMap<(i32, i32), Option<serde_json::Value>> =
        db::approvals::source_commits(conn, v.execution_id)
            .await?
            .into_iter()
            .map(|(si, ai, _, commits)| ((si, ai), commits))
            .collect();
    let mut out = Vec::new();
    for r in now_revisions {
        let Some(name) = names.remove(&(r.execution_id, r.stage_index, r.action_index)) else {
            continue;
        };
        let commits: Vec<Commit> = seen
            .remove(&(r.stage_index, r.action_index))
            .flatten()
            .and_then(|c| serde_json::from_value(c).ok())
            .unwrap_or_default();
        let since = match (previous, before.get(&name)) {
            (None, _) | (Some(_), None) => Since::FirstApproval,
            (Some(_), Some(since)) => match commits.iter().position(|c| c.id == *since) {
                Some(at) => Since::Commits {
                    since: since.clone(),
                    commits: commits[..at].to_vec(),
                },
                None if r.commit_id == *since => Since::Commits {
                    since: since.clone(),
                    commits: Vec::new(),
                },
                None => Since::Unknown {
                    since: since.clone(),
                    shown: commits,
                },
            },
        };
        out.push((name, since));
    }
    Ok(out)
}
