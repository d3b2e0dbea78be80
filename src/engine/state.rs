//! The states of executions, stages and actions (CodePipeline's enums), and the runs of one
//! pipeline: what the planner reads and changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use uuid::Uuid;

use super::shape::Shape;
use crate::pipeline::ExecutionMode;

pub type ExecutionId = Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionStatus {
    InProgress,
    Stopping,
    Stopped,
    Succeeded,
    Failed,
    Superseded,
    Cancelled,
}

impl ExecutionStatus {
    /// Reads CodePipeline's spelling back.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "InProgress" => ExecutionStatus::InProgress,
            "Stopping" => ExecutionStatus::Stopping,
            "Stopped" => ExecutionStatus::Stopped,
            "Succeeded" => ExecutionStatus::Succeeded,
            "Failed" => ExecutionStatus::Failed,
            "Superseded" => ExecutionStatus::Superseded,
            "Cancelled" => ExecutionStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            ExecutionStatus::InProgress | ExecutionStatus::Stopping
        )
    }

    /// CodePipeline's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::InProgress => "InProgress",
            ExecutionStatus::Stopping => "Stopping",
            ExecutionStatus::Stopped => "Stopped",
            ExecutionStatus::Succeeded => "Succeeded",
            ExecutionStatus::Failed => "Failed",
            ExecutionStatus::Superseded => "Superseded",
            ExecutionStatus::Cancelled => "Cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageStatus {
    InProgress,
    Stopping,
    Stopped,
    Succeeded,
    Failed,
    Cancelled,
    Skipped,
}

impl StageStatus {
    /// Reads CodePipeline's spelling back.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "InProgress" => StageStatus::InProgress,
            "Stopping" => StageStatus::Stopping,
            "Stopped" => StageStatus::Stopped,
            "Succeeded" => StageStatus::Succeeded,
            "Failed" => StageStatus::Failed,
            "Cancelled" => StageStatus::Cancelled,
            "Skipped" => StageStatus::Skipped,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::InProgress => "InProgress",
            StageStatus::Stopping => "Stopping",
            StageStatus::Stopped => "Stopped",
            StageStatus::Succeeded => "Succeeded",
            StageStatus::Failed => "Failed",
            StageStatus::Cancelled => "Cancelled",
            StageStatus::Skipped => "Skipped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionStatus {
    InProgress,
    Succeeded,
    Failed,
    Abandoned,
}

impl ActionStatus {
    /// Reads CodePipeline's spelling back.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "InProgress" => ActionStatus::InProgress,
            "Succeeded" => ActionStatus::Succeeded,
            "Failed" => ActionStatus::Failed,
            "Abandoned" => ActionStatus::Abandoned,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::InProgress => "InProgress",
            ActionStatus::Succeeded => "Succeeded",
            ActionStatus::Failed => "Failed",
            ActionStatus::Abandoned => "Abandoned",
        }
    }
}

/// One action within one execution: its latest attempt (0 = never started) and that attempt's
/// status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActionRun {
    pub attempt: u32,
    pub status: Option<ActionStatus>,
}

/// One stage within one execution (`status` is `None` until the execution enters it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRun {
    pub status: Option<StageStatus>,
    pub actions: Vec<ActionRun>,
}

/// Where an execution is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// In front of stage `stage` (its inbound execution), since the runs' logical time `since`.
    Waiting { stage: usize, since: u64 },
    /// Inside stage `stage` (the stage is locked by it, outside PARALLEL mode).
    In { stage: usize },
    /// Terminal.
    Finished,
}

/// One pipeline execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub id: ExecutionId,
    /// Start order within the pipeline: a newer execution has a larger `seq`.
    pub seq: u64,
    /// The pipeline version it runs, pinned.
    pub shape: Arc<Shape>,
    pub status: ExecutionStatus,
    pub place: Place,
    pub stages: Vec<StageRun>,
    /// A ROLLBACK execution runs only this stage.
    pub only_stage: Option<usize>,
}

impl Execution {
    pub fn new(id: ExecutionId, seq: u64, shape: Arc<Shape>) -> Execution {
        let stages = shape
            .stages
            .iter()
            .map(|s| StageRun {
                status: None,
                actions: vec![ActionRun::default(); s.actions.len()],
            })
            .collect();
        Execution {
            id,
            seq,
            shape,
            status: ExecutionStatus::InProgress,
            place: Place::Finished,
            stages,
            only_stage: None,
        }
    }

    /// The name of the stage it is in or waiting for.
    pub fn gate(&self) -> Option<&str> {
        match self.place {
            Place::Waiting { stage, .. } | Place::In { stage } => {
                Some(self.shape.stages[stage].name.as_str())
            }
            Place::Finished => None,
        }
    }
}

/// The runs of one pipeline: its executions that are not finished (finished ones may stay, and
/// are ignored but for retries), which inbound transitions are disabled, and which execution
/// entered each stage last (only that one may be retried there).
#[derive(Debug, Clone, PartialEq)]
pub struct Runs {
    pub mode: ExecutionMode,
    pub executions: Vec<Execution>,
    /// Stage names whose inbound transition is disabled.
    pub disabled: BTreeSet<String>,
    /// Stage name → the execution that entered it last.
    pub latest: BTreeMap<String, ExecutionId>,
    /// Logical time: orders arrivals at a gate (QUEUED is first come, first served).
    pub clock: u64,
}

impl Runs {
    pub fn new(mode: ExecutionMode) -> Runs {
        Runs {
            mode,
            executions: Vec::new(),
            disabled: BTreeSet::new(),
            latest: BTreeMap::new(),
            clock: 0,
        }
    }

    pub fn get(&self, id: ExecutionId) -> Option<&Execution> {
        self.executions.iter().find(|e| e.id == id)
    }

    pub(super) fn index(&self, id: ExecutionId) -> Option<usize> {
        self.executions.iter().position(|e| e.id == id)
    }

    /// The execution inside the stage named `name`, if any.
    pub fn occupant(&self, name: &str) -> Option<&Execution> {
        self.executions
            .iter()
            .find(|e| matches!(e.place, Place::In { .. }) && e.gate() == Some(name))
    }

    /// The executions waiting in front of the stage named `name`, first arrived first.
    pub fn waiting(&self, name: &str) -> Vec<&Execution> {
        let mut waiting: Vec<&Execution> = self
            .executions
            .iter()
            .filter(|e| matches!(e.place, Place::Waiting { .. }) && e.gate() == Some(name))
            .collect();
        waiting.sort_by_key(|e| match e.place {
            Place::Waiting { since, .. } => since,
            _ => u64::MAX,
        });
        waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_what_they_write() {
        for s in [
            ExecutionStatus::InProgress,
            ExecutionStatus::Stopping,
            ExecutionStatus::Stopped,
            ExecutionStatus::Succeeded,
            ExecutionStatus::Failed,
            ExecutionStatus::Superseded,
            ExecutionStatus::Cancelled,
        ] {
            assert_eq!(ExecutionStatus::parse(s.as_str()), Some(s));
        }
        for s in [
            StageStatus::InProgress,
            StageStatus::Stopping,
            StageStatus::Stopped,
            StageStatus::Succeeded,
            StageStatus::Failed,
            StageStatus::Cancelled,
            StageStatus::Skipped,
        ] {
            assert_eq!(StageStatus::parse(s.as_str()), Some(s));
        }
        for s in [
            ActionStatus::InProgress,
            ActionStatus::Succeeded,
            ActionStatus::Failed,
            ActionStatus::Abandoned,
        ] {
            assert_eq!(ActionStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ExecutionStatus::parse("inprogress"), None);
    }
}
