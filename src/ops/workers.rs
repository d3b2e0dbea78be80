//! The worker pools sharing this database, as `/admin/workers` shows them (`sluice:ListWorkers`).

use std::collections::HashMap;

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Caller, Kind, Op, Services};
use crate::access::{Action, Resource};
use crate::db;
use crate::error::AppError;

/// A pool whose heartbeat is older than this is shown as lost (it beats every 10 s).
pub const LOST_AFTER: time::Duration = time::Duration::seconds(45);
/// Stopped and lost pools are shown for this long.
const SHOWN_FOR: time::Duration = time::Duration::hours(24);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolState {
    Running,
    Stopped,
    /// It stopped beating without saying it stopped (killed, or cut off from the database).
    Lost,
}

/// An action a pool runs now.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningAction {
    pub pipeline: String,
    pub execution_id: Uuid,
    pub stage: String,
    pub action: String,
    pub attempt_id: Uuid,
    pub since: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolView {
    pub id: Uuid,
    pub host: String,
    pub pid: i32,
    pub version: String,
    pub kind: String,
    pub slots: i32,
    pub labels: crate::workers::labels::Labels,
    pub started: OffsetDateTime,
    pub heartbeat: OffsetDateTime,
    pub state: PoolState,
    pub running: Vec<RunningAction>,
}

/// ListWorkers: the pools seen in the last day, running ones first, with what they run.
pub async fn list_workers(s: &Services, c: &Caller) -> Result<Vec<PoolView>, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::ListWorkers,
        Resource::All,
        json!({}),
        async |op| {
            let now = op.now();
            let pools = db::workers::recent(op.conn(), now - SHOWN_FOR).await?;
            let running = db::workers::running(op.conn()).await?;
            let mut names: HashMap<(Uuid, i32), crate::pipeline::wire::PipelineDeclaration> =
                HashMap::new();
            let mut by_pool: HashMap<Uuid, Vec<RunningAction>> = HashMap::new();
            for r in running {
                let key = (r.pipeline_id, r.pipeline_version);
                if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(key)
                    && let Some(v) =
                        db::pipelines::version(op.conn(), r.pipeline_id, r.pipeline_version).await?
                    && let Ok(decl) = serde_json::from_str(&v.declaration)
                {
                    slot.insert(decl);
                }
                let (stage, action) = names
                    .get(&key)
                    .and_then(|d| {
                        let st = d.stages.get(usize::try_from(r.stage_index).ok()?)?;
                        let a = st.actions.get(usize::try_from(r.action_index).ok()?)?;
                        Some((st.name.clone(), a.name.clone()))
                    })
                    .unwrap_or_else(|| ("?".into(), "?".into()));
                by_pool.entry(r.pool).or_default().push(RunningAction {
                    pipeline: r.pipeline_name,
                    execution_id: r.execution_id,
                    stage,
                    action,
                    attempt_id: r.attempt_id,
                    since: r.claimed_at,
                });
            }
            Ok(pools
                .into_iter()
                .map(|p| PoolView {
                    state: state_of(p.stopped_at, p.heartbeat_at, now),
                    running: by_pool.remove(&p.id).unwrap_or_default(),
                    id: p.id,
                    host: p.host,
                    pid: p.pid,
                    version: p.version,
                    kind: p.kind,
                    slots: p.slots,
                    labels: crate::workers::labels::Labels::from_stored(p.labels),
                    started: p.started_at,
                    heartbeat: p.heartbeat_at,
                })
                .collect())
        },
    )
    .await
}

/// A pool's state from what it last said.
fn state_of(
    stopped: Option<OffsetDateTime>,
    heartbeat: OffsetDateTime,
    now: OffsetDateTime,
) -> PoolState {
    if stopped.is_some() {
        PoolState::Stopped
    } else if now - heartbeat > LOST_AFTER {
        PoolState::Lost
    } else {
        PoolState::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_that_stopped_beating_is_lost_and_one_that_said_so_is_stopped() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let s = time::Duration::seconds;
        assert_eq!(state_of(None, now - s(10), now), PoolState::Running);
        assert_eq!(state_of(None, now - LOST_AFTER, now), PoolState::Running);
        assert_eq!(
            state_of(None, now - LOST_AFTER - s(1), now),
            PoolState::Lost
        );
        assert_eq!(state_of(Some(now), now - s(600), now), PoolState::Stopped);
    }
}
