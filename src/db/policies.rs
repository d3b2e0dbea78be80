//! Policies (managed and customer) and their attachments to users and groups.

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct PolicyRow {
    pub id: Uuid,
    pub policy_name: String,
    pub managed: bool,
    pub description: String,
    pub document: String,
    pub version: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Users and groups it is attached to.
    pub attachment_count: i64,
}

/// Makes the managed policy rows match the binary's definitions (name, description, document).
pub async fn sync_managed(
    pool: &PgPool,
    managed: &[(&str, &str, &str)],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for &(name, description, document) in managed {
        sqlx::query!(
            r#"INSERT INTO policies (id, policy_name, managed, description, document)
               VALUES ($1, $2, true, $3, $4)
               ON CONFLICT (lower(policy_name)) DO UPDATE
               SET description = EXCLUDED.description, document = EXCLUDED.document,
                   version = policies.version + 1
               WHERE policies.managed
                 AND (policies.document, policies.description) IS DISTINCT FROM (EXCLUDED.document, EXCLUDED.description)"#,
            Uuid::new_v4(),
            name,
            description,
            document
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Inserts a customer policy; `Ok(None)` when the name is taken.
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    name: &str,
    description: &str,
    document: &str,
    now: OffsetDateTime,
) -> Result<Option<PolicyRow>, sqlx::Error> {
    sqlx::query_as!(
        PolicyRow,
        r#"INSERT INTO policies (id, policy_name, managed, description, document, created_at, updated_at)
           VALUES ($1, $2, false, $3, $4, $5, $5)
           ON CONFLICT (lower(policy_name)) DO NOTHING
           RETURNING id, policy_name, managed, description, document, version, created_at, updated_at,
                     0::bigint AS "attachment_count!""#,
        id,
        name,
        description,
        document,
        now
    )
    .fetch_optional(conn)
    .await
}

pub async fn find_by_name(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<PolicyRow>, sqlx::Error> {
    sqlx::query_as!(
        PolicyRow,
        r#"SELECT p.id, p.policy_name, p.managed, p.description, p.document, p.version, p.created_at, p.updated_at,
                  ((SELECT count(*) FROM user_policies WHERE policy_id = p.id)
                   + (SELECT count(*) FROM group_policies WHERE policy_id = p.id)) AS "attachment_count!"
           FROM policies p WHERE lower(p.policy_name) = lower($1)"#,
        name
    )
    .fetch_optional(conn)
    .await
}

/// Policies ordered by name, after `after`; `managed` filters by kind when given.
pub async fn list(
    conn: &mut PgConnection,
    managed: Option<bool>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<PolicyRow>, sqlx::Error> {
    sqlx::query_as!(
        PolicyRow,
        r#"SELECT p.id, p.policy_name, p.managed, p.description, p.document, p.version, p.created_at, p.updated_at,
                  ((SELECT count(*) FROM user_policies WHERE policy_id = p.id)
                   + (SELECT count(*) FROM group_policies WHERE policy_id = p.id)) AS "attachment_count!"
           FROM policies p
           WHERE ($1::boolean IS NULL OR p.managed = $1)
             AND ($2::text IS NULL OR lower(p.policy_name) > lower($2))
           ORDER BY lower(p.policy_name) LIMIT $3"#,
        managed,
        after,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Replaces a customer policy's document and description, bumping its version.
/// Replaces a customer policy's description and document, compare-and-set: only while its
/// version is still `expected` (or whatever it is, for `None`). Returns the new version, or
/// `None` when someone else saved first.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    description: &str,
    document: &str,
    expected: Option<i32>,
) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"UPDATE policies SET description = $2, document = $3, version = version + 1,
                  updated_at = now()
           WHERE id = $1 AND NOT managed AND ($4::integer IS NULL OR version = $4)
           RETURNING version"#,
        id,
        description,
        document,
        expected
    )
    .fetch_optional(conn)
    .await
}

/// Deletes a customer policy. Fails with a foreign-key violation while it is attached.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM policies WHERE id = $1 AND NOT managed", id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Attaches a policy to a user; false when already attached.
pub async fn attach_to_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    policy_id: Uuid,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO user_policies (user_id, policy_id, attached_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        user_id,
        policy_id,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn detach_from_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    policy_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM user_policies WHERE user_id = $1 AND policy_id = $2",
        user_id,
        policy_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn attach_to_group(
    conn: &mut PgConnection,
    group_id: Uuid,
    policy_id: Uuid,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO group_policies (group_id, policy_id, attached_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        group_id,
        policy_id,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn detach_from_group(
    conn: &mut PgConnection,
    group_id: Uuid,
    policy_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM group_policies WHERE group_id = $1 AND policy_id = $2",
        group_id,
        policy_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A policy attached to someone: its name, whether managed, and its document.
#[derive(Debug, Clone)]
pub struct AttachedPolicy {
    pub policy_name: String,
    pub managed: bool,
    pub document: String,
}

/// Policies attached directly to a user, ordered by name.
pub async fn attached_to_user(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Vec<AttachedPolicy>, sqlx::Error> {
    sqlx::query_as!(
        AttachedPolicy,
        r#"SELECT p.policy_name, p.managed, p.document FROM user_policies a JOIN policies p ON p.id = a.policy_id
           WHERE a.user_id = $1 ORDER BY lower(p.policy_name)"#,
        user_id
    )
    .fetch_all(conn)
    .await
}

pub async fn attached_to_group(
    conn: &mut PgConnection,
    group_id: Uuid,
) -> Result<Vec<AttachedPolicy>, sqlx::Error> {
    sqlx::query_as!(
        AttachedPolicy,
        r#"SELECT p.policy_name, p.managed, p.document FROM group_policies a JOIN policies p ON p.id = a.policy_id
           WHERE a.group_id = $1 ORDER BY lower(p.policy_name)"#,
        group_id
    )
    .fetch_all(conn)
    .await
}

/// Everything that applies to a user: its own policies, then each group's (labelled
/// `group NAME: POLICY`), in a stable order.
pub async fn effective_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Vec<AttachedPolicy>, sqlx::Error> {
    sqlx::query_as!(
        AttachedPolicy,
        r#"SELECT policy_name AS "policy_name!", managed AS "managed!", document AS "document!" FROM (
             SELECT 0 AS source, '' AS group_key, p.policy_name, p.managed, p.document
             FROM user_policies a JOIN policies p ON p.id = a.policy_id WHERE a.user_id = $1
             UNION ALL
             SELECT 1, lower(g.group_name), 'group ' || g.group_name || ': ' || p.policy_name, p.managed, p.document
             FROM group_members m
             JOIN groups g ON g.id = m.group_id
             JOIN group_policies a ON a.group_id = g.id
             JOIN policies p ON p.id = a.policy_id
             WHERE m.user_id = $1
           ) all_policies
           ORDER BY source, group_key, lower(policy_name)"#,
        user_id
    )
    .fetch_all(conn)
    .await
}

/// A policy attached to one of several holders.
#[derive(Debug, Clone)]
pub struct HeldPolicy {
    pub holder_id: Uuid,
    pub policy_name: String,
    pub managed: bool,
}

/// The policies attached directly to each of `user_ids` (one query for a page), ordered.
pub async fn attached_to_users(
    conn: &mut PgConnection,
    user_ids: &[Uuid],
) -> Result<Vec<HeldPolicy>, sqlx::Error> {
    sqlx::query_as!(
        HeldPolicy,
        r#"SELECT a.user_id AS holder_id, p.policy_name, p.managed
           FROM user_policies a JOIN policies p ON p.id = a.policy_id
           WHERE a.user_id = ANY($1) ORDER BY lower(p.policy_name)"#,
        user_ids
    )
    .fetch_all(conn)
    .await
}

/// The policies attached to each of `group_ids` (one query for a page), ordered.
pub async fn attached_to_groups(
    conn: &mut PgConnection,
    group_ids: &[Uuid],
) -> Result<Vec<HeldPolicy>, sqlx::Error> {
    sqlx::query_as!(
        HeldPolicy,
        r#"SELECT a.group_id AS holder_id, p.policy_name, p.managed
           FROM group_policies a JOIN policies p ON p.id = a.policy_id
           WHERE a.group_id = ANY($1) ORDER BY lower(p.policy_name)"#,
        group_ids
    )
    .fetch_all(conn)
    .await
}
