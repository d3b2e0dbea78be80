//! Action logs: an attempt's output, a row per line.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// Appends lines numbered from `first`, in one statement.
pub async fn append(
    conn: &mut PgConnection,
    action_execution_id: Uuid,
    first: i32,
    at: &[OffsetDateTime],
    text: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO action_logs (action_execution_id, line, at, text)
           SELECT $1, $2 + ordinality::integer - 1, at, text
           FROM UNNEST($3::timestamptz[], $4::text[]) WITH ORDINALITY AS l(at, text)
           ON CONFLICT DO NOTHING"#,
        action_execution_id,
        first,
        at,
        text
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub line: i32,
    pub at: OffsetDateTime,
    pub text: String,
}

/// Up to `limit` lines from line `from` on.
pub async fn page(
    conn: &mut PgConnection,
    action_execution_id: Uuid,
    from: i32,
    limit: i64,
) -> Result<Vec<LogLine>, sqlx::Error> {
    sqlx::query_as!(
        LogLine,
        r#"SELECT line, at, text FROM action_logs
           WHERE action_execution_id = $1 AND line >= $2
           ORDER BY line LIMIT $3"#,
        action_execution_id,
        from,
        limit
    )
    .fetch_all(conn)
    .await
}

/// The last `limit` lines, oldest first.
pub async fn tail(
    conn: &mut PgConnection,
    action_execution_id: Uuid,
    limit: i64,
) -> Result<Vec<LogLine>, sqlx::Error> {
    let mut lines = sqlx::query_as!(
        LogLine,
        r#"SELECT line, at, text FROM action_logs
           WHERE action_execution_id = $1 ORDER BY line DESC LIMIT $2"#,
        action_execution_id,
        limit
    )
    .fetch_all(conn)
    .await?;
    lines.reverse();
    Ok(lines)
}

/// The number of the last line written (0 when none).
pub async fn last_line(
    conn: &mut PgConnection,
    action_execution_id: Uuid,
) -> Result<i32, sqlx::Error> {
    let last = sqlx::query_scalar!(
        r#"SELECT max(line) FROM action_logs WHERE action_execution_id = $1"#,
        action_execution_id
    )
    .fetch_one(conn)
    .await?;
    Ok(last.unwrap_or(0))
}
