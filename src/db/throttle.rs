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

/// After a successful sign-in, the user's failures (and refusals) from that address no longer count.
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
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "DELETE FROM sign_in_throttled WHERE user_key = $1 AND client_addr = $2",
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

/// Serializes sign-in attempts from one client address for the rest of the transaction, so that
/// counting the recent failures and recording this attempt cannot interleave with another
/// attempt's (at most the limit is ever checked per window).
pub async fn lock_address(conn: &mut PgConnection, client_addr: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(7310003, hashtext($1))",
        client_addr
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Failures for a user name since `since`, from any address (the per-account ceiling).
pub async fn count_for_user(
    conn: &mut PgConnection,
    user_key: &str,
    since: OffsetDateTime,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM sign_in_failures WHERE user_key = $1 AND failed_at > $2"#,
        user_key,
        since
    )
    .fetch_one(conn)
    .await
}

/// Counts a refused (throttled) attempt; returns how many have been refused in this run.
pub async fn note_throttled(
    conn: &mut PgConnection,
    user_key: &str,
    client_addr: &str,
    now: OffsetDateTime,
    window_start: OffsetDateTime,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"INSERT INTO sign_in_throttled (user_key, client_addr, first_at, last_at, refused)
           VALUES ($1, $2, $3, $3, 1)
           ON CONFLICT (user_key, client_addr) DO UPDATE
             SET refused = CASE WHEN sign_in_throttled.last_at <= $4 THEN 1
                                ELSE sign_in_throttled.refused + 1 END,
                 first_at = CASE WHEN sign_in_throttled.last_at <= $4 THEN $3
                                 ELSE sign_in_throttled.first_at END,
                 last_at = $3
           RETURNING refused"#,
        user_key,
        client_addr,
        now,
        window_start
    )
    .fetch_one(conn)
    .await
}

/// What an administrator sees of a user's throttling.
#[derive(Debug, Clone)]
pub struct UserThrottle {
    /// Recent failures from any address.
    pub failures: i64,
    pub last_failure: Option<OffsetDateTime>,
    /// Addresses with at least `per_address_limit` recent failures for this user.
    pub throttled_addresses: Vec<String>,
}

pub async fn state_for_user(
    conn: &mut PgConnection,
    user_key: &str,
    since: OffsetDateTime,
    per_address_limit: i64,
) -> Result<UserThrottle, sqlx::Error> {
    let totals = sqlx::query!(
        r#"SELECT count(*) AS "failures!", max(failed_at) AS last_failure
           FROM sign_in_failures WHERE user_key = $1 AND failed_at > $2"#,
        user_key,
        since
    )
    .fetch_one(&mut *conn)
    .await?;
    let throttled_addresses = sqlx::query_scalar!(
        r#"SELECT client_addr FROM sign_in_failures WHERE user_key = $1 AND failed_at > $2
           GROUP BY client_addr HAVING count(*) >= $3 ORDER BY client_addr"#,
        user_key,
        since,
        per_address_limit
    )
    .fetch_all(conn)
    .await?;
    Ok(UserThrottle {
        failures: totals.failures,
        last_failure: totals.last_failure,
        throttled_addresses,
    })
}

/// Forgets every failure and refusal of a user name (an administrator's "clear", a password
/// reset). Returns how many failures were forgotten.
pub async fn clear_user(conn: &mut PgConnection, user_key: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!("DELETE FROM sign_in_failures WHERE user_key = $1", user_key)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "DELETE FROM sign_in_throttled WHERE user_key = $1",
        user_key
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Drops refusal counters not touched since `before`.
pub async fn prune_throttled(
    conn: &mut PgConnection,
    before: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!("DELETE FROM sign_in_throttled WHERE last_at <= $1", before)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
