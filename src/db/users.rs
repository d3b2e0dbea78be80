//! Users.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// A user as stored.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: Uuid,
    pub user_name: String,
    pub password_hash: Option<String>,
    pub enabled: bool,
    pub created_at: OffsetDateTime,
    pub last_sign_in_at: Option<OffsetDateTime>,
}

/// Inserts a user; `Ok(None)` when the name is taken (in any case).
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    user_name: &str,
    password_hash: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<UserRow>, sqlx::Error> {
    let row = sqlx::query_as!(
        UserRow,
        r#"INSERT INTO users (id, user_name, password_hash, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $4)
           ON CONFLICT (lower(user_name)) DO NOTHING
           RETURNING id, user_name, password_hash, enabled, created_at, last_sign_in_at"#,
        id,
        user_name,
        password_hash,
        now
    )
    .fetch_optional(conn)
    .await?;
    Ok(row)
}

/// The user with this name, regardless of case.
pub async fn find_by_name(
    conn: &mut PgConnection,
    user_name: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, user_name, password_hash, enabled, created_at, last_sign_in_at
           FROM users WHERE lower(user_name) = lower($1)"#,
        user_name
    )
    .fetch_optional(conn)
    .await
}

pub async fn find_by_id(conn: &mut PgConnection, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, user_name, password_hash, enabled, created_at, last_sign_in_at
           FROM users WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Users ordered by name (case-insensitively), after `after` (keyset pagination).
pub async fn list(
    conn: &mut PgConnection,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<UserRow>, sqlx::Error> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, user_name, password_hash, enabled, created_at, last_sign_in_at
           FROM users
           WHERE $1::text IS NULL OR lower(user_name) > lower($1)
           ORDER BY lower(user_name)
           LIMIT $2"#,
        after,
        limit
    )
    .fetch_all(conn)
    .await
}

pub async fn count(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    let n = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM users"#)
        .fetch_one(conn)
        .await?;
    Ok(n)
}

pub async fn set_enabled(
    conn: &mut PgConnection,
    id: Uuid,
    enabled: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE users SET enabled = $2 WHERE id = $1", id, enabled)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_password(
    conn: &mut PgConnection,
    id: Uuid,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE users SET password_hash = $2 WHERE id = $1",
        id,
        password_hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn record_sign_in(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE users SET last_sign_in_at = $2 WHERE id = $1",
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM users WHERE id = $1", id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Serializes first-run set-up: only one request can create the first user.
pub async fn lock_for_setup(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock(7310001)")
        .execute(conn)
        .await?;
    Ok(())
}
