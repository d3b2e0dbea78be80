//! State-change events (CodePipeline's EventBridge shapes), appended with the change.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// Appends events in one statement, in the order given.
pub async fn append(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    at: OffsetDateTime,
    detail_types: &[String],
    details: &[serde_json::Value],
) -> Result<(), sqlx::Error> {
    if detail_types.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        r#"INSERT INTO pipeline_events (pipeline_id, at, detail_type, detail)
           SELECT $1, $2, t, d FROM UNNEST($3::text[], $4::jsonb[]) WITH ORDINALITY AS e(t, d, n)
           ORDER BY n"#,
        pipeline_id,
        at,
        detail_types,
        details
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A pipeline's events after `after_seq`, oldest first: `(seq, at, detail type, detail)`.
pub async fn after(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<(i64, OffsetDateTime, String, serde_json::Value)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT seq, at, detail_type, detail FROM pipeline_events
           WHERE pipeline_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"#,
        pipeline_id,
        after_seq,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.seq, r.at, r.detail_type, r.detail))
        .collect())
}
