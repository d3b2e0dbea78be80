//! The execution operations of the API, in CodePipeline's shapes.

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ApiError, epoch, parse};
use crate::error::AppError;
use crate::ops::executions;
use crate::ops::{Caller, Page, Services};

pub const OPERATIONS: &[&str] = &[
    "StartPipelineExecution",
    "StopPipelineExecution",
    "GetPipelineExecution",
    "ListPipelineExecutions",
    "GetPipelineState",
    "RetryStageExecution",
    "RollbackStage",
    "EnableStageTransition",
    "DisableStageTransition",
    "ListActionExecutions",
    "GetActionExecutionLog",
    "ListWorkers",
    "PutApprovalResult",
];

pub async fn call(
    s: &Services,
    c: &Caller,
    operation: &str,
    input: Value,
) -> Result<Value, ApiError> {
    Ok(match operation {
        "StartPipelineExecution" => {
            let i: Start = parse(input)?;
            let request = start_request(i.variables, i.client_request_token, i.source_revisions)?;
            let id = executions::start_pipeline_execution(s, c, &i.name, request).await?;
            json!({ "pipelineExecutionId": id })
        }
        "StopPipelineExecution" => {
            let i: Stop = parse(input)?;
            if i.reason.as_ref().is_some_and(|r| r.chars().count() > 200) {
                return Err(
                    AppError::validation("reason", "must be at most 200 characters").into(),
                );
            }
            let id = execution_id(&i.pipeline_execution_id)?;
            let id = executions::stop_pipeline_execution(
                s,
                c,
                &i.pipeline_name,
                id,
                i.abandon.unwrap_or(false),
                i.reason,
            )
            .await?;
            json!({ "pipelineExecutionId": id })
        }
        "GetPipelineExecution" => {
            let i: Get = parse(input)?;
            let id = execution_id(&i.pipeline_execution_id)?;
            let e = executions::get_pipeline_execution(s, c, &i.pipeline_name, id).await?;
            json!({ "pipelineExecution": {
                "pipelineName": e.pipeline_name,
                "pipelineVersion": e.pipeline_version,
                "pipelineExecutionId": e.id,
                "status": e.status,
                "trigger": {"triggerType": e.trigger.trigger_type, "triggerDetail": e.trigger.detail},
                "variables": e.variables.iter().map(|(n, v)| json!({"name": n, "resolvedValue": v})).collect::<Vec<_>>(),
                "artifactRevisions": [],
                "executionType": if e.rollback_target.is_some() { "ROLLBACK" } else { "STANDARD" },
                "rollbackMetadata": e.rollback_target.map(|t| json!({"rollbackTargetPipelineExecutionId": t})),
                "startTime": epoch(e.started),
                "lastUpdateTime": epoch(e.updated),
            }})
        }
        "ListPipelineExecutions" => {
            let i: List = parse(input)?;
            let stage = i
                .filter
                .and_then(|f| f.succeeded_in_stage)
                .map(|f| f.stage_name);
            let page = executions::list_pipeline_executions(
                s,
                c,
                &i.pipeline_name,
                stage.as_deref(),
                None,
                &Page {
                    next: i.next_token,
                    max: i.max_results,
                },
            )
            .await?;
            json!({
                "pipelineExecutionSummaries": page.items.iter().map(|e| json!({
                    "pipelineExecutionId": e.id,
                    "status": e.status,
                    "startTime": epoch(e.started),
                    "lastUpdateTime": epoch(e.updated),
                    "sourceRevisions": e.source_revisions.iter().map(|r| json!({
                        "actionName": r.action_name,
                        "revisionId": r.revision_id,
                        "revisionSummary": r.revision_summary,
                    })).collect::<Vec<_>>(),
                    "trigger": {"triggerType": e.trigger.trigger_type, "triggerDetail": e.trigger.detail},
                    "stopTrigger": e.stop_reason.as_ref().map(|r| json!({"reason": r})),
                    "executionType": if e.rollback_target.is_some() { "ROLLBACK" } else { "STANDARD" },
                    "rollbackMetadata": e.rollback_target.map(|t| json!({"rollbackTargetPipelineExecutionId": t})),
                })).collect::<Vec<_>>(),
                "nextToken": page.next,
            })
        }
        "GetPipelineState" => {
            let i: State = parse(input)?;
            let (pipeline, stages) = executions::get_pipeline_state(s, c, &i.name).await?;
            let execution = |e: &Option<(Uuid, String)>| {
                e.as_ref()
                    .map(|(id, status)| json!({"pipelineExecutionId": id, "status": status, "type": "STANDARD"}))
            };
            json!({
                "pipelineName": pipeline.name,
                "pipelineVersion": pipeline.current_version,
                "created": epoch(pipeline.created_at),
                "updated": epoch(pipeline.updated_at),
                "stageStates": stages.iter().map(|st| {
                    let mut state = json!({
                        "stageName": st.name,
                        "inboundExecutions": st.inbound.iter().map(|id| json!({"pipelineExecutionId": id, "status": "InProgress", "type": "STANDARD"})).collect::<Vec<_>>(),
                        "inboundTransitionState": match &st.disabled {
                            None => json!({"enabled": true}),
                            Some((reason, by, at)) => json!({"enabled": false, "disabledReason": reason, "lastChangedBy": by, "lastChangedAt": epoch(*at)}),
                        },
                        "actionStates": st.actions.iter().map(|a| {
                            let mut action = json!({"actionName": a.name});
                            if let Some((id, status, summary, at)) = &a.latest {
                                let mut latest = json!({"actionExecutionId": id, "status": status, "lastStatusChange": epoch(*at)});
                                if let Some(summary) = summary {
                                    latest["summary"] = json!(summary);
                                    if status == "Failed" {
                                        latest["errorDetails"] = json!({"code": "JobFailed", "message": summary});
                                    }
                                }
                                if let Some(approval) = &a.approval {
                                    latest["token"] = json!(approval.token);
                                    if let Some(by) = approval.last_updated_by() {
                                        latest["lastUpdatedBy"] = json!(by);
                                    }
                                }
                                action["latestExecution"] = latest;
                            }
                            action
                        }).collect::<Vec<_>>(),
                    });
                    if let Some(first) = st.inbound.first() {
                        state["inboundExecution"] = json!({"pipelineExecutionId": first, "status": "InProgress", "type": "STANDARD"});
                    }
                    if let Some(latest) = execution(&st.latest) {
                        state["latestExecution"] = latest;
                    }
                    state
                }).collect::<Vec<_>>(),
            })
        }
        "ListActionExecutions" => {
            let i: ListActions = parse(input)?;
            let filter = executions::AttemptFilter {
                execution_id: match i.filter.and_then(|f| f.pipeline_execution_id) {
                    Some(id) => Some(execution_id(&id)?),
                    None => None,
                },
            };
            let page = executions::list_action_executions(
                s,
                c,
                &i.pipeline_name,
                &filter,
                &Page {
                    next: i.next_token,
                    max: i.max_results,
                },
            )
            .await?;
            json!({
                "actionExecutionDetails": page.items.iter().map(|a| attempt_json(&i.pipeline_name, a)).collect::<Vec<_>>(),
                "nextToken": page.next,
            })
        }
        "GetActionExecutionLog" => {
            let i: GetLog = parse(input)?;
            let id = Uuid::parse_str(&i.action_execution_id).map_err(|_| {
                ApiError::from(AppError::validation(
                    "actionExecutionId",
                    "is not an action execution id",
                ))
            })?;
            let page = executions::action_log(
                s,
                c,
                &i.pipeline_name,
                id,
                i.start_line.unwrap_or(1),
                i.max_lines.unwrap_or(1000),
            )
            .await?;
            json!({
                "actionExecutionId": page.attempt.id,
                "status": page.attempt.status,
                "lines": page.lines.iter().map(|l| json!({"line": l.line, "timestamp": epoch(l.at), "text": l.text})).collect::<Vec<_>>(),
                "nextLine": page.next_line,
                "complete": page.complete,
            })
        }
        "ListWorkers" => {
            let _: Empty = parse(input)?;
            let pools = crate::ops::workers::list_workers(s, c).await?;
            json!({"workerPools": pools.iter().map(|p| json!({
                "id": p.id,
                "host": p.host,
                "pid": p.pid,
                "version": p.version,
                "command": p.kind,
                "workers": p.slots,
                "labels": p.labels.as_slice(),
                "state": match p.state {
                    crate::ops::workers::PoolState::Running => "Running",
                    crate::ops::workers::PoolState::Stopped => "Stopped",
                    crate::ops::workers::PoolState::Lost => "Lost",
                },
                "started": epoch(p.started),
                "lastHeartbeat": epoch(p.heartbeat),
                "running": p.running.iter().map(|r| json!({
                    "pipelineName": r.pipeline,
                    "pipelineExecutionId": r.execution_id,
                    "stageName": r.stage,
                    "actionName": r.action,
                    "actionExecutionId": r.attempt_id,
                    "since": r.since.map(epoch),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>()})
        }
        "RetryStageExecution" => {
            let i: Retry = parse(input)?;
            let id = execution_id(&i.pipeline_execution_id)?;
            let all = match i.retry_mode.as_str() {
                "FAILED_ACTIONS" => false,
                "ALL_ACTIONS" => true,
                _ => {
                    return Err(AppError::validation(
                        "retryMode",
                        "must be FAILED_ACTIONS or ALL_ACTIONS",
                    )
                    .into());
                }
            };
            let id =
                executions::retry_stage_execution(s, c, &i.pipeline_name, &i.stage_name, id, all)
                    .await?;
            json!({ "pipelineExecutionId": id })
        }
        "RollbackStage" => {
            let i: RollbackStage = parse(input)?;
            let target = execution_id(&i.target_pipeline_execution_id)?;
            let id =
                executions::rollback_stage(s, c, &i.pipeline_name, &i.stage_name, target).await?;
            json!({ "pipelineExecutionId": id })
        }
        "EnableStageTransition" | "DisableStageTransition" => {
            let i: Transition = parse(input)?;
            let outbound = match i.transition_type.as_str() {
                "Inbound" => false,
                "Outbound" => true,
                _ => {
                    return Err(AppError::validation(
                        "transitionType",
                        "must be Inbound or Outbound",
                    )
                    .into());
                }
            };
            let reason =
                if operation == "DisableStageTransition" {
                    Some(i.reason.ok_or_else(|| {
                        ApiError::from(AppError::validation("reason", "is required"))
                    })?)
                } else {
                    if i.reason.is_some() {
                        return Err(ApiError::serialization("reason: unknown field"));
                    }
                    None
                };
            executions::set_stage_transition(
                s,
                c,
                &i.pipeline_name,
                &i.stage_name,
                outbound,
                reason,
            )
            .await?;
            json!({})
        }
        "PutApprovalResult" => {
            let i: PutApproval = parse(input)?;
            let answer =
                crate::ops::approvals::Answer::parse(&i.result.status).ok_or_else(|| {
                    ApiError::from(AppError::validation(
                        "result.status",
                        "must be Approved or Rejected",
                    ))
                })?;
            let done = crate::ops::approvals::put_approval_result(
                s,
                c,
                &i.pipeline_name,
                &i.stage_name,
                &i.action_name,
                &i.token,
                answer,
                &i.result.summary,
            )
            .await?;
            let mut out = json!({ "approvedAt": epoch(done.at) });
            if let crate::engine::approval::Verdict::Counted {
                approvals,
                required,
            } = done.verdict
            {
                // Sluice: the gate needs more approvals.
                out["approvals"] = json!(approvals);
                out["requiredApprovals"] = json!(required);
            }
            out
        }
        other => {
            return Err(ApiError::new(
                actix_web::http::StatusCode::BAD_REQUEST,
                "UnknownOperationException",
                format!("{other} is not an operation of this API"),
            ));
        }
    })
}

/// An execution id as sent: a UUID, or a validation error (never a database failure).
fn execution_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        AppError::validation("pipelineExecutionId", "is not a pipeline execution id").into()
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Variable {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Start {
    name: String,
    variables: Option<Vec<Variable>>,
    client_request_token: Option<String>,
    source_revisions: Option<Vec<RevisionOverride>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevisionOverride {
    action_name: String,
    revision_type: String,
    revision_value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Stop {
    pipeline_name: String,
    pipeline_execution_id: String,
    abandon: Option<bool>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Get {
    pipeline_name: String,
    pipeline_execution_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct List {
    pipeline_name: String,
    filter: Option<ExecutionFilter>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExecutionFilter {
    succeeded_in_stage: Option<StageFilter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StageFilter {
    stage_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListActions {
    pipeline_name: String,
    filter: Option<ActionFilter>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ActionFilter {
    pipeline_execution_id: Option<String>,
    /// Accepted for compatibility; every attempt of the filtered executions is listed.
    #[allow(dead_code)]
    latest_in_pipeline_execution: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GetLog {
    pipeline_name: String,
    action_execution_id: String,
    start_line: Option<i32>,
    max_lines: Option<i64>,
}

/// An attempt in ListActionExecutions' `ActionExecutionDetail` shape.
fn attempt_json(pipeline: &str, a: &executions::AttemptView) -> Value {
    let artifact = |(name, address): &(String, String)| json!({"name": name, "s3location": {"bucket": "sluice-artifacts", "key": address}});
    let mut result = json!({
        "externalExecutionId": a.id,
        "externalExecutionUrl": format!("/pipelines/{pipeline}/actions/{}/log", a.id),
    });
    if let Some(approval) = &a.approval {
        // CodePipeline: a PARALLEL pipeline's approvals are answered with this id as the token.
        result["externalExecutionId"] = json!(approval.token);
        result["externalExecutionUrl"] = json!(format!("/pipelines/{pipeline}/approvals/{}", a.id));
    }
    if let Some(summary) = &a.summary {
        result["externalExecutionSummary"] = json!(summary);
        if a.status == "Failed" {
            result["errorDetails"] = json!({"code": "JobFailed", "message": summary});
        }
    }
    let mut input = json!({
        "actionTypeId": a.action.action_type_id,
        "configuration": a.action.configuration.clone().unwrap_or_default(),
        "inputArtifacts": a.input_artifacts.iter().map(artifact).collect::<Vec<_>>(),
    });
    if let Some(resolved) = &a.resolved_configuration {
        input["resolvedConfiguration"] = resolved.clone();
    }
    if let Some(ns) = &a.action.namespace {
        input["namespace"] = json!(ns);
    }
    let mut detail = json!({
        "pipelineExecutionId": a.execution_id,
        "actionExecutionId": a.id,
        "pipelineVersion": a.pipeline_version,
        "stageName": a.stage_name,
        "actionName": a.action_name,
        "startTime": epoch(a.started),
        "lastUpdateTime": epoch(a.updated),
        "status": a.status,
        "input": input,
        "output": {
            "outputArtifacts": a.output_artifacts.iter().map(artifact).collect::<Vec<_>>(),
            "executionResult": result,
            "outputVariables": a.output_variables,
        },
    });
    if let Some(approval) = &a.approval {
        detail["approval"] = approval_json(approval);
    }
    detail
}

/// Sluice's extension of ActionExecutionDetail for a manual approval: its rules, deadline,
/// outcome and every answer that counted.
fn approval_json(a: &crate::ops::approvals::ApprovalView) -> Value {
    json!({
        "token": a.token,
        "requestedAt": epoch(a.requested_at),
        "expires": epoch(a.deadline),
        "customData": a.custom_data,
        "externalEntityLink": a.external_entity_link,
        "requiredApprovals": a.rules.required(),
        "approverGroups": a.rules.groups().iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "forbidSelfApproval": a.rules.forbid_self(),
        "requireComment": a.rules.require_comment(),
        "outcome": a.outcome,
        "decidedAt": a.decided_at.map(epoch),
        "decisions": a.decisions.iter().map(|d| json!({
            "principal": d.principal,
            "userName": d.user_name,
            "status": if d.approved { "Approved" } else { "Rejected" },
            "summary": d.comment,
            "sourceAddress": d.source_address,
            "decidedAt": epoch(d.decided_at),
        })).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PutApproval {
    pipeline_name: String,
    stage_name: String,
    action_name: String,
    result: ApprovalResult,
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalResult {
    summary: String,
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Retry {
    pipeline_name: String,
    stage_name: String,
    pipeline_execution_id: String,
    retry_mode: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RollbackStage {
    pipeline_name: String,
    stage_name: String,
    target_pipeline_execution_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Transition {
    pipeline_name: String,
    stage_name: String,
    transition_type: String,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct State {
    name: String,
}

/// StartPipelineExecution's input, checked: variables as pairs, the token's shape, the overrides'
/// revision types and sizes (that each names a source action is the operation's check).
fn start_request(
    variables: Option<Vec<Variable>>,
    token: Option<String>,
    overrides: Option<Vec<RevisionOverride>>,
) -> Result<executions::StartRequest, ApiError> {
    if let Some(t) = &token
        && (t.is_empty()
            || t.len() > 128
            || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(AppError::validation(
            "clientRequestToken",
            "must be 1 to 128 of A-Z a-z 0-9 -",
        )
        .into());
    }
    let overrides = overrides.unwrap_or_default();
    if overrides.len() > 50 {
        return Err(AppError::validation("sourceRevisions", "at most 50 overrides").into());
    }
    let mut source_revisions = Vec::new();
    for o in overrides {
        if !matches!(
            o.revision_type.as_str(),
            "COMMIT_ID" | "IMAGE_DIGEST" | "S3_OBJECT_VERSION_ID" | "S3_OBJECT_KEY"
        ) {
            return Err(AppError::validation(
                "sourceRevisions",
                "revisionType must be COMMIT_ID, IMAGE_DIGEST, S3_OBJECT_VERSION_ID or S3_OBJECT_KEY",
            )
            .into());
        }
        if o.revision_value.is_empty() || o.revision_value.len() > 1500 {
            return Err(AppError::validation(
                "sourceRevisions",
                "revisionValue must be 1 to 1500 characters",
            )
            .into());
        }
        source_revisions.push(executions::SourceRevisionOverride {
            action_name: o.action_name,
            revision_type: o.revision_type,
            revision_value: o.revision_value,
        });
    }
    Ok(executions::StartRequest {
        variables: variables
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.value))
            .collect(),
        client_request_token: token,
        source_revisions,
    })
}
