//! The worker pool: workers claim jobs from the PostgreSQL queue, run them under a lease they
//! renew while they work, and finish them fenced by that lease. Any number of processes (`sluice
//! serve --workers N`, `sluice worker`) may share one database.
//!
//! Wake-ups: `LISTEN` on the queue's channel (one NOTIFY per enqueuing transaction), with a poll
//! of at most [`PoolSettings::poll`] behind it. Expired leases are returned by the rescuer, which
//! the [`leader`] runs: one process among all that share the database. No transaction or pooled
//! connection is held while an action runs. Each pool registers itself (`worker_pools`) and beats
//! every [`HEARTBEAT`], for `/admin/workers`.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::db::{self, jobs::Claimed};
use crate::ops::Services;
use crate::ops::deployments;
use crate::ops::executions::{self, ACTION_JOB, ActionJob};
use crate::providers;

pub mod labels;
pub mod leader;
mod logs;

/// How often a pool says it is alive.
pub const HEARTBEAT: StdDuration = StdDuration::from_secs(10);

/// Which command runs the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Serve,
    Worker,
}

impl PoolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Serve => "serve",
            PoolKind::Worker => "worker",
        }
    }
}

/// How the pool runs.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub workers: u16,
    pub kind: PoolKind,
    /// How long a claim lasts without renewal; renewed every third of it.
    pub lease: time::Duration,
    /// The longest a worker waits for work without looking (if a notification is missed).
    pub poll: StdDuration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            workers: 4,
            kind: PoolKind::Serve,
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
    id: Uuid,
    services: Services,
    phase: watch::Sender<Phase>,
    workers: Vec<JoinHandle<()>>,
    helpers: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    /// Registers the process with its heartbeat and starts the leader election (every process
    /// does, web-only ones too: `sluice keys rotate` must see every process that holds keys),
    /// and with `settings.workers` above 0 the listener and the workers.
    pub fn start(services: Services, settings: PoolSettings, labels: labels::Labels) -> WorkerPool {
        let (phase, watcher) = watch::channel(Phase::Running);
        let wake = services.wake.clone();
        let id = Uuid::new_v4();
        let in_groups = !labels.is_empty();
        let mut helpers = vec![
            tokio::spawn(leader::run(services.clone())),
            tokio::spawn(beat(services.clone(), id, settings, labels)),
        ];
        let mut workers = Vec::new();
        if settings.workers > 0 {
            let cancels = Cancels::default();
            let targeted = Arc::new(Notify::new());
            helpers.push(tokio::spawn(listen(
                services.clone(),
                id,
                Wakes {
                    any: wake.clone(),
                    targeted: targeted.clone(),
                },
                cancels.clone(),
            )));
            for _ in 0..settings.workers {
                workers.push(tokio::spawn(work(
                    services.clone(),
                    settings,
                    id,
                    Claims::Any,
                    wake.clone(),
                    cancels.clone(),
                    watcher.clone(),
                )));
            }
            // A host in a deployment group takes its hosts' jobs in a loop of its own, so that
            // a rollout running in this pool's only slot never waits on itself.
            if in_groups {
                workers.push(tokio::spawn(work(
                    services.clone(),
                    settings,
                    id,
                    Claims::Targeted,
                    targeted,
                    cancels.clone(),
                    watcher.clone(),
                )));
            }
        }
        WorkerPool {
            id,
            services,
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
        // A pooled connection may have been opened on an HTTP worker's runtime, which is gone
        // once HTTP has drained: such a connection fails and is discarded, so try a few.
        let mut last = None;
        for _ in 0..3 {
            let stopped = async {
                let mut conn = self.services.pool.acquire().await?;
                db::workers::stopped(&mut conn, self.id, self.services.clock.now()).await
            }
            .await;
            match stopped {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            tracing::warn!(error = %e, "could not record that the worker pool stopped");
        }
    }
}

/// Registers the pool, then keeps its heartbeat current.
async fn beat(s: Services, id: Uuid, settings: PoolSettings, labels: labels::Labels) {
    let now = s.clock.now();
    let row = db::workers::PoolRow {
        id,
        host: hostname(),
        pid: i32::try_from(std::process::id()).unwrap_or(0),
        version: crate::VERSION.to_string(),
        kind: settings.kind.as_str().to_string(),
        slots: i32::from(settings.workers),
        started_at: now,
        heartbeat_at: now,
        stopped_at: None,
        labels: labels.as_slice().to_vec(),
        public_url: s.public_url.clone(),
    };
    let mut registered = false;
    loop {
        let result = async {
            let mut conn = s.pool.acquire().await?;
            if registered {
                db::workers::heartbeat(&mut conn, id, s.clock.now()).await
            } else {
                db::workers::register(&mut conn, &row).await
            }
        }
        .await;
        match result {
            Ok(()) => registered = true,
            Err(e) => tracing::warn!(error = %e, "the worker pool's heartbeat failed; retrying"),
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

/// The running jobs of this pool that want to hear of their cancellation.
type Cancels = Arc<std::sync::Mutex<std::collections::HashMap<i64, Arc<Notify>>>>;

/// Which jobs a worker loop claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claims {
    /// Any job not targeted at a pool.
    Any,
    /// Only the jobs targeted at this pool (its host's part of a fleet deploy).
    Targeted,
}

/// What wakes the pool's two kinds of worker loops.
struct Wakes {
    any: Arc<Notify>,
    targeted: Arc<Notify>,
}

/// Wakes waiting workers on every notification of the queue's channels (the targeted one only
/// when the job is this pool's), and tells a running job it was cancelled; reconnects on failure.
async fn listen(s: Services, pool_id: Uuid, wakes: Wakes, cancels: Cancels) {
    let (wake, own) = (wakes.any, pool_id.to_string());
    loop {
        match sqlx::postgres::PgListener::connect_with(&s.pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener
                    .listen_all([
                        db::jobs::CHANNEL,
                        db::jobs::CANCEL_CHANNEL,
                        db::jobs::TARGETED_CHANNEL,
                    ])
                    .await
                {
                    tracing::warn!(error = %e, "cannot listen for jobs; polling meanwhile");
                } else {
                    // Anything may have happened while not listening.
                    wake.notify_waiters();
                    wakes.targeted.notify_waiters();
                    while let Ok(n) = listener.recv().await {
                        if n.channel() == db::jobs::TARGETED_CHANNEL {
                            if n.payload() == own {
                                wakes.targeted.notify_one();
                            }
                        } else if n.channel() == db::jobs::CANCEL_CHANNEL {
                            let cancelled = n
                                .payload()
                                .parse::<i64>()
                                .ok()
                                .and_then(|id| cancels.lock().ok()?.get(&id).cloned());
                            if let Some(cancelled) = cancelled {
                                cancelled.notify_one();
                            }
                        } else {
                            // As many workers as the commit queued jobs (an empty payload,
                            // from older writers or a bare enqueue, counts as one).
                            let jobs = n.payload().parse::<usize>().unwrap_or(1).clamp(1, 64);
                            for _ in 0..jobs {
                                wake.notify_one();
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for jobs; polling meanwhile"),
        }
        tokio::time::sleep(StdDuration::from_secs(1)).await;
    }
}

async fn work(
    s: Services,
    settings: PoolSettings,
    owner: Uuid,
    claims: Claims,
    wake: Arc<Notify>,
    cancels: Cancels,
    mut phase: watch::Receiver<Phase>,
) {
    loop {
        if *phase.borrow() != Phase::Running {
            return;
        }
        let notified = wake.notified();
        let claimed = async {
            let mut conn = s.pool.acquire().await?;
            match claims {
                Claims::Any => {
                    db::jobs::claim(&mut conn, owner, 1, s.clock.now(), settings.lease).await
                }
                Claims::Targeted => Ok(db::jobs::claim_targeted(
                    &mut conn,
                    owner,
                    owner,
                    s.clock.now(),
                    settings.lease,
                )
                .await?
                .into_iter()
                .collect()),
            }
        }
        .await;
        match claimed {
            Ok(mut jobs) if !jobs.is_empty() => {
                let job = jobs.remove(0);
                let waited = (s.clock.now() - job.run_at).as_seconds_f64();
                crate::metrics::job_claimed(waited);
                tracing::debug!(job = job.id, waited_ms = waited * 1000.0, "claimed");
                let cancelled = Arc::new(Notify::new());
                if let Ok(mut c) = cancels.lock() {
                    c.insert(job.id, cancelled.clone());
                }
                let id = job.id;
                run_job(&s, settings, job, &cancelled, &mut phase).await;
                if let Ok(mut c) = cancels.lock() {
                    c.remove(&id);
                }
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
    cancelled: &Notify,
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
        recorded = execute(s, &job) => {
            match recorded {
                Ok(true) => {}
                Ok(false) => tracing::info!(job = job.id, "the job's lease was lost; its result is dropped"),
                Err(e) => tracing::error!(error = %e, job = job.id, "recording a job's result failed; its lease will expire"),
            }
        }
        () = renewals => tracing::warn!(job = job.id, "the job's lease was lost or it was cancelled; stopped"),
        () = cancelled.notified() => tracing::info!(job = job.id, "the job was cancelled; stopped"),
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

/// Runs a job and records its result, by kind: `Ok(false)` when the lease was lost first.
async fn execute(s: &Services, job: &Claimed) -> Result<bool, crate::error::AppError> {
    match job.kind.as_str() {
        ACTION_JOB => {
            let result = handle(s, job).await;
            executions::finish_action_job(s, job, &result).await
        }
        deployments::HOST_JOB => handle_host(s, job).await,
        other => {
            let why = format!("no worker here runs {other} jobs");
            let mut conn = s.pool.acquire().await?;
            Ok(db::jobs::finish(
                &mut conn,
                job.id,
                job.lease,
                db::jobs::Outcome::Failed,
                Some(&why),
                s.clock.now(),
            )
            .await?)
        }
    }
}

/// An action's job.
async fn handle(s: &Services, job: &Claimed) -> Result<providers::Output, String> {
    let claimed_at = std::time::Instant::now();
    let action = ActionJob::of(&job.payload);
    let prepared = match &action {
        Ok(a) => executions::prepare_action(s, a).await,
        Err(e) => Err(crate::error::AppError::Internal(anyhow::anyhow!("{e}"))),
    };
    match prepared {
        Ok(Some(Ok(mut prepared))) => {
            crate::metrics::action_started(claimed_at.elapsed().as_secs_f64());
            let (lines, flusher) = logs::start(
                s.pool.clone(),
                logs::Target::Attempt(prepared.action_execution_id),
            );
            prepared.context.log =
                providers::log::Log::new(lines, std::mem::take(&mut prepared.secrets));
            let type_id = &prepared.context.action.action_type_id;
            prepared.context.log.line(&format!(
                "[Sluice] {}/{}/{}/{} on {} (job {}, try {})",
                type_id.category,
                type_id.owner,
                type_id.provider,
                type_id.version,
                hostname(),
                job.id,
                job.attempt
            ));
            let started = std::time::Instant::now();
            let result = match (&action, group_of(&prepared.context)) {
                (_, Err(why)) => Err(why),
                (Ok(action), Ok(Some(group))) => {
                    deployments::roll_out(
                        s,
                        job,
                        action,
                        prepared.action_execution_id,
                        &group,
                        &prepared.context.log,
                    )
                    .await
                }
                _ if is_upload_source(&prepared.context) => {
                    crate::ops::buckets::fetch_version(s, &prepared.context).await
                }
                _ => providers::run(&prepared.context).await,
            };
            crate::metrics::action_finished(
                &prepared.context.action.action_type_id.provider,
                result.is_ok(),
                started.elapsed().as_secs_f64(),
            );
            if let Err(summary) = &result {
                prepared.context.log.line(&format!(
                    "[Sluice] failed: {}",
                    providers::log::without_tail(summary)
                ));
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

/// An Upload source reads its bucket (the database), so it runs here rather than as a provider.
fn is_upload_source(ctx: &providers::Context) -> bool {
    let id = &ctx.action.action_type_id;
    (
        id.category.as_str(),
        id.owner.as_str(),
        id.provider.as_str(),
    ) == ("Source", "Sluice", "Upload")
}

/// The deployment group a Directory deploy names, if any.
fn group_of(ctx: &providers::Context) -> Result<Option<deployments::Group>, String> {
    let id = &ctx.action.action_type_id;
    if (id.category.as_str(), id.provider.as_str()) != ("Deploy", "Directory") {
        return Ok(None);
    }
    deployments::Group::of(&ctx.configuration)
}

/// A host's part of a fleet deploy: deploy (or switch back) here, its log the host's own, and
/// the host's new state recorded with the job's end.
async fn handle_host(s: &Services, job: &Claimed) -> Result<bool, crate::error::AppError> {
    let host = deployments::HostJob::of(&job.payload)?;
    let fail = |why: String| deployments::HostResult::DeployFailed(why);
    let Some(attempt_id) = deployments::attempt_of(s, &host).await? else {
        // The execution is gone: nothing to record it on.
        let mut conn = s.pool.acquire().await?;
        return Ok(db::jobs::finish(
            &mut conn,
            job.id,
            job.lease,
            db::jobs::Outcome::Failed,
            Some("the execution no longer exists"),
            s.clock.now(),
        )
        .await?);
    };
    let result = match executions::prepare_action(s, &host.action).await? {
        None => fail("the execution no longer exists".into()),
        Some(Err(why)) => fail(why),
        Some(Ok(mut prepared)) => {
            let (lines, flusher) = logs::start(
                s.pool.clone(),
                logs::Target::Host(attempt_id, host.position),
            );
            prepared.context.log =
                providers::log::Log::new(lines, std::mem::take(&mut prepared.secrets));
            prepared.context.log.line(&format!(
                "[Sluice] {} on {} (job {})",
                match host.mode {
                    deployments::HostMode::Deploy => "deploying",
                    deployments::HostMode::RollBack { .. } => "switching back",
                },
                hostname(),
                job.id
            ));
            let result = deployments::run_host(&prepared.context, &host.mode).await;
            drop(prepared);
            if tokio::time::timeout(StdDuration::from_secs(10), flusher)
                .await
                .is_err()
            {
                tracing::warn!(
                    job = job.id,
                    "the host's last log lines were not written in time"
                );
            }
            result
        }
    };
    deployments::finish_host_job(s, job, &host, attempt_id, &result).await
}

/// This machine's name, for logs and the workers page (read once).
pub fn hostname() -> String {
    static NAME: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    });
    NAME.clone()
}
