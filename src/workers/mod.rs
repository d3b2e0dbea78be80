//! The worker pool: workers claim jobs from the PostgreSQL queue, run them under a lease they
//! renew while they work, and finish them fenced by that lease. Any number of processes (`sluice
//! serve --workers N`, later `sluice worker`) may share one database.
//!
//! Wake-ups: `LISTEN` on the queue's channel (one NOTIFY per enqueuing transaction), with a poll
//! of at most [`PoolSettings::poll`] behind it. Expired leases are returned by the rescuer, which
//! every process runs (rescuing takes each lease once however many race, see `db::jobs::rescue`).
//! No transaction or pooled connection is held while an action runs.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::db::{self, jobs::Claimed};
use crate::ops::Services;
use crate::ops::executions::{self, ACTION_JOB, ActionJob};
use crate::providers;

mod logs;

/// How the pool runs.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub workers: u16,
    /// How long a claim lasts without renewal; renewed every third of it.
    pub lease: time::Duration,
    /// The longest a worker waits for work without looking (if a notification is missed).
    pub poll: StdDuration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            workers: 4,
            lease: time::Duration::seconds(30),
            poll: StdDuration::from_secs(1),
        }
    }
}

/// Where the pool is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Claim nothing new; let running jobs finish.
    Draining,
    /// Give running jobs back now.
    Abort,
}

pub struct WorkerPool {
    phase: watch::Sender<Phase>,
    workers: Vec<JoinHandle<()>>,
    helpers: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    /// Starts the listener, the rescuer and `settings.workers` workers (none when 0).
    pub fn start(services: Services, settings: PoolSettings) -> WorkerPool {
        let (phase, watcher) = watch::channel(Phase::Running);
        let wake = Arc::new(Notify::new());
        let mut helpers = Vec::new();
        let mut workers = Vec::new();
        if settings.workers > 0 {
            helpers.push(tokio::spawn(listen(services.clone(), wake.clone())));
            helpers.push(tokio::spawn(rescue_loop(services.clone(), settings)));
            for _ in 0..settings.workers {
                workers.push(tokio::spawn(work(
                    services.clone(),
                    settings,
                    Uuid::new_v4(),
                    wake.clone(),
                    watcher.clone(),
                )));
            }
        }
        WorkerPool {
            phase,
            workers,
            helpers,
        }
    }

    /// Stops claiming, lets running jobs finish for up to `grace`, then gives the rest back.
    pub async fn shutdown(self, grace: StdDuration) {
        let _ = self.phase.send(Phase::Draining);
        let mut workers = self.workers;
        let all = futures_util::future::join_all(workers.iter_mut());
        if tokio::time::timeout(grace, all).await.is_err() {
            let _ = self.phase.send(Phase::Abort);
            for w in workers {
                let _ = w.await;
            }
        }
        for h in self.helpers {
            h.abort();
        }
    }
}

/// Wakes waiting workers on every notification of the queue's channel; reconnects on failure.
async fn listen(s: Services, wake: Arc<Notify>) {
    loop {
        match sqlx::postgres::PgListener::connect_with(&s.pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(db::jobs::CHANNEL).await {
                    tracing::warn!(error = %e, "cannot listen for jobs; polling meanwhile");
                } else {
                    while listener.recv().await.is_ok() {
                        wake.notify_waiters();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for jobs; polling meanwhile"),
        }
        tokio::time::sleep(StdDuration::from_secs(1)).await;
    }
}

/// Returns expired leases twice per lease period; fails action jobs out of attempts.
async fn rescue_loop(s: Services, settings: PoolSettings) {
    let period = StdDuration::from_secs_f64((settings.lease.as_seconds_f64() / 2.0).max(0.5));
    loop {
        tokio::time::sleep(period).await;
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
                        && let Err(e) = executions::abandon_action_job(&s, &r.payload).await
                    {
                        tracing::error!(error = %e, job = r.id, "failing a rescued action failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "the lease rescuer failed; retrying"),
        }
    }
}

async fn work(
    s: Services,
    settings: PoolSettings,
    owner: Uuid,
    wake: Arc<Notify>,
    mut phase: watch::Receiver<Phase>,
) {
    loop {
        if *phase.borrow() != Phase::Running {
            return;
        }
        let notified = wake.notified();
        let claimed = async {
            let mut conn = s.pool.acquire().await?;
            db::jobs::claim(&mut conn, owner, 1, s.clock.now(), settings.lease).await
        }
        .await;
        match claimed {
            Ok(mut jobs) if !jobs.is_empty() => {
                let job = jobs.remove(0);
                run_job(&s, settings, job, &mut phase).await;
            }
            Ok(_) => {
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(settings.poll) => {}
                    _ = phase.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "claiming a job failed; retrying");
                tokio::time::sleep(settings.poll).await;
            }
        }
    }
}

/// Runs one claimed job to its end: finished under its lease, dropped when the lease is lost, or
/// given back when the pool aborts.
async fn run_job(
    s: &Services,
    settings: PoolSettings,
    job: Claimed,
    phase: &mut watch::Receiver<Phase>,
) {
    let renew_every = StdDuration::from_secs_f64((settings.lease.as_seconds_f64() / 3.0).max(0.1));
    let renewals = async {
        loop {
            tokio::time::sleep(renew_every).await;
            let renewed = async {
                let mut conn = s.pool.acquire().await?;
                db::jobs::renew(&mut conn, job.id, job.lease, s.clock.now(), settings.lease).await
            }
            .await;
            match renewed {
                Ok(true) => {}
                Ok(false) => return,
                // A database hiccup: keep working; the lease lasts a while yet.
                Err(e) => tracing::warn!(error = %e, job = job.id, "renewing a lease failed"),
            }
        }
    };
    let aborted = async {
        while *phase.borrow_and_update() != Phase::Abort {
            if phase.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        result = handle(s, &job) => {
            match executions::finish_action_job(s, &job, &result).await {
                Ok(true) => {}
                Ok(false) => tracing::info!(job = job.id, "the job's lease was lost; its result is dropped"),
                Err(e) => tracing::error!(error = %e, job = job.id, "recording a job's result failed; its lease will expire"),
            }
        }
        () = renewals => tracing::warn!(job = job.id, "the job's lease was lost or it was cancelled; stopped"),
        () = aborted => {
            let given = async {
                let mut conn = s.pool.acquire().await?;
                db::jobs::give_back(&mut conn, job.id, job.lease, s.clock.now()).await
            }
            .await;
            if let Err(e) = given {
                tracing::warn!(error = %e, job = job.id, "giving a job back failed; its lease will expire");
            }
        }
    }
}

/// What a job does, by kind.
async fn handle(s: &Services, job: &Claimed) -> Result<providers::Output, String> {
    if job.kind != ACTION_JOB {
        return Err(format!("no worker here runs {} jobs", job.kind));
    }
    let prepared = match ActionJob::of(&job.payload) {
        Ok(a) => executions::prepare_action(s, &a).await,
        Err(e) => Err(e),
    };
    match prepared {
        Ok(Some(Ok(mut prepared))) => {
            let (lines, flusher) = logs::start(s.pool.clone(), prepared.action_execution_id);
            prepared.context.log =
                providers::log::Log::new(lines, std::mem::take(&mut prepared.secrets));
            let type_id = &prepared.context.action.action_type_id;
            prepared.context.log.line(&format!(
                "[sluice] {}/{}/{}/{} on {} (job {}, try {})",
                type_id.category,
                type_id.owner,
                type_id.provider,
                type_id.version,
                hostname(),
                job.id,
                job.attempt
            ));
            let result = providers::run(&prepared.context).await;
            if let Err(summary) = &result {
                prepared
                    .context
                    .log
                    .line(&format!("[sluice] failed: {}", first_line(summary)));
            }
            // Every sender gone, the flusher writes what is left and ends; the result is recorded
            // after the log is complete (a bounded wait: a stuck database must not hold the job).
            drop(prepared);
            if tokio::time::timeout(StdDuration::from_secs(10), flusher)
                .await
                .is_err()
            {
                tracing::warn!(
                    job = job.id,
                    "the action's last log lines were not written in time"
                );
            }
            result
        }
        Ok(Some(Err(summary))) => Err(summary),
        Ok(None) => Err("the execution no longer exists".into()),
        Err(e) => {
            tracing::error!(error = %e, job = job.id, "preparing an action job failed");
            Err("Sluice could not prepare this action; the problem has been logged".into())
        }
    }
}

/// A failure's summary without the log tail it quotes (the log has those lines already).
fn first_line(summary: &str) -> &str {
    summary
        .split_once("; last lines of the log:")
        .map_or(summary, |(head, _)| head)
}

/// This machine's name, for logs and the workers page.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
