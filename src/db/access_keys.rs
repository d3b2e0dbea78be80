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
    pub name: String,
    pub policy_document: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

/// A token to store (only its hash).
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    pub id: Uuid,
    pub token_hash: &'a [u8],
    pub user_id: Uuid,
    pub name: &'a str,
    pub policy_document: Option<&'a str>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

pub async fn insert(conn: &mut PgConnection, key: &NewKey<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO access_keys (id, token_hash, user_id, name, policy_document, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)"#,
        key.id,
        key.token_hash,
        key.user_id,
        key.name,
        key.policy_document,
        key.created_at,
        key.expires_at
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
        r#"SELECT k.id, k.user_id, u.user_name, u.enabled AS user_enabled, k.name, k.policy_document,
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
        r#"SELECT k.id, k.user_id, u.user_name, u.enabled AS user_enabled, k.name, k.policy_document,
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

/// Revokes every token of a user (a password reset offers this); returns how many.
pub async fn delete_all_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!("DELETE FROM access_keys WHERE user_id = $1", user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Keeps a new token (sealed) for the page that shows it once to the session that made it.
pub async fn keep_for_reveal(
    conn: &mut PgConnection,
    access_key_id: Uuid,
    session_id: Uuid,
    sealed_token: &str,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO access_key_reveals (access_key_id, session_id, sealed_token, created_at)
           VALUES ($1, $2, $3, $4)"#,
        access_key_id,
        session_id,
        sealed_token,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes (reads and deletes) a kept token, if this session made it after `since`.
pub async fn take_reveal(
    conn: &mut PgConnection,
    access_key_id: Uuid,
    session_id: Uuid,
    since: OffsetDateTime,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"DELETE FROM access_key_reveals
           WHERE access_key_id = $1 AND session_id = $2 AND created_at > $3
           RETURNING sealed_token"#,
        access_key_id,
        session_id,
        since
    )
    .fetch_optional(conn)
    .await
}

/// Drops kept tokens nobody came back for.
pub async fn prune_reveals(
    conn: &mut PgConnection,
    before: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM access_key_reveals WHERE created_at <= $1",
        before
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
