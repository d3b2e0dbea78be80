//! The execution engine's rules, pure: no IO, no clock. A pipeline's runs (every execution that is
//! not finished, plus what the stages remember) and one event go into [`planner::apply`]; out come
//! the next states and the effects to carry out (actions to start or abandon, status changes to
//! store). The persistence layer applies those in one transaction; workers run the actions.
//!
//! The rules are CodePipeline's: runOrder groups, failure, the three execution modes with stage
//! locks and inbound executions, disabled transitions, stop-and-wait and stop-and-abandon, and
//! RetryStageExecution.

pub mod approval;
pub mod events;
pub mod planner;
pub mod rollout;
mod shape;
mod state;
pub mod variables;

#[cfg(test)]
mod tests;

pub use planner::{Effect, Event, Refusal, apply};
pub use shape::{Shape, StageShape};
pub use state::{
    ActionRun, ActionStatus, Execution, ExecutionId, ExecutionStatus, Place, Runs, StageRun,
    StageStatus,
};
