//! The audit log's rows. Appending is serialized by a transaction-scoped advisory lock, so the
//! hash chain never forks.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// A stored audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub seq: i64,
    pub event_id: Uuid,
    pub event_time: OffsetDateTime,
    pub user_name: Option<String>,
    pub token_id: Option<Uuid>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub event_name: String,
    pub resource_arn: Option<String>,
    /// The canonical JSON text of the (masked) request parameters.
    pub request_parameters: String,
    pub outcome: String,
    pub error_message: Option<String>,
    pub request_id: Option<String>,
    /// How `hash` was computed (`crate::audit::chain_hash`).
    pub chain_version: i16,
    pub prev_hash: Option<Vec<u8>>,
    pub hash: Vec<u8>,
}

/// Takes the append lock (released at commit) and returns the hash of the newest event.
pub async fn lock_and_last_hash(conn: &mut PgConnection) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock(7310002)")
        .execute(&mut *conn)
        .await?;
    let last = sqlx::query_scalar!("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(conn)
        .await?;
    Ok(last)
}

impl AuditRow {
    /// The request parameters as JSON (for display; the hash covers the stored text).
    pub fn parameters(&self) -> serde_json::Value {
        serde_json::from_str(&self.request_parameters).unwrap_or(serde_json::Value::Null)
    }
}

/// Appends an event (`seq` is assigned by the database and ignored here).
pub async fn insert(conn: &mut PgConnection, row: &AuditRow) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO audit_events (event_id, event_time, user_name, token_id, source_ip, user_agent,
               event_name, resource_arn, request_parameters_text, outcome, error_message, request_id,
               chain_version, prev_hash, hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"#,
        row.event_id,
        row.event_time,
        row.user_name,
        row.token_id,
        row.source_ip,
        row.user_agent,
        row.event_name,
        row.resource_arn,
        row.request_parameters,
        row.outcome,
        row.error_message,
        row.request_id,
        row.chain_version,
        row.prev_hash,
        row.hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What to look for. Every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user_name: Option<String>,
    pub event_name: Option<String>,
    pub resource_prefix: Option<String>,
    /// `success`, `failure` (any error), or an exact error code.
    pub outcome: Option<String>,
    pub start_time: Option<OffsetDateTime>,
    pub end_time: Option<OffsetDateTime>,
}

/// Newest first, older than `before_seq` (keyset pagination).
pub async fn lookup(
    conn: &mut PgConnection,
    filter: &AuditFilter,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let prefix = filter.resource_prefix.as_deref().map(|p| {
        format!(
            "{}%",
            p.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    sqlx::query_as!(
        AuditRow,
        r#"SELECT seq, event_id, event_time, user_name, token_id, source_ip, user_agent, event_name,
                  resource_arn,
                  COALESCE(request_parameters_text, request_parameters::text) AS "request_parameters!",
                  outcome, error_message, request_id, chain_version, prev_hash, hash
           FROM audit_events
           WHERE ($1::text IS NULL OR lower(user_name) = lower($1))
             AND ($2::text IS NULL OR event_name = $2)
             AND ($3::text IS NULL OR resource_arn LIKE $3)
             AND ($4::text IS NULL OR ($4 = 'failure' AND outcome <> 'success') OR outcome = $4)
             AND ($5::timestamptz IS NULL OR event_time >= $5)
             AND ($6::timestamptz IS NULL OR event_time < $6)
             AND ($7::bigint IS NULL OR seq < $7)
           ORDER BY seq DESC
           LIMIT $8"#,
        filter.user_name,
        filter.event_name,
        prefix,
        filter.outcome,
        filter.start_time,
        filter.end_time,
        before_seq,
        limit
    )
    .fetch_all(conn)
    .await
}

/// One event by its id.
pub async fn find(
    conn: &mut PgConnection,
    event_id: Uuid,
) -> Result<Option<AuditRow>, sqlx::Error> {
    sqlx::query_as!(
        AuditRow,
        r#"SELECT seq, event_id, event_time, user_name, token_id, source_ip, user_agent, event_name,
                  resource_arn,
                  COALESCE(request_parameters_text, request_parameters::text) AS "request_parameters!",
                  outcome, error_message, request_id, chain_version, prev_hash, hash
           FROM audit_events WHERE event_id = $1"#,
        event_id
    )
    .fetch_optional(conn)
    .await
}

/// Events oldest first, after `after_seq`, for walking the whole chain.
pub async fn page_in_order(
    conn: &mut PgConnection,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as!(
        AuditRow,
        r#"SELECT seq, event_id, event_time, user_name, token_id, source_ip, user_agent, event_name,
                  resource_arn,
                  COALESCE(request_parameters_text, request_parameters::text) AS "request_parameters!",
                  outcome, error_message, request_id, chain_version, prev_hash, hash
           FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"#,
        after_seq,
        limit
    )
    .fetch_all(conn)
    .await
}
