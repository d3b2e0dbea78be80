//! The planner: one event applied to a pipeline's runs. Every rule of CodePipeline's execution
//! semantics lives here and nowhere else:
//!
//! - **Flow.** An execution arrives at stage 0, then at each next stage once the previous one
//!   succeeded. Inside a stage the lowest runOrder group starts; the next group starts when every
//!   action of the previous one succeeded; the stage succeeds when the last group has.
//! - **Failure.** A failed action starts nothing new; actions still running finish; then the stage
//!   and the execution fail, and the stage is released.
//! - **Gates.** Outside PARALLEL a stage holds one execution at a time; others wait in front of it
//!   (its inbound executions), as they do in front of a disabled inbound transition, in every mode.
//!   SUPERSEDED keeps one waiting execution per stage (a newer one supersedes it); QUEUED keeps a
//!   first-come, first-served queue.
//! - **Stop.** Stop-and-wait lets running actions finish and starts nothing; stop-and-abandon
//!   abandons them at once. A waiting execution stops at once and never enters.
//! - **Retry.** Only the latest execution to enter a stage may retry it (outside PARALLEL), only a
//!   stage that failed or was stopped: FAILED_ACTIONS re-runs what did not succeed in the group
//!   that stopped, ALL_ACTIONS the whole stage from its first group.
//!
//! A completion for an attempt that is not the current one, or for an action that is no longer
//! running (abandoned, superseded), changes nothing.

use std::sync::Arc;

use super::shape::Shape;
use super::state::{
    ActionStatus, Execution, ExecutionId, ExecutionStatus, Place, Runs, StageStatus,
};
use crate::pipeline::ExecutionMode;

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new execution of the pipeline version `shape` (StartPipelineExecution, a trigger, or
    /// CreatePipeline's first run). `seq` orders executions by start.
    Start {
        id: ExecutionId,
        seq: u64,
        shape: Arc<Shape>,
    },
    /// A ROLLBACK execution (RollbackStage, or a stage's `onFailure: ROLLBACK`): it runs only the
    /// stage `stage` of `shape`, from its gate, and ends when that stage does.
    Rollback {
        id: ExecutionId,
        seq: u64,
        shape: Arc<Shape>,
        stage: usize,
    },
    /// A worker finished an action's attempt.
    ActionCompleted {
        id: ExecutionId,
        stage: usize,
        action: usize,
        attempt: u32,
        succeeded: bool,
    },
    /// StopPipelineExecution.
    Stop { id: ExecutionId, abandon: bool },
    /// RetryStageExecution.
    Retry {
        id: ExecutionId,
        stage: String,
        all_actions: bool,
    },
    /// EnableStageTransition / DisableStageTransition (inbound) of the stage named `stage`.
    Transition { stage: String, enabled: bool },
}

/// What to do about it besides storing the new states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    ExecutionStatus {
        id: ExecutionId,
        status: ExecutionStatus,
    },
    StageStatus {
        id: ExecutionId,
        stage: usize,
        status: StageStatus,
    },
    /// Enqueue a job for this attempt.
    StartAction {
        id: ExecutionId,
        stage: usize,
        action: usize,
        attempt: u32,
    },
    /// Record the attempt's end (its job, if still running, is told to stop for Abandoned).
    ActionStatus {
        id: ExecutionId,
        stage: usize,
        action: usize,
        attempt: u32,
        status: ActionStatus,
    },
    /// The execution now waits in front of `stage`.
    Waiting { id: ExecutionId, stage: usize },
}

/// Why an event cannot be applied, with CodePipeline's exception names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the pipeline has no execution with this id")]
    ExecutionNotFound,
    #[error("the execution is already {0}; it cannot be stopped")]
    NotStoppable(&'static str),
    #[error("the execution is already stopping; only abandoning it is possible now")]
    DuplicatedStop,
    #[error(
        "a newer execution has entered the stage {0}; only the latest execution in a stage can be retried"
    )]
    NotLatest(String),
    #[error("{0}")]
    StageNotRetryable(String),
    #[error("an execution with this id exists already")]
    DuplicateExecution,
}

impl Refusal {
    /// CodePipeline's exception name.
    pub fn exception(&self) -> &'static str {
        match self {
            Refusal::ExecutionNotFound => "PipelineExecutionNotFoundException",
            Refusal::NotStoppable(_) => "PipelineExecutionNotStoppableException",
            Refusal::DuplicatedStop => "DuplicatedStopRequestException",
            Refusal::NotLatest(_) => "NotLatestPipelineExecutionException",
            Refusal::StageNotRetryable(_) => "StageNotRetryableException",
            Refusal::DuplicateExecution => "ValidationException",
        }
    }
}

/// Applies one event to `runs`, returning the effects in the order they happened. On a refusal,
/// `runs` is unchanged.
pub fn apply(runs: &mut Runs, event: Event) -> Result<Vec<Effect>, Refusal> {
    let mut plan = Planner {
        runs,
        effects: Vec::new(),
    };
    match event {
        Event::Start { id, seq, shape } => {
            if plan.runs.index(id).is_some() {
                return Err(Refusal::DuplicateExecution);
            }
            plan.runs.executions.push(Execution::new(id, seq, shape));
            plan.arrive(id, 0);
        }
        Event::Rollback {
            id,
            seq,
            shape,
            stage,
        } => {
            if plan.runs.index(id).is_some() {
                return Err(Refusal::DuplicateExecution);
            }
            if stage >= shape.stages.len() {
                return Err(Refusal::StageNotRetryable(
                    "the pipeline has no such stage to roll back".into(),
                ));
            }
            let mut e = Execution::new(id, seq, shape);
            e.only_stage = Some(stage);
            plan.runs.executions.push(e);
            plan.arrive(id, stage);
        }
        Event::ActionCompleted {
            id,
            stage,
            action,
            attempt,
            succeeded,
        } => plan.complete(id, stage, action, attempt, succeeded),
        Event::Stop { id, abandon } => plan.stop(id, abandon)?,
        Event::Retry {
            id,
            stage,
            all_actions,
        } => plan.retry(id, &stage, all_actions)?,
        Event::Transition { stage, enabled } => {
            if enabled {
                plan.runs.disabled.remove(&stage);
            } else {
                plan.runs.disabled.insert(stage);
            }
        }
    }
    plan.settle();
    Ok(plan.effects)
}

struct Planner<'a> {
    runs: &'a mut Runs,
    effects: Vec<Effect>,
}

impl Planner<'_> {
    fn exec(&mut self, id: ExecutionId) -> &mut Execution {
        let i = self
            .runs
            .index(id)
            .expect("the planner only names executions it holds");
        &mut self.runs.executions[i]
    }

    fn set_execution(&mut self, id: ExecutionId, status: ExecutionStatus) {
        let e = self.exec(id);
        if e.status != status {
            e.status = status;
            if status.is_terminal() {
                e.place = Place::Finished;
            }
            self.effects.push(Effect::ExecutionStatus { id, status });
        }
    }

    fn set_stage(&mut self, id: ExecutionId, stage: usize, status: StageStatus) {
        let e = self.exec(id);
        if e.stages[stage].status != Some(status) {
            e.stages[stage].status = Some(status);
            self.effects.push(Effect::StageStatus { id, stage, status });
        }
    }

    fn set_action(&mut self, id: ExecutionId, stage: usize, action: usize, status: ActionStatus) {
        let e = self.exec(id);
        let run = &mut e.stages[stage].actions[action];
        run.status = Some(status);
        let attempt = run.attempt;
        self.effects.push(Effect::ActionStatus {
            id,
            stage,
            action,
            attempt,
            status,
        });
    }

    fn start_action(&mut self, id: ExecutionId, stage: usize, action: usize) {
        let e = self.exec(id);
        let run = &mut e.stages[stage].actions[action];
        run.attempt += 1;
        run.status = Some(ActionStatus::InProgress);
        let attempt = run.attempt;
        self.effects.push(Effect::StartAction {
            id,
            stage,
            action,
            attempt,
        });
    }

    /// The execution reaches the gate of `stage` (or the end of the pipeline).
    fn arrive(&mut self, id: ExecutionId, stage: usize) {
        let e = self.exec(id);
        let past_its_stage = e.only_stage.is_some_and(|only| stage > only);
        if stage >= e.shape.stages.len() || past_its_stage {
            self.set_execution(id, ExecutionStatus::Succeeded);
            return;
        }
        self.runs.clock += 1;
        let since = self.runs.clock;
        self.exec(id).place = Place::Waiting { stage, since };
        self.effects.push(Effect::Waiting { id, stage });
        if self.runs.mode == ExecutionMode::Superseded {
            self.supersede_at(id, stage);
        }
    }

    /// SUPERSEDED: one execution waits per stage; of two, the newer stays.
    fn supersede_at(&mut self, id: ExecutionId, stage: usize) {
        let name = self.exec(id).shape.stages[stage].name.clone();
        let others: Vec<(ExecutionId, u64)> = self
            .runs
            .waiting(&name)
            .iter()
            .map(|e| (e.id, e.seq))
            .collect();
        let Some(newest) = others.iter().max_by_key(|(_, seq)| *seq).map(|(id, _)| *id) else {
            return;
        };
        for (other, _) in others {
            if other != newest {
                self.set_execution(other, ExecutionStatus::Superseded);
            }
        }
    }

    /// Lets waiting executions in wherever their gate allows, until nothing moves.
    fn settle(&mut self) {
        loop {
            let next = self.runs.executions.iter().filter_map(|e| match e.place {
                Place::Waiting { stage, since } => Some((since, e.id, stage)),
                _ => None,
            });
            let mut candidates: Vec<(u64, ExecutionId, usize)> = next.collect();
            candidates.sort_unstable();
            let admitted = candidates
                .into_iter()
                .find(|(_, id, stage)| self.may_enter(*id, *stage));
            match admitted {
                Some((_, id, stage)) => self.enter(id, stage),
                None => break,
            }
        }
    }

    fn may_enter(&self, id: ExecutionId, stage: usize) -> bool {
        let e = self.runs.get(id).expect("a candidate exists");
        let name = &e.shape.stages[stage].name;
        // Stage 0 has no inbound transition.
        if stage > 0 && self.runs.disabled.contains(name) {
            return false;
        }
        if self.runs.mode == ExecutionMode::Parallel {
            return true;
        }
        self.runs.occupant(name).is_none()
            && self.runs.waiting(name).first().map(|w| w.id) == Some(id)
    }

    fn enter(&mut self, id: ExecutionId, stage: usize) {
        let name = self.exec(id).shape.stages[stage].name.clone();
        self.runs.latest.insert(name, id);
        self.exec(id).place = Place::In { stage };
        self.set_stage(id, stage, StageStatus::InProgress);
        self.progress(id, stage);
    }

    /// Moves an execution on inside its stage after any change there.
    fn progress(&mut self, id: ExecutionId, stage: usize) {
        let e = self.exec(id);
        let actions = &e.stages[stage].actions;
        let running = actions
            .iter()
            .any(|a| a.status == Some(ActionStatus::InProgress));
        let failed = actions
            .iter()
            .any(|a| a.status == Some(ActionStatus::Failed));
        if e.status == ExecutionStatus::Stopping {
            if !running {
                self.set_stage(id, stage, StageStatus::Stopped);
                self.set_execution(id, ExecutionStatus::Stopped);
            }
            return;
        }
        if failed {
            if !running {
                self.set_stage(id, stage, StageStatus::Failed);
                self.set_execution(id, ExecutionStatus::Failed);
            }
            return;
        }
        let shape = e.shape.clone();
        let current = shape.stages[stage].groups.iter().find(|group| {
            group
                .iter()
                .any(|a| actions[*a].status != Some(ActionStatus::Succeeded))
        });
        match current {
            None => {
                self.set_stage(id, stage, StageStatus::Succeeded);
                self.arrive(id, stage + 1);
            }
            Some(group) => {
                let to_start: Vec<usize> = group
                    .iter()
                    .copied()
                    .filter(|a| actions[*a].status.is_none())
                    .collect();
                for action in to_start {
                    self.start_action(id, stage, action);
                }
            }
        }
    }

    fn complete(
        &mut self,
        id: ExecutionId,
        stage: usize,
        action: usize,
        attempt: u32,
        succeeded: bool,
    ) {
        let Some(e) = self.runs.get(id) else { return };
        let current = e.place == Place::In { stage }
            && e.stages
                .get(stage)
                .and_then(|s| s.actions.get(action))
                .is_some_and(|a| {
                    a.attempt == attempt && a.status == Some(ActionStatus::InProgress)
                });
        if !current {
            return;
        }
        let status = if succeeded {
            ActionStatus::Succeeded
        } else {
            ActionStatus::Failed
        };
        self.set_action(id, stage, action, status);
        self.progress(id, stage);
    }

    fn stop(&mut self, id: ExecutionId, abandon: bool) -> Result<(), Refusal> {
        let e = self.runs.get(id).ok_or(Refusal::ExecutionNotFound)?;
        match (e.status, abandon) {
            (status, _) if status.is_terminal() => {
                return Err(Refusal::NotStoppable(status.as_str()));
            }
            (ExecutionStatus::Stopping, false) => return Err(Refusal::DuplicatedStop),
            _ => {}
        }
        match e.place {
            Place::Waiting { .. } | Place::Finished => {
                self.set_execution(id, ExecutionStatus::Stopped);
            }
            Place::In { stage } => {
                if abandon {
                    let running: Vec<usize> = e.stages[stage]
                        .actions
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| a.status == Some(ActionStatus::InProgress))
                        .map(|(i, _)| i)
                        .collect();
                    for action in running {
                        self.set_action(id, stage, action, ActionStatus::Abandoned);
                    }
                }
                self.set_execution(id, ExecutionStatus::Stopping);
                self.set_stage(id, stage, StageStatus::Stopping);
                self.progress(id, stage);
            }
        }
        Ok(())
    }

    fn retry(&mut self, id: ExecutionId, stage_name: &str, all: bool) -> Result<(), Refusal> {
        let e = self.runs.get(id).ok_or(Refusal::ExecutionNotFound)?;
        let stage = e.shape.stage_index(stage_name).ok_or_else(|| {
            Refusal::StageNotRetryable(format!("the execution has no stage {stage_name}"))
        })?;
        let retryable = matches!(e.status, ExecutionStatus::Failed | ExecutionStatus::Stopped)
            && matches!(
                e.stages[stage].status,
                Some(StageStatus::Failed | StageStatus::Stopped)
            );
        if !retryable {
            return Err(Refusal::StageNotRetryable(format!(
                "the stage {stage_name} of this execution neither failed nor was stopped"
            )));
        }
        if self.runs.mode != ExecutionMode::Parallel
            && self.runs.latest.get(stage_name) != Some(&id)
        {
            return Err(Refusal::NotLatest(stage_name.to_string()));
        }
        let e = self.exec(id);
        for run in &mut e.stages[stage].actions {
            if all || run.status != Some(ActionStatus::Succeeded) {
                run.status = None;
            }
        }
        e.place = Place::In { stage };
        self.set_execution(id, ExecutionStatus::InProgress);
        self.set_stage(id, stage, StageStatus::InProgress);
        self.progress(id, stage);
        Ok(())
    }
}
