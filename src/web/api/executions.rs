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
    "EnableStageTransition",
    "DisableStageTransition",
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
            let given = i
                .variables
                .unwrap_or_default()
                .into_iter()
                .map(|v| (v.name, v.value))
                .collect();
            let id = executions::start_pipeline_execution(s, c, &i.name, given).await?;
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
                "startTime": epoch(e.started),
                "lastUpdateTime": epoch(e.updated),
            }})
        }
        "ListPipelineExecutions" => {
            let i: List = parse(input)?;
            let page = executions::list_pipeline_executions(
                s,
                c,
                &i.pipeline_name,
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
                    "sourceRevisions": [],
                    "trigger": {"triggerType": e.trigger.trigger_type, "triggerDetail": e.trigger.detail},
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
    max_results: Option<i64>,
    next_token: Option<String>,
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
