//! Console sessions.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// A session with what a request needs about its user.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub user_name: String,
    pub user_enabled: bool,
    pub csrf_token: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    token_hash: &[u8],
    user_id: Uuid,
    csrf_token: &str,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
    source_ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO sessions (id, token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, source_ip, user_agent)
           VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8)"#,
        id,
        token_hash,
        user_id,
        csrf_token,
        now,
        expires_at,
        source_ip,
        user_agent
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_by_token_hash(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<SessionRow>, sqlx::Error> {
    sqlx::query_as!(
        SessionRow,
        r#"SELECT s.id, s.user_id, u.user_name, u.enabled AS user_enabled, s.csrf_token, s.created_at,
                  s.last_seen_at, s.expires_at, s.source_ip, s.user_agent
           FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.token_hash = $1"#,
        token_hash
    )
    .fetch_optional(conn)
    .await
}

pub async fn touch(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE sessions SET last_seen_at = $2 WHERE id = $1",
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!("DELETE FROM sessions WHERE id = $1", id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes one of a user's sessions; false when it is not theirs or does not exist.
pub async fn delete_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM sessions WHERE id = $1 AND user_id = $2",
        id,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends every session of a user except `keep` (the one making the change, if any).
pub async fn delete_all_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM sessions WHERE user_id = $1 AND ($2::uuid IS NULL OR id <> $2)",
        user_id,
        keep
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

pub async fn list_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: OffsetDateTime,
) -> Result<Vec<SessionRow>, sqlx::Error> {
    sqlx::query_as!(
        SessionRow,
        r#"SELECT s.id, s.user_id, u.user_name, u.enabled AS user_enabled, s.csrf_token, s.created_at,
                  s.last_seen_at, s.expires_at, s.source_ip, s.user_agent
           FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.user_id = $1 AND s.expires_at > $2
           ORDER BY s.last_seen_at DESC"#,
        user_id,
        now
    )
    .fetch_all(conn)
    .await
}

/// Removes sessions past their absolute lifetime or idle for longer than `idle_cutoff` allows.
pub async fn delete_expired(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    idle_cutoff: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2",
        now,
        idle_cutoff
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A session with the policies that apply to its user (own and groups'), in one round trip: every
/// console request needs both.
pub async fn find_with_policies(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<(SessionRow, Vec<super::policies::AttachedPolicy>)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT s.id, s.user_id, u.user_name, u.enabled AS user_enabled, s.csrf_token, s.created_at,
                  s.last_seen_at, s.expires_at, s.source_ip, s.user_agent,
                  COALESCE((
                    SELECT json_agg(json_build_object('policy_name', x.policy_name, 'managed', x.managed, 'document', x.document)
                                    ORDER BY x.source, x.group_key, lower(x.policy_name))
                    FROM (
                      SELECT 0 AS source, '' AS group_key, p.policy_name, p.managed, p.document
                      FROM user_policies a JOIN policies p ON p.id = a.policy_id WHERE a.user_id = s.user_id
                      UNION ALL
                      SELECT 1, lower(g.group_name), 'group ' || g.group_name || ': ' || p.policy_name, p.managed, p.document
                      FROM group_members m
                      JOIN groups g ON g.id = m.group_id
                      JOIN group_policies a ON a.group_id = g.id
                      JOIN policies p ON p.id = a.policy_id
                      WHERE m.user_id = s.user_id
                    ) x
                  ), '[]'::json) AS "policies!: serde_json::Value"
           FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.token_hash = $1"#,
        token_hash
    )
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    #[derive(serde::Deserialize)]
    struct Policy {
        policy_name: String,
        managed: bool,
        document: String,
    }
    let policies: Vec<Policy> =
        serde_json::from_value(row.policies).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(Some((
        SessionRow {
            id: row.id,
            user_id: row.user_id,
            user_name: row.user_name,
            user_enabled: row.user_enabled,
            csrf_token: row.csrf_token,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at,
            source_ip: row.source_ip,
            user_agent: row.user_agent,
        },
        policies
            .into_iter()
            .map(|p| super::policies::AttachedPolicy {
                policy_name: p.policy_name,
                managed: p.managed,
                document: p.document,
            })
            .collect(),
    )))
}
