//! Upload buckets and their objects' versions.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct BucketRow {
    pub id: Uuid,
    pub name: String,
    pub key_id: String,
    pub wrapped_key: String,
    pub created_by: String,
    pub created_at: OffsetDateTime,
}

/// Inserts a bucket; `false` when the name is taken.
pub async fn insert(conn: &mut PgConnection, row: &BucketRow) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        r#"INSERT INTO buckets (id, name, key_id, wrapped_key, created_by, created_at)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING"#,
        row.id,
        row.name,
        row.key_id,
        row.wrapped_key,
        row.created_by,
        row.created_at
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn find(conn: &mut PgConnection, name: &str) -> Result<Option<BucketRow>, sqlx::Error> {
    sqlx::query_as!(
        BucketRow,
        "SELECT id, name, key_id, wrapped_key, created_by, created_at FROM buckets WHERE name = $1",
        name
    )
    .fetch_optional(conn)
    .await
}

/// Every bucket with its count of versions and their bytes, by name.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<(BucketRow, i64, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT b.id, b.name, b.key_id, b.wrapped_key, b.created_by, b.created_at,
                  count(o.version_id) AS "versions!", coalesce(sum(o.size), 0)::bigint AS "bytes!"
           FROM buckets b LEFT JOIN bucket_objects o ON o.bucket_id = b.id
           GROUP BY b.id ORDER BY b.name"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                BucketRow {
                    id: r.id,
                    name: r.name,
                    key_id: r.key_id,
                    wrapped_key: r.wrapped_key,
                    created_by: r.created_by,
                    created_at: r.created_at,
                },
                r.versions,
                r.bytes,
            )
        })
        .collect())
}

/// Deletes a bucket with no object; `false` when it has some (nothing deleted).
pub async fn delete_empty(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        r#"DELETE FROM buckets WHERE id = $1
           AND NOT EXISTS (SELECT 1 FROM bucket_objects WHERE bucket_id = $1)"#,
        id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectVersion {
    pub version_id: Uuid,
    pub object_key: String,
    pub address: String,
    pub size: i64,
    pub etag: String,
    pub uploaded_by: String,
    pub uploaded_at: OffsetDateTime,
}

pub async fn insert_version(
    conn: &mut PgConnection,
    bucket_id: Uuid,
    v: &ObjectVersion,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO bucket_objects
             (version_id, bucket_id, object_key, address, size, etag, uploaded_by, uploaded_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
        v.version_id,
        bucket_id,
        v.object_key,
        v.address,
        v.size,
        v.etag,
        v.uploaded_by,
        v.uploaded_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A bucket's versions, newest first (of one key, or of every key), at most `limit`.
pub async fn versions(
    conn: &mut PgConnection,
    bucket_id: Uuid,
    key: Option<&str>,
    limit: i64,
) -> Result<Vec<ObjectVersion>, sqlx::Error> {
    sqlx::query_as!(
        ObjectVersion,
        r#"SELECT version_id, object_key, address, size, etag, uploaded_by, uploaded_at
           FROM bucket_objects WHERE bucket_id = $1 AND ($2::text IS NULL OR object_key = $2)
           ORDER BY uploaded_at DESC, version_id LIMIT $3"#,
        bucket_id,
        key,
        limit
    )
    .fetch_all(conn)
    .await
}
