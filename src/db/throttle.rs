//! Failed sign-ins, for throttling.

use sqlx::PgConnection;
use time::OffsetDateTime;

pub async fn record_failure(
    conn: &mut PgConnection,
    user_key: &str,
    client_addr: &str,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO sign_in_failures (user_key, client_addr, failed_at) VALUES ($1, $2, $3)",
        user_key,
        client_addr,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Failures since `since`: for this user name from this address, and from this address in all;
/// with the oldest of each (to say when the window frees up).
#[derive(Debug, Clone, Copy)]
pub struct RecentFailures {
    pub for_user: i64,
    pub oldest_for_user: Option<OffsetDateTime>,
    pub for_address: i64,
    pub oldest_for_address: Option<OffsetDateTime>,
}

pub async fn recent(
    conn: &mut PgConnection,
    user_key: &str,
    client_addr: &str,
    since: OffsetDateTime,
) -> Result<RecentFailures, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE user_key = $1) AS "for_user!",
                  min(failed_at) FILTER (WHERE user_key = $1) AS oldest_for_user,
                  count(*) AS "for_address!",
                  min(failed_at) AS oldest_for_address
           FROM sign_in_failures WHERE client_addr = $2 AND failed_at > $3"#,
        user_key,
        client_addr,
        since
    )
    .fetch_one(conn)
    .await?;
    Ok(RecentFailures {
        for_user: row.for_user,
        oldest_for_user: row.oldest_for_user,
        for_address: row.for_address,
        oldest_for_address: row.oldest_for_address,
    })
}

/// After a successful sign-in, the user's failures from that address no longer count.
pub async fn clear(
    conn: &mut PgConnection,
    user_key: &str,
    client_addr: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM sign_in_failures WHERE user_key = $1 AND client_addr = $2",
        user_key,
        client_addr
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Drops failures older than the window.
pub async fn prune(conn: &mut PgConnection, before: OffsetDateTime) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!("DELETE FROM sign_in_failures WHERE failed_at <= $1", before)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
