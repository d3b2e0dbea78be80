//! Source triggers: push webhooks' secrets and deliveries, and polling's last seen commits.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// A hook's sealed secret, if it has one.
pub async fn secret(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    action: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT sealed_secret FROM source_hooks WHERE pipeline_id = $1 AND action_name = $2",
        pipeline_id,
        action
    )
    .fetch_optional(conn)
    .await
}

/// Stores a hook's secret unless it has one (`replace`: always); the secret now in force.
pub async fn put_secret(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    action: &str,
    sealed: &str,
    replace: bool,
    now: OffsetDateTime,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar!(
        r#"INSERT INTO source_hooks (pipeline_id, action_name, sealed_secret, created_at)
           VALUES ($1, $2, $3, $5)
           ON CONFLICT (pipeline_id, action_name) DO UPDATE
             SET sealed_secret = CASE WHEN $4 THEN EXCLUDED.sealed_secret ELSE source_hooks.sealed_secret END,
                 created_at = CASE WHEN $4 THEN EXCLUDED.created_at ELSE source_hooks.created_at END
           RETURNING sealed_secret"#,
        pipeline_id,
        action,
        sealed,
        replace,
        now
    )
    .fetch_one(conn)
    .await
}

/// One delivery as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub delivery_id: Option<String>,
    pub host: String,
    pub event: String,
    pub outcome: String,
    pub execution_id: Option<Uuid>,
    pub received_at: OffsetDateTime,
}

/// How many deliveries each hook keeps.
pub const KEPT: i64 = 100;

/// Records a delivery; `false` (nothing written) when its id was accepted before. Keeps the
/// newest [`KEPT`] of the hook.
pub async fn record(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    action: &str,
    d: &Delivery,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO hook_deliveries
             (pipeline_id, action_name, delivery_id, host, event, outcome, execution_id, received_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (pipeline_id, action_name, delivery_id) WHERE delivery_id IS NOT NULL DO NOTHING
           RETURNING id"#,
        pipeline_id,
        action,
        d.delivery_id,
        d.host,
        d.event,
        d.outcome,
        d.execution_id,
        d.received_at
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = inserted else {
        return Ok(false);
    };
    sqlx::query!(
        r#"DELETE FROM hook_deliveries WHERE pipeline_id = $1 AND action_name = $2 AND id IN (
               SELECT id FROM hook_deliveries WHERE pipeline_id = $1 AND action_name = $2
               ORDER BY id DESC OFFSET $3)"#,
        pipeline_id,
        action,
        KEPT
    )
    .execute(&mut *conn)
    .await?;
    let _ = id;
    Ok(true)
}

/// Sets what an accepted delivery did.
pub async fn set_outcome(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    action: &str,
    delivery_id: &str,
    outcome: &str,
    execution_id: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE hook_deliveries SET outcome = $4, execution_id = $5
           WHERE pipeline_id = $1 AND action_name = $2 AND delivery_id = $3"#,
        pipeline_id,
        action,
        delivery_id,
        outcome,
        execution_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A hook's newest deliveries, newest first.
pub async fn recent(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    action: &str,
    limit: i64,
) -> Result<Vec<Delivery>, sqlx::Error> {
    sqlx::query_as!(
        Delivery,
        r#"SELECT delivery_id, host, event, outcome, execution_id, received_at
           FROM hook_deliveries WHERE pipeline_id = $1 AND action_name = $2
           ORDER BY id DESC LIMIT $3"#,
        pipeline_id,
        action,
        limit
    )
    .fetch_all(conn)
    .await
}

/// The commit a polled action last saw.
pub async fn last_polled(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    action: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT last_commit FROM source_polls WHERE pipeline_id = $1 AND action_name = $2",
        pipeline_id,
        action
    )
    .fetch_optional(conn)
    .await
}

/// Records the commit a polled action saw; `false` when it had seen it already (so two
/// pollers never both start for one commit).
pub async fn saw(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    action: &str,
    commit: &str,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query!(
        r#"INSERT INTO source_polls (pipeline_id, action_name, last_commit, checked_at)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (pipeline_id, action_name) DO UPDATE
             SET last_commit = EXCLUDED.last_commit, checked_at = EXCLUDED.checked_at
             WHERE source_polls.last_commit <> EXCLUDED.last_commit"#,
        pipeline_id,
        action,
        commit,
        now
    )
    .execute(conn)
    .await?;
    Ok(changed.rows_affected() == 1)
}

/// The commit the latest execution's run of a source action checked out, if any.
pub async fn latest_commit(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    stage_index: i32,
    action_index: i32,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query_scalar!(
        r#"SELECT a.output_variables ->> 'CommitId' AS "commit"
           FROM action_executions a JOIN pipeline_executions e ON e.id = a.execution_id
           WHERE e.pipeline_id = $1 AND a.stage_index = $2 AND a.action_index = $3
             AND a.status = 'Succeeded'
           ORDER BY e.seq DESC, a.attempt DESC LIMIT 1"#,
        pipeline_id,
        stage_index,
        action_index
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.flatten())
}
