//! Action providers: what runs an action of each built-in type on a worker. Each type gets a
//! module of its own as it becomes runnable (Git source and Command build next); until then a
//! worker that picks up such an action fails it with a summary saying so, rather than leaving
//! the execution waiting forever.

use crate::ops::executions::ActionToRun;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// With the summary shown on the action.
    Failed(String),
}

/// Runs one attempt of an action. Dropping the future stops the work (a lost lease, an
/// abandoned action, a worker giving its jobs back).
pub async fn run(action: &ActionToRun) -> Outcome {
    let id = &action.action.action_type_id;
    Outcome::Failed(format!(
        "this Sluice cannot run {}/{}/{}/{} actions yet",
        id.category, id.owner, id.provider, id.version
    ))
}
