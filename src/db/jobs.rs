//! The job queue's rows: enqueue, claim (`FOR UPDATE SKIP LOCKED`), renew, finish and give back
//! under a fenced lease, and rescue expired leases. Every time is a parameter (the caller's clock).

use serde_json::Value;
use sqlx::PgConnection;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// The channel workers listen on; one notification per transaction that enqueued (PostgreSQL
/// folds identical notifications of one transaction into one).
pub const CHANNEL: &str = "sluice_jobs";
/// The channel that tells workers a running job was cancelled (payload: the job's id).
pub const CANCEL_CHANNEL: &str = "sluice_job_cancelled";
/// The channel that tells a worker pool a job targeted at it was queued (payload: the pool's id).
pub const TARGETED_CHANNEL: &str = "sluice_jobs_targeted";

/// A job a worker holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: i64,
    pub kind: String,
    pub payload: Value,
    /// 1 for the first claim, 2 after one rescue, …
    pub attempt: i32,
    /// Names this claim: renewing and finishing must present it.
    pub lease: Uuid,
    /// When it became runnable (for the claim latency).
    pub run_at: OffsetDateTime,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
}

impl Outcome {
    fn state(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
        }
    }
}

/// Adds a job, runnable from `run_at`. Call [`notify`] once in the same transaction.
pub async fn enqueue(
    conn: &mut PgConnection,
    kind: &str,
    payload: &Value,
    max_attempts: i32,
    run_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"INSERT INTO jobs (kind, payload, state, max_attempts, run_at, created_at)
           VALUES ($1, $2, 'available', $3, $4, $5) RETURNING id"#,
        kind,
        payload,
        max_attempts,
        run_at,
        now
    )
    .fetch_one(conn)
    .await
}

/// Wakes the workers listening on [`CHANNEL`] when the transaction commits.
pub async fn notify(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_notify($1, '')", CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// Claims up to `limit` runnable jobs for `owner` (jobs targeted at a pool are left to it,
/// see [`claim_targeted`]), each under a fresh lease until `now + lease`.
/// Concurrent claimers never get the same job: rows another transaction holds are skipped.
pub async fn claim(
    conn: &mut PgConnection,
    owner: Uuid,
    limit: i64,
    now: OffsetDateTime,
    lease: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let expires = now + lease;
    let rows = sqlx::query!(
        r#"UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_owner = $1,
                  lease_token = gen_random_uuid(), lease_expires_at = $2, claimed_at = $3,
                  claimed_by = $1
           WHERE id IN (SELECT id FROM jobs WHERE state = 'available' AND run_at <= $3
                        AND target_pool IS NULL
                        ORDER BY run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
           RETURNING id, kind, payload, attempt, lease_token AS "lease_token!", run_at"#,
        owner,
        expires,
        now,
        limit
    )
    .fetch_all(conn)
    .await?;
    let mut claimed: Vec<Claimed> = rows
        .into_iter()
        .map(|r| Claimed {
            id: r.id,
            kind: r.kind,
            payload: r.payload,
            attempt: r.attempt,
            lease: r.lease_token,
            run_at: r.run_at,
        })
        .collect();
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

/// Adds a job only the worker pool `pool` may claim, belonging to the job `parent` (cancelled
/// with it), tried once: a host's deploy is not repeated behind the rollout's back. The pool
/// hears of it on [`TARGETED_CHANNEL`] when the transaction commits.
pub async fn enqueue_targeted(
    conn: &mut PgConnection,
    kind: &str,
    payload: &Value,
    pool: Uuid,
    parent: i64,
    now: OffsetDateTime,
) -> Result<i64, sqlx::Error> {
    let id = sqlx::query_scalar!(
        r#"INSERT INTO jobs (kind, payload, state, max_attempts, run_at, created_at, target_pool, parent_id)
           VALUES ($1, $2, 'available', 1, $3, $3, $4, $5) RETURNING id"#,
        kind,
        payload,
        now,
        pool,
        parent
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!(
        "SELECT pg_notify($1, $2)",
        TARGETED_CHANNEL,
        pool.to_string()
    )
    .execute(conn)
    .await?;
    Ok(id)
}

/// Claims the oldest runnable job targeted at the pool `pool`, for `owner`, like [`claim`].
pub async fn claim_targeted(
    conn: &mut PgConnection,
    pool: Uuid,
    owner: Uuid,
    now: OffsetDateTime,
    lease: Duration,
) -> Result<Option<Claimed>, sqlx::Error> {
    let expires = now + lease;
    let row = sqlx::query!(
        r#"UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_owner = $2,
                  lease_token = gen_random_uuid(), lease_expires_at = $3, claimed_at = $4,
                  claimed_by = $2
           WHERE id = (SELECT id FROM jobs WHERE state = 'available' AND target_pool = $1
                       AND run_at <= $4 ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING id, kind, payload, attempt, lease_token AS "lease_token!", run_at"#,
        pool,
        owner,
        expires,
        now
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Claimed {
        id: r.id,
        kind: r.kind,
        payload: r.payload,
        attempt: r.attempt,
        lease: r.lease_token,
        run_at: r.run_at,
    }))
}

/// Renews a lease until `now + lease`; `false` when the lease is no longer this claim's (it
/// expired and was rescued, or the job was cancelled): the worker must stop.
pub async fn renew(
    conn: &mut PgConnection,
    id: i64,
    lease_token: Uuid,
    now: OffsetDateTime,
    lease: Duration,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        r#"UPDATE jobs SET lease_expires_at = $3
           WHERE id = $1 AND lease_token = $2 AND state = 'running'"#,
        id,
        lease_token,
        now + lease
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Finishes a job, fenced by its lease: `false` (and nothing written) when the lease is not this
/// claim's any more.
pub async fn finish(
    conn: &mut PgConnection,
    id: i64,
    lease_token: Uuid,
    outcome: Outcome,
    error: Option<&str>,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let error = error.map(|e| e.chars().take(2048).collect::<String>());
    let done = sqlx::query!(
        r#"UPDATE jobs SET state = $3, finished_at = $4, last_error = $5,
                  lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
           WHERE id = $1 AND lease_token = $2 AND state = 'running'"#,
        id,
        lease_token,
        outcome.state(),
        now,
        error
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives a job back unfinished (a worker shutting down): runnable again at once, and this claim
/// does not count as an attempt.
pub async fn give_back(
    conn: &mut PgConnection,
    id: i64,
    lease_token: Uuid,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        r#"UPDATE jobs SET state = 'available', attempt = attempt - 1, run_at = $3,
                  lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
           WHERE id = $1 AND lease_token = $2 AND state = 'running'"#,
        id,
        lease_token,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Cancels a job that has not finished (an abandoned action); a running holder is told at once
/// on [`CANCEL_CHANNEL`] when the transaction commits (and would learn it at its next renewal
/// anyway). `false` when it had finished already.
pub async fn cancel(
    conn: &mut PgConnection,
    id: i64,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let before = sqlx::query_scalar!(
        r#"SELECT state FROM jobs WHERE id = $1 AND state IN ('available', 'running') FOR UPDATE"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(before) = before else {
        return Ok(false);
    };
    sqlx::query!(
        r#"UPDATE jobs SET state = 'cancelled', finished_at = $2,
                  lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
           WHERE id = $1"#,
        id,
        now
    )
    .execute(&mut *conn)
    .await?;
    if before == "running" {
        sqlx::query!("SELECT pg_notify($1, $2)", CANCEL_CHANNEL, id.to_string())
            .execute(&mut *conn)
            .await?;
    }
    // The jobs it queued for others (a rollout's hosts) end with it.
    let running_children = sqlx::query_scalar!(
        r#"WITH ended AS (
               UPDATE jobs j SET state = 'cancelled', finished_at = $2,
                      lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
               FROM (SELECT id, state FROM jobs WHERE parent_id = $1
                     AND state IN ('available', 'running') FOR UPDATE) before
               WHERE j.id = before.id
               RETURNING j.id, before.state)
           SELECT id FROM ended WHERE state = 'running'"#,
        id,
        now
    )
    .fetch_all(&mut *conn)
    .await?;
    for child in running_children {
        sqlx::query!(
            "SELECT pg_notify($1, $2)",
            CANCEL_CHANNEL,
            child.to_string()
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(true)
}

/// What the rescuer did with one expired lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rescued {
    pub id: i64,
    pub kind: String,
    pub payload: Value,
    pub attempt: i32,
    /// `true`: runnable again; `false`: out of attempts, failed.
    pub retried: bool,
}

/// Returns every lease that expired before `now`: runnable again while attempts remain, failed
/// ("its worker stopped answering") otherwise.
pub async fn rescue(
    conn: &mut PgConnection,
    now: OffsetDateTime,
) -> Result<Vec<Rescued>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"UPDATE jobs SET
                  state = CASE WHEN attempt < max_attempts THEN 'available' ELSE 'failed' END,
                  run_at = $1,
                  finished_at = CASE WHEN attempt < max_attempts THEN NULL ELSE $1 END,
                  last_error = 'the worker running it stopped answering (its lease expired)',
                  lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
           WHERE id IN (SELECT id FROM jobs WHERE state = 'running' AND lease_expires_at < $1
                        FOR UPDATE SKIP LOCKED)
           RETURNING id, kind, payload, attempt, state"#,
        now
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Rescued {
            id: r.id,
            kind: r.kind,
            payload: r.payload,
            attempt: r.attempt,
            retried: r.state == "available",
        })
        .collect())
}

/// Jobs by state (the queue depth, for metrics and tests).
pub async fn counts(conn: &mut PgConnection) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows =
        sqlx::query!(r#"SELECT state, count(*) AS "n!" FROM jobs GROUP BY state ORDER BY state"#)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().map(|r| (r.state, r.n)).collect())
}

/// The queue's depth: jobs runnable now, scheduled for later, and running (partial indexes
/// answer these; finished jobs are not counted).
pub async fn depth(
    conn: &mut PgConnection,
    now: OffsetDateTime,
) -> Result<(i64, i64, i64), sqlx::Error> {
    let available = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE run_at <= $1) AS "runnable!",
                  count(*) FILTER (WHERE run_at > $1) AS "scheduled!"
           FROM jobs WHERE state = 'available'"#,
        now
    )
    .fetch_one(&mut *conn)
    .await?;
    let running =
        sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM jobs WHERE state = 'running'"#)
            .fetch_one(conn)
            .await?;
    Ok((available.runnable, available.scheduled, running))
}

/// Cancels every unfinished job of `kind` (benchmarks clean up with it).
pub async fn cancel_kind(
    conn: &mut PgConnection,
    kind: &str,
    now: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        r#"UPDATE jobs SET state = 'cancelled', finished_at = $2,
                  lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
           WHERE kind = $1 AND state IN ('available', 'running')"#,
        kind,
        now
    )
    .execute(conn)
    .await?
    .rows_affected())
}
