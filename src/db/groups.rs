//! Groups and their members.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct GroupRow {
    pub id: Uuid,
    pub group_name: String,
    pub created_at: OffsetDateTime,
}

/// Inserts a group; `Ok(None)` when the name is taken.
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    group_name: &str,
    now: OffsetDateTime,
) -> Result<Option<GroupRow>, sqlx::Error> {
    sqlx::query_as!(
        GroupRow,
        r#"INSERT INTO groups (id, group_name, created_at) VALUES ($1, $2, $3)
           ON CONFLICT (lower(group_name)) DO NOTHING
           RETURNING id, group_name, created_at"#,
        id,
        group_name,
        now
    )
    .fetch_optional(conn)
    .await
}

pub async fn find_by_name(
    conn: &mut PgConnection,
    group_name: &str,
) -> Result<Option<GroupRow>, sqlx::Error> {
    sqlx::query_as!(
        GroupRow,
        "SELECT id, group_name, created_at FROM groups WHERE lower(group_name) = lower($1)",
        group_name
    )
    .fetch_optional(conn)
    .await
}

pub async fn list(
    conn: &mut PgConnection,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<GroupRow>, sqlx::Error> {
    sqlx::query_as!(
        GroupRow,
        r#"SELECT id, group_name, created_at FROM groups
           WHERE $1::text IS NULL OR lower(group_name) > lower($1)
           ORDER BY lower(group_name) LIMIT $2"#,
        after,
        limit
    )
    .fetch_all(conn)
    .await
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM groups WHERE id = $1", id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Adds a member; false when already a member.
pub async fn add_member(
    conn: &mut PgConnection,
    group_id: Uuid,
    user_id: Uuid,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO group_members (group_id, user_id, added_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        group_id,
        user_id,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes a member; false when not a member.
pub async fn remove_member(
    conn: &mut PgConnection,
    group_id: Uuid,
    user_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2",
        group_id,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The member names of a group, ordered.
pub async fn member_names(
    conn: &mut PgConnection,
    group_id: Uuid,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT u.user_name FROM group_members m JOIN users u ON u.id = m.user_id
           WHERE m.group_id = $1 ORDER BY lower(u.user_name)"#,
        group_id
    )
    .fetch_all(conn)
    .await
}

/// The names of the groups a user belongs to, ordered.
pub async fn names_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT g.group_name FROM group_members m JOIN groups g ON g.id = m.group_id
           WHERE m.user_id = $1 ORDER BY lower(g.group_name)"#,
        user_id
    )
    .fetch_all(conn)
    .await
}

/// The group names of each of `user_ids` (one query for a page of users), ordered.
pub async fn names_for_users(
    conn: &mut PgConnection,
    user_ids: &[Uuid],
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT m.user_id, g.group_name FROM group_members m JOIN groups g ON g.id = m.group_id
           WHERE m.user_id = ANY($1) ORDER BY lower(g.group_name)"#,
        user_ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.user_id, r.group_name))
        .collect())
}

/// The member names of each of `group_ids` (one query for a page of groups), ordered.
pub async fn member_names_for_groups(
    conn: &mut PgConnection,
    group_ids: &[Uuid],
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT m.group_id, u.user_name FROM group_members m JOIN users u ON u.id = m.user_id
           WHERE m.group_id = ANY($1) ORDER BY lower(u.user_name)"#,
        group_ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.group_id, r.user_name))
        .collect())
}
