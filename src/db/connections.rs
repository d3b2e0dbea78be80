//! Connections: named Git credentials, the token sealed.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// A stored connection. `sealed_token` is the master key's ciphertext; only the worker that
/// clones with it opens it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRow {
    pub id: Uuid,
    pub name: String,
    pub provider_type: String,
    /// `Token` or `SshKey`: what `sealed_token` holds (a token, or a private key).
    pub auth_type: String,
    pub username: String,
    pub sealed_token: String,
    pub ca_certificate: Option<String>,
    /// Of an SSH key: its public half and the host keys a clone accepts.
    pub public_key: Option<String>,
    pub known_hosts: Option<String>,
    /// The one host its credentials go to (`None`: any the action names).
    pub host: Option<String>,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Inserts a connection; `false` when one of that name (in any case) exists.
pub async fn insert(conn: &mut PgConnection, row: &ConnectionRow) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query!(
        r#"INSERT INTO connections (id, name, provider_type, username, sealed_token, ca_certificate,
                                    created_by, created_at, updated_at, host, auth_type,
                                    public_key, known_hosts)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           ON CONFLICT ((lower(name))) DO NOTHING"#,
        row.id,
        row.name,
        row.provider_type,
        row.username,
        row.sealed_token,
        row.ca_certificate,
        row.created_by,
        row.created_at,
        row.updated_at,
        row.host,
        row.auth_type,
        row.public_key,
        row.known_hosts
    )
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The connection of that name, whatever the case it is written in.
pub async fn find(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<ConnectionRow>, sqlx::Error> {
    sqlx::query_as!(
        ConnectionRow,
        r#"SELECT id, name, provider_type, username, sealed_token, ca_certificate, created_by,
                  created_at, updated_at, host, auth_type, public_key, known_hosts
           FROM connections WHERE lower(name) = lower($1)"#,
        name
    )
    .fetch_optional(conn)
    .await
}

/// Connections by name, after `after` (keyset paging), at most `limit`.
pub async fn list(
    conn: &mut PgConnection,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ConnectionRow>, sqlx::Error> {
    sqlx::query_as!(
        ConnectionRow,
        r#"SELECT id, name, provider_type, username, sealed_token, ca_certificate, created_by,
                  created_at, updated_at, host, auth_type, public_key, known_hosts
           FROM connections WHERE $1::text IS NULL OR lower(name) > lower($1)
           ORDER BY lower(name) LIMIT $2"#,
        after,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Writes a connection's credentials (username, sealed secret, certificate, key parts) as
/// `row` holds them; `false` when it is gone.
pub async fn update(conn: &mut PgConnection, row: &ConnectionRow) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query!(
        r#"UPDATE connections SET username = $2, sealed_token = $3, ca_certificate = $4,
                  public_key = $5, known_hosts = $6, updated_at = $7
           WHERE id = $1"#,
        row.id,
        row.username,
        row.sealed_token,
        row.ca_certificate,
        row.public_key,
        row.known_hosts,
        row.updated_at
    )
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query!("DELETE FROM connections WHERE id = $1", id)
        .execute(conn)
        .await?;
    Ok(deleted.rows_affected() == 1)
}
