//! The keyring (root and audit-chain keys, sealed by the master key) and what a master-key
//! rotation reseals: every sealed value the database holds.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// Serializes keyring creation and rotation across every process sharing the database.
const KEYRING_LOCK: i64 = 0x5117_CE00_0002;

#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    pub id: String,
    pub purpose: String,
    pub sealed: String,
    pub created_at: OffsetDateTime,
}

/// Takes the keyring's lock until the transaction ends.
pub async fn lock(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", KEYRING_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn all(conn: &mut PgConnection) -> Result<Vec<KeyRow>, sqlx::Error> {
    sqlx::query_as!(
        KeyRow,
        "SELECT id, purpose, sealed, created_at FROM keyring ORDER BY purpose"
    )
    .fetch_all(conn)
    .await
}

/// Replaces the whole keyring with `rows`.
pub async fn replace(conn: &mut PgConnection, rows: &[KeyRow]) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM keyring")
        .execute(&mut *conn)
        .await?;
    for row in rows {
        sqlx::query!(
            "INSERT INTO keyring (id, purpose, sealed, created_at) VALUES ($1, $2, $3, $4)",
            row.id,
            row.purpose,
            row.sealed,
            row.created_at
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Every pipeline's data key: pipeline, key id, wrapped key.
pub async fn data_keys(
    conn: &mut PgConnection,
) -> Result<Vec<(Uuid, String, String)>, sqlx::Error> {
    let rows = sqlx::query!("SELECT pipeline_id, key_id, wrapped FROM pipeline_data_keys")
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.pipeline_id, r.key_id, r.wrapped))
        .collect())
}

pub async fn set_data_key(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    wrapped: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE pipeline_data_keys SET wrapped = $2 WHERE pipeline_id = $1",
        pipeline_id,
        wrapped
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Every connection's sealed token.
pub async fn connection_tokens(
    conn: &mut PgConnection,
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    let rows = sqlx::query!("SELECT id, sealed_token FROM connections")
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.sealed_token)).collect())
}

pub async fn set_connection_token(
    conn: &mut PgConnection,
    id: Uuid,
    sealed: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE connections SET sealed_token = $2 WHERE id = $1",
        id,
        sealed
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// New API tokens waiting to be shown once: token id, session, sealed token.
pub async fn token_reveals(
    conn: &mut PgConnection,
) -> Result<Vec<(Uuid, Uuid, String)>, sqlx::Error> {
    let rows =
        sqlx::query!("SELECT access_key_id, session_id, sealed_token FROM access_key_reveals")
            .fetch_all(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.access_key_id, r.session_id, r.sealed_token))
        .collect())
}

pub async fn set_token_reveal(
    conn: &mut PgConnection,
    access_key_id: Uuid,
    sealed: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE access_key_reveals SET sealed_token = $2 WHERE access_key_id = $1",
        access_key_id,
        sealed
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Every pipeline version's stored declaration: pipeline, version, JSON text.
pub async fn declarations(
    conn: &mut PgConnection,
) -> Result<Vec<(Uuid, i32, String)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT pipeline_id, version, declaration::text AS "declaration!" FROM pipeline_versions"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.pipeline_id, r.version, r.declaration))
        .collect())
}

pub async fn set_declaration(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    version: i32,
    declaration: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE pipeline_versions SET declaration = $3::text::jsonb WHERE pipeline_id = $1 AND version = $2",
        pipeline_id,
        version,
        declaration
    )
    .execute(conn)
    .await?;
    Ok(())
}
