//! Fleet deploys: the hosts of a rollout, each host's state and log.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// A live worker pool of a deployment group, as the rollout found it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPool {
    pub id: Uuid,
    pub host: String,
    pub pid: i32,
}

/// The pools that run jobs, beat since `since`, have not stopped, and carry `label`; in a stable
/// order (by host, then by when they started).
pub async fn live_pools_in(
    conn: &mut PgConnection,
    label: &str,
    since: OffsetDateTime,
) -> Result<Vec<GroupPool>, sqlx::Error> {
    sqlx::query_as!(
        GroupPool,
        r#"SELECT id, host, pid FROM worker_pools
           WHERE stopped_at IS NULL AND heartbeat_at >= $2 AND slots > 0 AND $1 = ANY (labels)
           ORDER BY host, started_at, id"#,
        label,
        since
    )
    .fetch_all(conn)
    .await
}

/// One host of a rollout, with what the queue and the registry say of its job and its pool.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRow {
    pub position: i32,
    pub pool_id: Uuid,
    pub host: String,
    pub pid: i32,
    pub state: String,
    pub job_id: Option<i64>,
    pub release: Option<String>,
    pub previous_release: Option<String>,
    pub summary: Option<String>,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    /// The state of the host's current job (`None` once the job is gone).
    pub job_state: Option<String>,
    pub job_error: Option<String>,
    /// When the host's pool last beat, and whether it stopped (`None`: it was forgotten).
    pub pool_heartbeat_at: Option<OffsetDateTime>,
    pub pool_stopped: Option<bool>,
}

/// The hosts of attempt `attempt_id`, in rollout order.
pub async fn hosts(conn: &mut PgConnection, attempt_id: Uuid) -> Result<Vec<HostRow>, sqlx::Error> {
    sqlx::query_as!(
        HostRow,
        r#"SELECT h.position, h.pool_id, h.host, h.pid, h.state, h.job_id, h.release,
                  h.previous_release, h.summary, h.started_at, h.finished_at,
                  j.state AS "job_state?", j.last_error AS "job_error?",
                  w.heartbeat_at AS "pool_heartbeat_at?", (w.stopped_at IS NOT NULL) AS "pool_stopped?"
           FROM deploy_hosts h
           LEFT JOIN jobs j ON j.id = h.job_id
           LEFT JOIN worker_pools w ON w.id = h.pool_id
           WHERE h.action_execution_id = $1
           ORDER BY h.position"#,
        attempt_id
    )
    .fetch_all(conn)
    .await
}

/// Fixes the hosts of a rollout, all Pending (a second call for the same attempt adds nothing).
pub async fn insert_hosts(
    conn: &mut PgConnection,
    attempt_id: Uuid,
    pools: &[GroupPool],
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = pools.iter().map(|p| p.id).collect();
    let hosts: Vec<String> = pools.iter().map(|p| p.host.clone()).collect();
    let pids: Vec<i32> = pools.iter().map(|p| p.pid).collect();
    sqlx::query!(
        r#"INSERT INTO deploy_hosts (action_execution_id, position, pool_id, host, pid, state)
           SELECT $1, ordinality::integer - 1, pool_id, host, pid, 'Pending'
           FROM UNNEST($2::uuid[], $3::text[], $4::integer[]) WITH ORDINALITY AS p(pool_id, host, pid)
           ON CONFLICT DO NOTHING"#,
        attempt_id,
        &ids,
        &hosts,
        &pids
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A host's job was queued: the host is `state` (Deploying or RollingBack) under that job.
pub async fn start_host(
    conn: &mut PgConnection,
    attempt_id: Uuid,
    position: i32,
    state: &str,
    job_id: i64,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE deploy_hosts SET state = $3, job_id = $4,
                  started_at = COALESCE(started_at, $5), finished_at = NULL
           WHERE action_execution_id = $1 AND position = $2"#,
        attempt_id,
        position,
        state,
        job_id,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends a host's turn as `state`, but only while the host is still under the job `job_id` (a job
/// the rollout gave up on cannot overwrite what it decided).
#[allow(clippy::too_many_arguments)]
pub async fn finish_host(
    conn: &mut PgConnection,
    attempt_id: Uuid,
    position: i32,
    job_id: Option<i64>,
    state: &str,
    release: Option<&str>,
    previous_release: Option<&str>,
    summary: &str,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let summary: String = summary.chars().take(4096).collect();
    let done = sqlx::query!(
        r#"UPDATE deploy_hosts SET state = $4,
                  release = COALESCE($5, release),
                  previous_release = CASE WHEN $5::text IS NULL THEN previous_release ELSE $6 END,
                  summary = $7, finished_at = $8
           WHERE action_execution_id = $1 AND position = $2
             AND job_id IS NOT DISTINCT FROM $3"#,
        attempt_id,
        position,
        job_id,
        state,
        release,
        previous_release,
        summary,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks Pending hosts Skipped (the rollout stopped before them).
pub async fn skip_hosts(
    conn: &mut PgConnection,
    attempt_id: Uuid,
    positions: &[i32],
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE deploy_hosts SET state = 'Skipped', finished_at = $3,
                  summary = 'not deployed: the rollout stopped before this host'
           WHERE action_execution_id = $1 AND position = ANY ($2) AND state = 'Pending'"#,
        attempt_id,
        positions,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends lines to a host's log, numbered from `first`, in one statement.
pub async fn append_log(
    conn: &mut PgConnection,
    attempt_id: Uuid,
    position: i32,
    first: i32,
    at: &[OffsetDateTime],
    text: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO deploy_host_logs (action_execution_id, position, line, at, text)
           SELECT $1, $2, $3 + ordinality::integer - 1, at, text
           FROM UNNEST($4::timestamptz[], $5::text[]) WITH ORDINALITY AS l(at, text)
           ON CONFLICT DO NOTHING"#,
        attempt_id,
        position,
        first,
        at,
        text
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The number of a host's last log line (0 when it has none).
pub async fn last_log_line(
    conn: &mut PgConnection,
    attempt_id: Uuid,
    position: i32,
) -> Result<i32, sqlx::Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT max(line) FROM deploy_host_logs WHERE action_execution_id = $1 AND position = $2"#,
        attempt_id,
        position
    )
    .fetch_one(conn)
    .await?
    .unwrap_or(0))
}

/// The first `per_host` lines of each host's log, in host then line order: (position, text).
pub async fn logs(
    conn: &mut PgConnection,
    attempt_id: Uuid,
    per_host: i64,
) -> Result<Vec<(i32, String)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT position AS "position!", text AS "text!" FROM (
               SELECT position, line, text,
                      row_number() OVER (PARTITION BY position ORDER BY line) AS n
               FROM deploy_host_logs WHERE action_execution_id = $1) l
           WHERE n <= $2 ORDER BY position, line"#,
        attempt_id,
        per_host
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.position, r.text)).collect())
}
