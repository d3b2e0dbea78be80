//! The audit log (CloudTrail's role): one event per change and per refusal, written in the same
//! transaction as the change, chained so that tampering shows.
//!
//! Each event's request parameters are stored as the exact canonical JSON text that was hashed
//! (object keys sorted at every level, no insignificant white space), never re-encoded by the
//! database, so what `verify` recomputes from a row is byte for byte what was hashed at insert.
//!
//! The chain is keyed: `hash = HMAC-SHA256(chain key, previous hash || canonical event)`, with a key
//! derived from the master key, which never enters the database. Someone who can only write to the
//! database can therefore neither alter an event nor rewrite the chain after it undetected.
//! Events written before the chain was keyed (`chain_version` 1) are verified as they were made:
//! SHA-256 without a key. `docs/access-control.md` says what the chain does and does not prove.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::access::EventName;
use crate::db::audit::{self as store, AuditRow};
use crate::sealing::MasterKey;

/// Outcome of a successful request.
pub const SUCCESS: &str = "success";

/// The chain version every new event is written with.
pub const CHAIN_VERSION: i16 = 2;

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

/// Longest string kept whole in the summary of a refused or failed request.
const SUMMARY_STRING_CHARS: usize = 256;

/// The key of the chain's HMAC. `Debug` shows nothing of it.
#[derive(Clone)]
pub struct ChainKey([u8; 32]);

impl ChainKey {
    /// The chain key first derived from a master key (one way: it reveals nothing of the master
    /// key). Stored in the keyring from then on, so rotating the master key keeps the chain.
    pub fn from_master(master: &MasterKey) -> Self {
        Self(master.derive(b"sluice audit chain v2"))
    }

    /// A chain key kept elsewhere (the database's keyring, wrapped by the master key).
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; 32 bytes cannot be refused.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainKey(****)")
    }
}

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
    pub event_name: EventName,
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

/// The bounded record of a refused or failed request: short scalar parameters as they were,
/// anything long or structured (a policy or pipeline document) as its SHA-256 and size, so a
/// refusal costs a small row however large the body was.
pub fn summary(params: Value) -> Value {
    let digest = |value: &Value| {
        let text = canonical_text(value);
        serde_json::json!({"sha256": hex(&Sha256::digest(text.as_bytes())), "bytes": text.len()})
    };
    match params {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let kept = match &v {
                        Value::String(s) if s.chars().count() <= SUMMARY_STRING_CHARS => v,
                        Value::Null | Value::Bool(_) | Value::Number(_) => v,
                        _ => digest(&v),
                    };
                    (k, kept)
                })
                .collect(),
        ),
        other => digest(&other),
    }
}

/// PostgreSQL's text cannot hold NUL; an event must never fail to be written because of what a
/// caller sent, so NUL becomes U+FFFD everywhere (keys included) and long fields are cut.
fn sanitized(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(clean(&s, usize::MAX)),
        Value::Array(items) => Value::Array(items.into_iter().map(sanitized).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (clean(&k, usize::MAX), sanitized(v)))
                .collect(),
        ),
        other => other,
    }
}

fn clean(text: &str, max_chars: usize) -> String {
    text.chars()
        .take(max_chars)
        .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
        .collect()
}

fn clean_opt(text: Option<&str>, max_chars: usize) -> Option<String> {
    text.map(|t| clean(t, max_chars))
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

/// Compact JSON with sorted keys: the stored and hashed form of request parameters.
pub fn canonical_text(value: &Value) -> String {
    // Serializing a `Value` cannot fail.
    serde_json::to_string(&sorted(value)).unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Serialize)]
struct Canonical<'a, P: Serialize> {
    event_id: String,
    event_time: String,
    user_name: &'a Option<String>,
    token_id: Option<String>,
    source_ip: &'a Option<String>,
    user_agent: &'a Option<String>,
    event_name: &'a str,
    resource_arn: &'a Option<String>,
    request_parameters: P,
    outcome: &'a str,
    error_message: &'a Option<String>,
    request_id: &'a Option<String>,
}

fn canonical<P: Serialize>(row: &AuditRow, request_parameters: P) -> Vec<u8> {
    let canonical = Canonical {
        event_id: row.event_id.to_string(),
        event_time: row.event_time.format(&Rfc3339).unwrap_or_default(),
        user_name: &row.user_name,
        token_id: row.token_id.map(|t| t.to_string()),
        source_ip: &row.source_ip,
        user_agent: &row.user_agent,
        event_name: &row.event_name,
        resource_arn: &row.resource_arn,
        request_parameters,
        outcome: &row.outcome,
        error_message: &row.error_message,
        request_id: &row.request_id,
    };
    // Serializing plain strings and JSON values cannot fail.
    serde_json::to_vec(&canonical).unwrap_or_default()
}

/// The chained hash of a row's content after `prev_hash`, as its chain version defines it.
pub fn chain_hash(key: &ChainKey, row: &AuditRow, prev_hash: Option<&[u8]>) -> Vec<u8> {
    if row.chain_version >= 2 {
        let mut mac = key.mac();
        if let Some(prev) = prev_hash {
            mac.update(prev);
        }
        // The stored text itself, as a JSON string: no re-encoding can change it.
        mac.update(&canonical(row, row.request_parameters.as_str()));
        mac.finalize().into_bytes().to_vec()
    } else {
        // Version 1: unkeyed SHA-256 over the parameters re-read as JSON with sorted keys.
        let params: Value = serde_json::from_str(&row.request_parameters).unwrap_or(Value::Null);
        let mut hasher = Sha256::new();
        if let Some(prev) = prev_hash {
            hasher.update(prev);
        }
        hasher.update(canonical(row, sorted(&params)));
        hasher.finalize().to_vec()
    }
}

/// Truncates to microseconds, PostgreSQL's precision, so the stored time hashes the same.
fn to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

/// Appends an event within the caller's transaction. The append lock is taken here, so call this
/// last, right before commit: audited transactions then serialize only for the append itself.
pub async fn record(
    conn: &mut PgConnection,
    key: &ChainKey,
    event: Event<'_>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let params = canonical_text(&sanitized(mask(event.request_parameters)));
    let mut row = AuditRow {
        seq: 0,
        event_id: Uuid::new_v4(),
        event_time: to_micros(now),
        user_name: clean_opt(event.actor.user_name.as_deref(), 128),
        token_id: event.actor.token_id,
        source_ip: clean_opt(event.actor.source_ip.as_deref(), 64),
        user_agent: clean_opt(event.actor.user_agent.as_deref(), 512),
        event_name: event.event_name.as_str().to_string(),
        resource_arn: clean_opt(event.resource_arn.as_deref(), 2048),
        request_parameters: params,
        outcome: clean(event.outcome, 128),
        error_message: clean_opt(event.error_message.as_deref(), 2048),
        request_id: clean_opt(event.actor.request_id.as_deref(), 128),
        chain_version: CHAIN_VERSION,
        prev_hash: None,
        hash: Vec::new(),
    };
    row.prev_hash = store::lock_and_last_hash(&mut *conn).await?;
    row.hash = chain_hash(key, &row, row.prev_hash.as_deref());
    store::insert(conn, &row).await
}

/// Appends an event in a transaction of its own (refusals and failures, whose request
/// transaction was rolled back or never began).
pub async fn record_alone(
    pool: &PgPool,
    key: &ChainKey,
    event: Event<'_>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    record(&mut tx, key, event, now).await?;
    tx.commit().await
}

/// An event whose stored hashes do not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub seq: i64,
    pub event_id: Uuid,
    pub reason: &'static str,
}

/// What `verify` found: every broken event, and the head to record elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub events: u64,
    /// The newest event's sequence number and hash (hex). Deleting the newest events leaves an
    /// intact but shorter chain: only a head recorded earlier, outside the database, shows it.
    pub head: Option<(i64, String)>,
    pub broken: Vec<Broken>,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        self.broken.is_empty()
    }
}

const LINK_BROKEN: &str =
    "its link to the previous event does not match (an event was removed or altered before it)";
const CONTENT_ALTERED: &str = "its content does not match its hash (the event was altered)";

/// Walks the whole chain from the first event, reporting every event that does not hold.
pub async fn verify(pool: &PgPool, key: &ChainKey) -> Result<Verification, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut after = 0i64;
    let mut previous: Option<Vec<u8>> = None;
    let mut report = Verification {
        events: 0,
        head: None,
        broken: Vec::new(),
    };
    loop {
        let page = store::page_in_order(&mut conn, after, 1000).await?;
        if page.is_empty() {
            return Ok(report);
        }
        for row in page {
            if row.prev_hash != previous {
                report.broken.push(Broken {
                    seq: row.seq,
                    event_id: row.event_id,
                    reason: LINK_BROKEN,
                });
            } else if chain_hash(key, &row, previous.as_deref()) != row.hash {
                report.broken.push(Broken {
                    seq: row.seq,
                    event_id: row.event_id,
                    reason: CONTENT_ALTERED,
                });
            }
            // Go on from what is stored, so one altered event is reported once, not as a
            // cascade through every later link.
            report.head = Some((row.seq, hex(&row.hash)));
            previous = Some(row.hash);
            after = row.seq;
            report.events += 1;
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

    fn key() -> ChainKey {
        ChainKey::from_master(&MasterKey::from_bytes([3u8; 32]))
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
            request_parameters: canonical_text(&json!({"b": 1, "a": {"y": 2, "x": -0.0}})),
            outcome: SUCCESS.into(),
            error_message: None,
            request_id: Some("r1".into()),
            chain_version: CHAIN_VERSION,
            prev_hash: None,
            hash: Vec::new(),
        }
    }

    #[test]
    fn parameters_are_stored_canonically_and_hashed_as_stored() {
        assert_eq!(row().request_parameters, r#"{"a":{"x":-0.0,"y":2},"b":1}"#);
        let a = row();
        let mut c = row();
        c.outcome = "AccessDenied".into();
        assert_ne!(chain_hash(&key(), &a, None), chain_hash(&key(), &c, None));
        assert_ne!(
            chain_hash(&key(), &a, None),
            chain_hash(&key(), &a, Some(&[1u8; 32]))
        );
        let mut d = row();
        d.request_parameters = r#"{"a":{"x":0,"y":2},"b":1}"#.into();
        assert_ne!(chain_hash(&key(), &a, None), chain_hash(&key(), &d, None));
    }

    #[test]
    fn the_chain_needs_the_key() {
        let other = ChainKey::from_master(&MasterKey::from_bytes([4u8; 32]));
        assert_ne!(
            chain_hash(&key(), &row(), None),
            chain_hash(&other, &row(), None)
        );
        assert_eq!(format!("{:?}", key()), "ChainKey(****)");
    }

    #[test]
    fn version_one_events_verify_without_the_key() {
        let mut v1 = row();
        v1.chain_version = 1;
        v1.request_parameters = r#"{"b": 1, "a": {"y": 2, "x": 3}}"#.into();
        let other = ChainKey::from_master(&MasterKey::from_bytes([4u8; 32]));
        assert_eq!(chain_hash(&key(), &v1, None), chain_hash(&other, &v1, None));
    }

    #[test]
    fn summaries_are_bounded() {
        let long = "x".repeat(1_000_000);
        let s = summary(
            json!({"pipelineName": "web", "version": 3, "pipeline": {"stages": [long.clone()]}, "policyDocument": long}),
        );
        assert_eq!(s["pipelineName"], "web");
        assert_eq!(s["version"], 3);
        assert_eq!(s["pipeline"]["sha256"].as_str().unwrap().len(), 64);
        assert!(s["policyDocument"]["bytes"].as_u64().unwrap() > 1_000_000);
        assert!(canonical_text(&s).len() < 400);
    }

    #[test]
    fn nul_never_reaches_the_database() {
        let v = sanitized(json!({"na\u{0}me": ["x\u{0}"]}));
        assert_eq!(v, json!({"na\u{FFFD}me": ["x\u{FFFD}"]}));
    }

    #[test]
    fn times_are_kept_to_microseconds() {
        assert_eq!(row().event_time.nanosecond() % 1_000, 0);
    }
}
