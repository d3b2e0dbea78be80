//! The periodic work that must run once across every process sharing the database: returning
//! expired leases (the rescuer), failing approvals past their deadline, pruning what has expired, forgetting long-gone worker pools.
//! Every process takes part in the election, a session-level advisory lock on a connection of its
//! own: whoever holds it is the leader until its connection ends (it stops, crashes, or loses the
//! database), and then another process takes over within [`ELECTION`].

use std::time::Duration as StdDuration;

use crate::db;
use crate::ops::Services;
use crate::ops::executions::{self, ACTION_JOB};

/// How often a process that is not the leader tries to become it.
pub const ELECTION: StdDuration = StdDuration::from_secs(2);
/// How often the leader returns expired leases. Fixed rather than derived from a lease: pools
/// with different leases share one rescuer, and the query is an index scan that finds nothing
/// most of the time.
pub const RESCUE_EVERY: StdDuration = StdDuration::from_secs(1);
/// How long a stopped or lost worker pool stays on `/admin/workers`.
const POOLS_KEPT: time::Duration = time::Duration::days(1);

/// Takes part in the election for as long as the future runs.
pub async fn run(s: Services) {
    loop {
        match lead(&s).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "the periodic work's leader lost the database"),
        }
        tokio::time::sleep(ELECTION).await;
    }
}

/// Leads while the lock and its connection last; `Ok` when another process leads.
async fn lead(s: &Services) -> Result<(), sqlx::Error> {
    // A connection of its own, never returned to the pool: the lock lives exactly as long as it.
    let mut conn = s.pool.acquire().await?.detach();
    if !db::workers::try_lead(&mut conn).await? {
        return Ok(());
    }
    tracing::info!("this process runs the periodic work (rescuer, pruning, polling)");
    // Polling waits on remote repositories: it runs beside the rest, and ends with the lead.
    let poller = AbortOnDrop(tokio::spawn(poll(s.clone())));
    let mut rescue = tokio::time::interval(RESCUE_EVERY);
    let mut prune = tokio::time::interval(crate::maintenance::INTERVAL);
    rescue.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = rescue.tick() => {
                db::workers::ping(&mut conn).await?;
                rescue_once(s).await;
                match crate::ops::approvals::expire_approvals(s).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(approvals = n, "approvals timed out"),
                    Err(e) => tracing::warn!(error = %e, "timing out approvals failed; retrying"),
                }
            }
            _ = prune.tick() => {
                db::workers::ping(&mut conn).await?;
                match crate::maintenance::prune(s).await {
                    Ok(p) => tracing::debug!(?p, "maintenance: pruned expired rows"),
                    Err(e) => tracing::warn!(error = %e, "maintenance failed; retrying at the next interval"),
                }
                if let Err(e) = db::workers::prune(&mut conn, s.clock.now() - POOLS_KEPT).await {
                    tracing::warn!(error = %e, "forgetting old worker pools failed");
                }
                expire_all(s).await;
            }
        }
        let _ = &poller;
    }
}

/// Aborts its task when dropped (the lead ended, by an error or the lock's loss).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Polls the sources that ask for it every `poll_interval`, give or take a tenth (so that
/// installations started together do not ask their hosts at the same moment).
async fn poll(s: Services) {
    loop {
        let mut byte = [0u8; 1];
        let _ = getrandom::fill(&mut byte);
        let spread = 0.9 + 0.2 * f64::from(byte[0]) / 255.0;
        tokio::time::sleep(s.poll_interval.mul_f64(spread)).await;
        match crate::ops::hooks::poll_once(&s).await {
            Ok(p) if !p.started.is_empty() => tracing::info!(
                repositories = p.repositories,
                started = p.started.len(),
                "polling started executions"
            ),
            Ok(p) => tracing::debug!(repositories = p.repositories, actions = p.actions, "polled"),
            Err(e) => {
                tracing::warn!(error = %e, "polling failed; trying again at the next interval")
            }
        }
    }
}

/// Runs the artifact retention until no execution is due.
pub async fn expire_all(s: &Services) -> usize {
    let mut total = 0;
    loop {
        match executions::expire_artifacts(s).await {
            Ok(0) => return total,
            Ok(n) => {
                total += n;
                tracing::info!(
                    executions = n,
                    "deleted the artifacts of executions past their retention"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "the artifact retention failed; retrying at the next interval");
                return total;
            }
        }
    }
}

/// Returns expired leases; an action job out of attempts fails its action.
pub async fn rescue_once(s: &Services) {
    let rescued = async {
        let mut conn = s.pool.acquire().await?;
        db::jobs::rescue(&mut conn, s.clock.now()).await
    }
    .await;
    match rescued {
        Ok(rescued) => {
            for r in rescued {
                tracing::warn!(
                    job = r.id,
                    attempt = r.attempt,
                    retried = r.retried,
                    "a job's worker stopped answering"
                );
                if !r.retried
                    && r.kind == ACTION_JOB
                    && let Err(e) = executions::abandon_action_job(s, &r.payload).await
                {
                    tracing::error!(error = %e, job = r.id, "failing a rescued action failed");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "the lease rescuer failed; retrying"),
    }
}
