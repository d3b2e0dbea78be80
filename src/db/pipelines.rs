//! Pipelines and their versions.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct PipelineRow {
    pub id: Uuid,
    pub name: String,
    pub current_version: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct VersionRow {
    pub version: i32,
    /// The stored JSON text (parsed by the caller straight into its type).
    pub declaration: String,
    pub author: String,
    pub created_at: OffsetDateTime,
}

/// A pipeline with what listings show of its current version.
#[derive(Debug, Clone)]
pub struct SummaryRow {
    pub name: String,
    pub current_version: i32,
    pub pipeline_type: String,
    pub execution_mode: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What the list shows of a declaration.
fn list_columns(declaration: &serde_json::Value) -> (String, String) {
    let field = |key: &str, default: &str| {
        declaration
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or(default)
            .to_string()
    };
    (
        field("pipelineType", "V2"),
        field("executionMode", "SUPERSEDED"),
    )
}

/// Creates a pipeline at version 1; `Ok(false)` when the name is taken.
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    name: &str,
    declaration: &serde_json::Value,
    author: &str,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let (pipeline_type, execution_mode) = list_columns(declaration);
    let inserted = sqlx::query!(
        r#"INSERT INTO pipelines (id, name, current_version, created_at, updated_at, pipeline_type, execution_mode)
           VALUES ($1, $2, 1, $3, $3, $4, $5) ON CONFLICT (name) DO NOTHING"#,
        id,
        name,
        now,
        pipeline_type,
        execution_mode
    )
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    insert_version(conn, id, 1, declaration, author, now).await?;
    Ok(true)
}

async fn insert_version(
    conn: &mut PgConnection,
    id: Uuid,
    version: i32,
    declaration: &serde_json::Value,
    author: &str,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO pipeline_versions (pipeline_id, version, declaration, author, created_at)
           VALUES ($1, $2, $3, $4, $5)"#,
        id,
        version,
        declaration,
        author,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(conn: &mut PgConnection, name: &str) -> Result<Option<PipelineRow>, sqlx::Error> {
    sqlx::query_as!(
        PipelineRow,
        "SELECT id, name, current_version, created_at, updated_at FROM pipelines WHERE name = $1",
        name
    )
    .fetch_optional(conn)
    .await
}

pub async fn version(
    conn: &mut PgConnection,
    id: Uuid,
    version: i32,
) -> Result<Option<VersionRow>, sqlx::Error> {
    sqlx::query_as!(
        VersionRow,
        r#"SELECT version, declaration::text AS "declaration!", author, created_at
           FROM pipeline_versions WHERE pipeline_id = $1 AND version = $2"#,
        id,
        version
    )
    .fetch_optional(conn)
    .await
}

/// Stores `expected + 1` if the current version is still `expected` (compare-and-set). Returns the
/// new version, or `None` when someone else saved first.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    expected: i32,
    declaration: &serde_json::Value,
    author: &str,
    now: OffsetDateTime,
) -> Result<Option<i32>, sqlx::Error> {
    let (pipeline_type, execution_mode) = list_columns(declaration);
    let next = sqlx::query_scalar!(
        r#"UPDATE pipelines SET current_version = current_version + 1, updated_at = $3,
                  pipeline_type = $4, execution_mode = $5
           WHERE id = $1 AND current_version = $2 RETURNING current_version"#,
        id,
        expected,
        now,
        pipeline_type,
        execution_mode
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(version) = next {
        insert_version(conn, id, version, declaration, author, now).await?;
    }
    Ok(next)
}

/// Deletes a pipeline and its versions; false when there was none.
/// Which of `names` are pipelines' names.
pub async fn taken(conn: &mut PgConnection, names: &[String]) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!("SELECT name FROM pipelines WHERE name = ANY($1)", names)
        .fetch_all(conn)
        .await
}

pub async fn delete(conn: &mut PgConnection, name: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!("DELETE FROM pipelines WHERE name = $1", name)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Pipelines by name after `after`, with their current version's type and mode.
pub async fn list(
    conn: &mut PgConnection,
    name_contains: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<SummaryRow>, sqlx::Error> {
    let pattern = name_contains.map(|n| {
        format!(
            "%{}%",
            n.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    sqlx::query_as!(
        SummaryRow,
        r#"SELECT p.name, p.current_version, p.pipeline_type, p.execution_mode, p.created_at, p.updated_at
           FROM pipelines p
           WHERE ($1::text IS NULL OR p.name > $1)
             AND ($3::text IS NULL OR p.name ILIKE $3)
           ORDER BY p.name
           LIMIT $2"#,
        after,
        limit,
        pattern
    )
    .fetch_all(conn)
    .await
}

/// Every version of a pipeline, newest first (without the declarations).
#[derive(Debug, Clone)]
pub struct VersionSummary {
    pub version: i32,
    pub author: String,
    pub created_at: OffsetDateTime,
}

pub async fn versions(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Vec<VersionSummary>, sqlx::Error> {
    sqlx::query_as!(
        VersionSummary,
        "SELECT version, author, created_at FROM pipeline_versions WHERE pipeline_id = $1 ORDER BY version DESC",
        id
    )
    .fetch_all(conn)
    .await
}

/// A pipeline's row, locked until the transaction ends (tag changes serialize on it, so the
/// per-pipeline tag limit holds however many requests race).
pub async fn find_for_update(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<PipelineRow>, sqlx::Error> {
    sqlx::query_as!(
        PipelineRow,
        "SELECT id, name, current_version, created_at, updated_at FROM pipelines WHERE name = $1 FOR UPDATE",
        name
    )
    .fetch_optional(conn)
    .await
}

/// A pipeline's tags, by key.
pub async fn tags(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT key, value FROM pipeline_tags WHERE pipeline_id = $1 ORDER BY key",
        pipeline_id
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.key, r.value)).collect())
}

/// Adds tags or replaces the values of existing keys.
pub async fn put_tags(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    tags: &[(String, String)],
) -> Result<(), sqlx::Error> {
    let (keys, values): (Vec<String>, Vec<String>) = tags.iter().cloned().unzip();
    sqlx::query!(
        r#"INSERT INTO pipeline_tags (pipeline_id, key, value)
           SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS t(k, v)
           ON CONFLICT (pipeline_id, key) DO UPDATE SET value = EXCLUDED.value"#,
        pipeline_id,
        &keys,
        &values
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes the tags with these keys (absent keys are no error).
pub async fn remove_tags(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    keys: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM pipeline_tags WHERE pipeline_id = $1 AND key = ANY($2::text[])",
        pipeline_id,
        keys
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_by_id(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<PipelineRow>, sqlx::Error> {
    sqlx::query_as!(
        PipelineRow,
        "SELECT id, name, current_version, created_at, updated_at FROM pipelines WHERE id = $1",
        id
    )
    .fetch_optional(conn)
    .await
}

/// Every pipeline's current declaration (the poller's, a deleted connection's users): id, name, declaration JSON.
pub async fn current_declarations(
    conn: &mut PgConnection,
) -> Result<Vec<(Uuid, String, i32, String)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT p.id, p.name, p.current_version, v.declaration::text AS "declaration!"
           FROM pipelines p
           JOIN pipeline_versions v ON v.pipeline_id = p.id AND v.version = p.current_version
           ORDER BY p.name"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, r.name, r.current_version, r.declaration))
        .collect())
}
