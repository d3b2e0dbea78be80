//! Periodic maintenance: removing what has expired (sessions, sign-in failures, refusal counters,
//! unclaimed new-token pages). It runs as the engine principal: no person asked for it, so it is
//! not audited as a person's act. The periodic work's leader (`workers::leader`) runs it, once
//! across every process sharing the database.

use std::time::Duration as StdDuration;

use crate::db;
use crate::error::AppError;
use crate::ops::{Services, iam, throttle};

/// How often maintenance runs.
pub const INTERVAL: StdDuration = StdDuration::from_secs(3600);

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub sessions: u64,
    pub sign_in_failures: u64,
    pub throttle_counters: u64,
    pub token_reveals: u64,
}

/// One pass, in one transaction.
pub async fn prune(s: &Services) -> Result<Pruned, AppError> {
    let now = s.clock.now();
    let mut tx = s.pool.begin().await?;
    let pruned = Pruned {
        sessions: db::sessions::delete_expired(&mut tx, now, now - s.sessions.idle).await?,
        sign_in_failures: db::throttle::prune(&mut tx, now - throttle::WINDOW).await?,
        throttle_counters: db::throttle::prune_throttled(&mut tx, now - throttle::WINDOW).await?,
        token_reveals: db::access_keys::prune_reveals(&mut tx, now - iam::REVEAL_WINDOW).await?,
    };
    tx.commit().await?;
    Ok(pruned)
}
