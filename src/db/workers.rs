//! The registry of worker pools and the periodic work's leadership.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// One process's worker pool, as registered.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolRow {
    pub id: Uuid,
    pub host: String,
    pub pid: i32,
    pub version: String,
    pub kind: String,
    pub slots: i32,
    pub started_at: OffsetDateTime,
    pub heartbeat_at: OffsetDateTime,
    pub stopped_at: Option<OffsetDateTime>,
    /// Canonical (see `workers::labels`).
    pub labels: Vec<String>,
    /// A server's public URL (`None` for a worker process).
    pub public_url: Option<String>,
}

pub async fn register(conn: &mut PgConnection, pool: &PoolRow) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO worker_pools (id, host, pid, version, kind, slots, started_at, heartbeat_at, labels, public_url)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
        pool.id,
        pool.host,
        pool.pid,
        pool.version,
        pool.kind,
        pool.slots,
        pool.started_at,
        pool.heartbeat_at,
        &pool.labels,
        pool.public_url
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn heartbeat(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE worker_pools SET heartbeat_at = $2 WHERE id = $1 AND stopped_at IS NULL",
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn stopped(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE worker_pools SET stopped_at = $2, heartbeat_at = $2 WHERE id = $1",
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The public URL of a server that beat since `since` (the newest), if any.
pub async fn a_server_url(
    conn: &mut PgConnection,
    since: OffsetDateTime,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT public_url AS "public_url!" FROM worker_pools
           WHERE public_url IS NOT NULL AND stopped_at IS NULL AND heartbeat_at >= $1
           ORDER BY heartbeat_at DESC LIMIT 1"#,
        since
    )
    .fetch_optional(conn)
    .await
}

/// Pools that beat since `since`, or stopped since then; newest first.
pub async fn recent(
    conn: &mut PgConnection,
    since: OffsetDateTime,
) -> Result<Vec<PoolRow>, sqlx::Error> {
    sqlx::query_as!(
        PoolRow,
        r#"SELECT id, host, pid, version, kind, slots, started_at, heartbeat_at, stopped_at, labels,
                  public_url
           FROM worker_pools WHERE heartbeat_at >= $1
           ORDER BY stopped_at IS NOT NULL, started_at DESC LIMIT 500"#,
        since
    )
    .fetch_all(conn)
    .await
}

/// Forgets pools whose last sign of life is older than `before`.
pub async fn prune(conn: &mut PgConnection, before: OffsetDateTime) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query!("DELETE FROM worker_pools WHERE heartbeat_at < $1", before)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// An action a pool is running.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningRow {
    pub pool: Uuid,
    pub job_id: i64,
    pub claimed_at: Option<OffsetDateTime>,
    pub pipeline_id: Uuid,
    pub pipeline_name: String,
    pub execution_id: Uuid,
    pub pipeline_version: i32,
    pub stage_index: i32,
    pub action_index: i32,
    pub attempt_id: Uuid,
}

pub async fn running(conn: &mut PgConnection) -> Result<Vec<RunningRow>, sqlx::Error> {
    sqlx::query_as!(
        RunningRow,
        r#"SELECT j.lease_owner AS "pool!", j.id AS job_id, j.claimed_at, p.id AS pipeline_id,
                  p.name AS pipeline_name, e.id AS execution_id, e.pipeline_version,
                  a.stage_index, a.action_index, a.id AS attempt_id
           FROM jobs j
           JOIN action_executions a ON a.job_id = j.id
           JOIN pipeline_executions e ON e.id = a.execution_id
           JOIN pipelines p ON p.id = e.pipeline_id
           WHERE j.state = 'running' ORDER BY j.claimed_at"#
    )
    .fetch_all(conn)
    .await
}

/// The advisory lock whose holder runs the periodic work (rescuer, pruning) for every process
/// sharing the database.
const LEADER_LOCK: i64 = 0x5117_CE00_0001;

/// Tries to become the leader on this session; the lock lasts as long as the connection.
pub async fn try_lead(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let got: Option<bool> = sqlx::query_scalar!("SELECT pg_try_advisory_lock($1)", LEADER_LOCK)
        .fetch_one(conn)
        .await?;
    Ok(got.unwrap_or(false))
}

/// Whether the session still answers (a leader checks before each round of work).
pub async fn ping(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!("SELECT 1").fetch_one(conn).await?;
    Ok(())
}

/// How many sessions hold the leader lock (0 or 1).
pub async fn leaders(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM pg_locks
           WHERE locktype = 'advisory' AND granted AND objsubid = 1
             AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid"#,
        LEADER_LOCK
    )
    .fetch_one(conn)
    .await?;
    Ok(n)
}
