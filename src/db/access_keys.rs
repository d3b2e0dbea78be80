//! API tokens (IAM's access keys).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct AccessKeyRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub user_name: String,
    pub user_enabled: bool,
    pub policy_document: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    token_hash: &[u8],
    user_id: Uuid,
    policy_document: Option<&str>,
    now: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO access_keys (id, token_hash, user_id, policy_document, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6)"#,
        id,
        token_hash,
        user_id,
        policy_document,
        now,
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_by_token_hash(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<AccessKeyRow>, sqlx::Error> {
    sqlx::query_as!(
        AccessKeyRow,
        r#"SELECT k.id, k.user_id, u.user_name, u.enabled AS user_enabled, k.policy_document,
                  k.created_at, k.expires_at, k.last_used_at
           FROM access_keys k JOIN users u ON u.id = k.user_id
           WHERE k.token_hash = $1"#,
        token_hash
    )
    .fetch_optional(conn)
    .await
}

pub async fn list_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Vec<AccessKeyRow>, sqlx::Error> {
    sqlx::query_as!(
        AccessKeyRow,
        r#"SELECT k.id, k.user_id, u.user_name, u.enabled AS user_enabled, k.policy_document,
                  k.created_at, k.expires_at, k.last_used_at
           FROM access_keys k JOIN users u ON u.id = k.user_id
           WHERE k.user_id = $1 ORDER BY k.created_at DESC"#,
        user_id
    )
    .fetch_all(conn)
    .await
}

/// Deletes one of a user's tokens; false when it is not theirs or does not exist.
pub async fn delete_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM access_keys WHERE id = $1 AND user_id = $2",
        id,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records use, at most once a minute per token to keep writes down.
pub async fn touch(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE access_keys SET last_used_at = $2
           WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2::timestamptz - interval '1 minute')"#,
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}
