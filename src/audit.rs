//! The audit log (CloudTrail's role): one event per change and per refusal, written in the same
//! transaction as the change, chained by hashes so tampering shows.
//!
//! `hash = SHA-256(previous hash || canonical JSON of the event)`. The canonical form has fixed
//! field order, object keys sorted at every level, and times in RFC 3339 with microseconds (what
//! PostgreSQL stores), so the hash recomputed from a stored row equals the one computed at insert.

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::db::audit::{self as store, AuditRow};

/// Outcome of a successful request.
pub const SUCCESS: &str = "success";

/// Request parameters whose values never reach the log.
const SECRET_KEYS: &[&str] = &[
    "password",
    "currentPassword",
    "newPassword",
    "oldPassword",
    "token",
    "secret",
    "csrf_token",
];

/// Who did it and from where.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user_name: Option<String>,
    pub token_id: Option<Uuid>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub actor: &'a Actor,
    /// The action, e.g. `iam:CreateUser`, `sluice:ConsoleLogin`.
    pub event_name: &'a str,
    pub resource_arn: Option<String>,
    /// Masked before storing.
    pub request_parameters: Value,
    /// [`SUCCESS`] or an error code (`AccessDenied`, `ValidationException`, …).
    pub outcome: &'a str,
    pub error_message: Option<String>,
}

/// Replaces the values of secret keys (at any depth) with `****`.
pub fn mask(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if SECRET_KEYS.iter().any(|s| s.eq_ignore_ascii_case(&k)) {
                        (k, Value::String("****".into()))
                    } else {
                        (k, mask(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(mask).collect()),
        other => other,
    }
}

/// The same value with object keys sorted at every level.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[derive(Serialize)]
struct Canonical<'a> {
    event_id: String,
    event_time: String,
    user_name: &'a Option<String>,
    token_id: Option<String>,
    source_ip: &'a Option<String>,
    user_agent: &'a Option<String>,
    event_name: &'a str,
    resource_arn: &'a Option<String>,
    request_parameters: Value,
    outcome: &'a str,
    error_message: &'a Option<String>,
    request_id: &'a Option<String>,
}

/// The chained hash of a row's content after `prev_hash`.
pub fn chain_hash(row: &AuditRow, prev_hash: Option<&[u8]>) -> Vec<u8> {
    let canonical = Canonical {
        event_id: row.event_id.to_string(),
        event_time: row.event_time.format(&Rfc3339).unwrap_or_default(),
        user_name: &row.user_name,
        token_id: row.token_id.map(|t| t.to_string()),
        source_ip: &row.source_ip,
        user_agent: &row.user_agent,
        event_name: &row.event_name,
        resource_arn: &row.resource_arn,
        request_parameters: sorted(&row.request_parameters),
        outcome: &row.outcome,
        error_message: &row.error_message,
        request_id: &row.request_id,
    };
    let mut hasher = Sha256::new();
    if let Some(prev) = prev_hash {
        hasher.update(prev);
    }
    // Serializing plain strings and JSON values cannot fail.
    hasher.update(serde_json::to_vec(&canonical).unwrap_or_default());
    hasher.finalize().to_vec()
}

/// Truncates to microseconds, PostgreSQL's precision, so the stored time hashes the same.
fn to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

/// Appends an event within the caller's transaction.
pub async fn record(
    conn: &mut PgConnection,
    event: Event<'_>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let prev_hash = store::lock_and_last_hash(&mut *conn).await?;
    let mut row = AuditRow {
        seq: 0,
        event_id: Uuid::new_v4(),
        event_time: to_micros(now),
        user_name: event.actor.user_name.clone(),
        token_id: event.actor.token_id,
        source_ip: event.actor.source_ip.clone(),
        user_agent: event.actor.user_agent.clone(),
        event_name: event.event_name.to_string(),
        resource_arn: event.resource_arn,
        request_parameters: mask(event.request_parameters),
        outcome: event.outcome.to_string(),
        error_message: event.error_message,
        request_id: event.actor.request_id.clone(),
        prev_hash: prev_hash.clone(),
        hash: Vec::new(),
    };
    row.hash = chain_hash(&row, prev_hash.as_deref());
    store::insert(conn, &row).await
}

/// Appends an event in a transaction of its own (refusals and failures, whose request
/// transaction was rolled back or never began).
pub async fn record_alone(
    pool: &PgPool,
    event: Event<'_>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    record(&mut tx, event, now).await?;
    tx.commit().await
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every link holds.
    Intact { events: u64 },
    /// The first event whose stored hashes do not match its content or its predecessor.
    Broken {
        seq: i64,
        event_id: Uuid,
        reason: String,
    },
}

/// Walks the chain from the first event.
pub async fn verify(pool: &PgPool) -> Result<Verification, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut after = 0i64;
    let mut previous: Option<Vec<u8>> = None;
    let mut count = 0u64;
    loop {
        let page = store::page_in_order(&mut conn, after, 1000).await?;
        if page.is_empty() {
            return Ok(Verification::Intact { events: count });
        }
        for row in page {
            if row.prev_hash != previous {
                return Ok(Verification::Broken {
                    seq: row.seq,
                    event_id: row.event_id,
                    reason: "its link to the previous event does not match (an event was removed or altered before it)".into(),
                });
            }
            let expected = chain_hash(&row, previous.as_deref());
            if expected != row.hash {
                return Ok(Verification::Broken {
                    seq: row.seq,
                    event_id: row.event_id,
                    reason: "its content does not match its hash (the event was altered)".into(),
                });
            }
            previous = Some(row.hash);
            after = row.seq;
            count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_masked_at_any_depth() {
        let masked = mask(json!({
            "userName": "alice",
            "password": "hunter2hunter2",
            "nested": {"Token": "sluice_abc", "keep": 1},
            "list": [{"newPassword": "x"}],
            "policyDocument": "{\"Statement\": []}"
        }));
        assert_eq!(
            masked,
            json!({
                "userName": "alice",
                "password": "****",
                "nested": {"Token": "****", "keep": 1},
                "list": [{"newPassword": "****"}],
                "policyDocument": "{\"Statement\": []}"
            })
        );
    }

    fn row() -> AuditRow {
        AuditRow {
            seq: 1,
            event_id: Uuid::nil(),
            event_time: to_micros(
                OffsetDateTime::UNIX_EPOCH + time::Duration::nanoseconds(1_234_567_891),
            ),
            user_name: Some("alice".into()),
            token_id: None,
            source_ip: Some("127.0.0.1".into()),
            user_agent: None,
            event_name: "iam:CreateUser".into(),
            resource_arn: Some("arn:sluice:iam:::user/bob".into()),
            request_parameters: json!({"b": 1, "a": {"y": 2, "x": 3}}),
            outcome: SUCCESS.into(),
            error_message: None,
            request_id: Some("r1".into()),
            prev_hash: None,
            hash: Vec::new(),
        }
    }

    #[test]
    fn the_hash_ignores_key_order_but_not_content() {
        let a = row();
        let mut b = row();
        b.request_parameters = json!({"a": {"x": 3, "y": 2}, "b": 1});
        assert_eq!(chain_hash(&a, None), chain_hash(&b, None));
        let mut c = row();
        c.outcome = "AccessDenied".into();
        assert_ne!(chain_hash(&a, None), chain_hash(&c, None));
        assert_ne!(chain_hash(&a, None), chain_hash(&a, Some(&[1u8; 32])));
    }

    #[test]
    fn times_are_kept_to_microseconds() {
        assert_eq!(row().event_time.nanosecond() % 1_000, 0);
    }
}
