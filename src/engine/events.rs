//! The state changes of executions, stages and actions as CodePipeline's EventBridge events
//! (`detail-type` and `detail`, spec §7.1), made from the planner's effects. Pure: the caller
//! stores them in the transaction that applies the effects, for notifications to deliver.

use serde_json::{Value, json};

use super::{ActionStatus, Effect, ExecutionStatus, Shape, StageStatus};

pub const PIPELINE_STATE_CHANGE: &str = "CodePipeline Pipeline Execution State Change";
pub const STAGE_STATE_CHANGE: &str = "CodePipeline Stage Execution State Change";
pub const ACTION_STATE_CHANGE: &str = "CodePipeline Action Execution State Change";

/// One event: its detail type and its detail.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub detail_type: &'static str,
    pub detail: Value,
}

/// What the events say about an execution besides its effects.
pub struct Context<'a> {
    pub pipeline: &'a str,
    /// The execution these effects start (it begins InProgress, so no effect says so).
    pub started: Option<uuid::Uuid>,
    /// A new execution's trigger: (trigger type, detail).
    pub trigger: Option<(&'a str, &'a str)>,
    /// The comment of a stop (StopPipelineExecution's reason).
    pub stop_comment: Option<&'a str>,
    /// Whether the effects come from a retry (an InProgress after it is RESUMED).
    pub resumed: bool,
}

fn execution_state(status: ExecutionStatus, resumed: bool) -> &'static str {
    match status {
        ExecutionStatus::InProgress if resumed => "RESUMED",
        ExecutionStatus::InProgress => "STARTED",
        ExecutionStatus::Stopping => "STOPPING",
        ExecutionStatus::Stopped => "STOPPED",
        ExecutionStatus::Succeeded => "SUCCEEDED",
        ExecutionStatus::Failed => "FAILED",
        ExecutionStatus::Superseded => "SUPERSEDED",
        ExecutionStatus::Cancelled => "CANCELED",
    }
}

fn stage_state(status: StageStatus, resumed: bool) -> Option<&'static str> {
    Some(match status {
        StageStatus::InProgress if resumed => "RESUMED",
        StageStatus::InProgress => "STARTED",
        StageStatus::Stopping => "STOPPING",
        StageStatus::Stopped => "STOPPED",
        StageStatus::Succeeded => "SUCCEEDED",
        StageStatus::Failed => "FAILED",
        StageStatus::Cancelled => "CANCELED",
        // A skipped stage never ran: nothing changed for anyone listening.
        StageStatus::Skipped => return None,
    })
}

fn action_state(status: ActionStatus) -> &'static str {
    match status {
        ActionStatus::InProgress => "STARTED",
        ActionStatus::Succeeded => "SUCCEEDED",
        ActionStatus::Failed => "FAILED",
        ActionStatus::Abandoned => "ABANDONED",
    }
}

/// The events of `effects`; `execution` finds an execution's pinned shape and version.
pub fn of<'s>(
    effects: &[Effect],
    context: &Context<'_>,
    execution: impl Fn(uuid::Uuid) -> Option<(&'s Shape, i32)>,
) -> Vec<StateChange> {
    let mut out = Vec::new();
    let announced = context.started.filter(|id| {
        !effects.iter().any(|e| {
            matches!(e, Effect::ExecutionStatus { id: other, status: ExecutionStatus::InProgress } if other == id)
        })
    });
    let started = announced.map(|id| Effect::ExecutionStatus {
        id,
        status: ExecutionStatus::InProgress,
    });
    for effect in started.iter().chain(effects) {
        match *effect {
            Effect::ExecutionStatus { id, status } => {
                let Some((_, version)) = execution(id) else {
                    continue;
                };
                let state = execution_state(status, context.resumed);
                let mut detail = json!({
                    "pipeline": context.pipeline,
                    "execution-id": id,
                    "state": state,
                    "version": version,
                });
                if state == "STARTED"
                    && let Some((trigger_type, trigger_detail)) = context.trigger
                {
                    detail["execution-trigger"] =
                        json!({"trigger-type": trigger_type, "trigger-detail": trigger_detail});
                }
                if state == "STOPPING"
                    && let Some(comment) = context.stop_comment
                {
                    detail["stop-execution-comments"] = json!(comment);
                }
                out.push(StateChange {
                    detail_type: PIPELINE_STATE_CHANGE,
                    detail,
                });
            }
            Effect::StageStatus { id, stage, status } => {
                let Some((shape, version)) = execution(id) else {
                    continue;
                };
                let (Some(state), Some(st)) = (
                    stage_state(status, context.resumed),
                    shape.stages.get(stage),
                ) else {
                    continue;
                };
                out.push(StateChange {
                    detail_type: STAGE_STATE_CHANGE,
                    detail: json!({
                        "pipeline": context.pipeline,
                        "execution-id": id,
                        "stage": st.name,
                        "state": state,
                        "version": version,
                    }),
                });
            }
            Effect::StartAction {
                id, stage, action, ..
            } => push_action(&mut out, context, &execution, id, stage, action, "STARTED"),
            Effect::ActionStatus {
                id,
                stage,
                action,
                status,
                ..
            } => push_action(
                &mut out,
                context,
                &execution,
                id,
                stage,
                action,
                action_state(status),
            ),
            Effect::Waiting { .. } => {}
        }
    }
    out
}

fn push_action<'s>(
    out: &mut Vec<StateChange>,
    context: &Context<'_>,
    execution: &impl Fn(uuid::Uuid) -> Option<(&'s Shape, i32)>,
    id: uuid::Uuid,
    stage: usize,
    action: usize,
    state: &str,
) {
    let Some((shape, version)) = execution(id) else {
        return;
    };
    let Some(st) = shape.stages.get(stage) else {
        return;
    };
    let Some(name) = st.actions.get(action) else {
        return;
    };
    let mut detail = json!({
        "pipeline": context.pipeline,
        "execution-id": id,
        "stage": st.name,
        "action": name,
        "state": state,
        "version": version,
        "region": "local",
    });
    if let Some([category, owner, provider, type_version]) = st.types.get(action) {
        detail["type"] = json!({
            "owner": owner, "category": category, "provider": provider, "version": type_version,
        });
    }
    out.push(StateChange {
        detail_type: ACTION_STATE_CHANGE,
        detail,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::StageShape;

    #[test]
    fn effects_become_codepipelines_state_change_events() {
        let mut stage = StageShape::new("Build", vec!["Compile".into()], &[1]);
        stage.types = vec![[
            "Build".into(),
            "Sluice".into(),
            "Command".into(),
            "1".into(),
        ]];
        let shape = Shape {
            stages: vec![stage],
        };
        let id = uuid::Uuid::new_v4();
        let effects = [
            Effect::ExecutionStatus {
                id,
                status: ExecutionStatus::InProgress,
            },
            Effect::StageStatus {
                id,
                stage: 0,
                status: StageStatus::InProgress,
            },
            Effect::StartAction {
                id,
                stage: 0,
                action: 0,
                attempt: 1,
            },
            Effect::StageStatus {
                id,
                stage: 0,
                status: StageStatus::Skipped,
            },
            Effect::Waiting { id, stage: 0 },
        ];
        let context = Context {
            pipeline: "web",
            started: None,
            trigger: Some(("StartPipelineExecution", "arn:sluice:iam:::user/ada")),
            stop_comment: None,
            resumed: false,
        };
        let events = of(&effects, &context, |e| (e == id).then_some((&shape, 3)));
        assert_eq!(events.len(), 3, "skipped stages and waits are not events");
        assert_eq!(events[0].detail_type, PIPELINE_STATE_CHANGE);
        assert_eq!(events[0].detail["state"], "STARTED");
        assert_eq!(
            events[0].detail["execution-trigger"]["trigger-type"],
            "StartPipelineExecution"
        );
        assert_eq!(events[1].detail["stage"], "Build");
        assert_eq!(events[2].detail["action"], "Compile");
        assert_eq!(events[2].detail["type"]["provider"], "Command");
        assert_eq!(events[2].detail["version"], 3);

        let resumed = Context {
            resumed: true,
            stop_comment: Some("hung"),
            trigger: None,
            ..context
        };
        let events = of(
            &[
                Effect::ExecutionStatus {
                    id,
                    status: ExecutionStatus::InProgress,
                },
                Effect::ExecutionStatus {
                    id,
                    status: ExecutionStatus::Stopping,
                },
                Effect::ActionStatus {
                    id,
                    stage: 0,
                    action: 0,
                    attempt: 1,
                    status: ActionStatus::Abandoned,
                },
            ],
            &resumed,
            |e| (e == id).then_some((&shape, 3)),
        );
        assert_eq!(events[0].detail["state"], "RESUMED");
        assert_eq!(events[1].detail["stop-execution-comments"], "hung");
        assert_eq!(events[2].detail["state"], "ABANDONED");
        assert!(
            of(&effects, &resumed, |_| None).is_empty(),
            "unknown executions say nothing"
        );
        let start = Context {
            started: Some(id),
            resumed: false,
            ..resumed
        };
        let events = of(&effects[1..2], &start, |e| (e == id).then_some((&shape, 3)));
        assert_eq!(
            events[0].detail["state"], "STARTED",
            "a new execution is announced"
        );
        assert_eq!(events[1].detail_type, STAGE_STATE_CHANGE);
    }
}
