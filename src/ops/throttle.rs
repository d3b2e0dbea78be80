//! Password-guessing limits, shared by sign-in and the current-password check of "change
//! password".
//!
//! An attempt is counted *before* its password is checked: under a per-address lock, the recent
//! failures are counted and, below the limits, the attempt is recorded as a failure at once (a
//! success removes it). Many attempts at once therefore cannot all reach the check; at most the
//! limit are checked per window, the rest are refused. Across addresses, an account's failures
//! add a growing delay before the check (not a refusal, which an attacker could use to lock the
//! real user out at will).

use time::Duration;

use super::Services;
use crate::audit::{self, Actor};
use crate::db;
use crate::error::AppError;
use crate::identity::UserName;

/// Failures allowed per user name and client address within [`WINDOW`].
pub const MAX_FAILURES_PER_USER: i64 = 5;
/// Failures allowed per client address (across user names) within the window.
pub const MAX_FAILURES_PER_ADDRESS: i64 = 50;
pub const WINDOW: Duration = Duration::minutes(15);
/// Failures of one account (from any address) after which each attempt waits before its check.
pub const CEILING_FREE_FAILURES: i64 = 10;
/// The longest such wait.
pub const CEILING_MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(10);

/// The key failures are counted under: one per account, whatever case or Unicode form of its
/// name was typed. Valid names are ASCII, so ASCII case folding is exact for every name that can
/// exist; any other input is folded with full Unicode lower-casing (it names no account, but its
/// variants still share one key).
pub fn user_key(typed: &str) -> String {
    let cut: String = typed.trim().chars().take(64).collect();
    match UserName::parse(&cut) {
        Ok(name) => name.as_str().to_ascii_lowercase(),
        Err(_) => cut.to_lowercase(),
    }
}

/// The wait before checking a password for an account with `failures` recent failures from any
/// address: none up to [`CEILING_FREE_FAILURES`], then doubling from 250 ms up to
/// [`CEILING_MAX_DELAY`].
pub fn ceiling_delay(failures: i64) -> std::time::Duration {
    if failures < CEILING_FREE_FAILURES {
        return std::time::Duration::ZERO;
    }
    let steps = (failures - CEILING_FREE_FAILURES).min(16) as u32;
    std::time::Duration::from_millis(250u64 << steps).min(CEILING_MAX_DELAY)
}

/// A refused attempt: try again after `retry_after`.
#[derive(Debug, Clone, Copy)]
pub struct Throttled {
    pub retry_after: Duration,
}

/// Whether a refusal is worth its own audit event: the 1st, 10th, 100th… of a run, each saying
/// how many there have been, so a flood of refused attempts costs a handful of rows.
fn audit_refusal(refused: i64) -> bool {
    refused >= 1 && {
        let mut n = refused;
        while n % 10 == 0 {
            n /= 10;
        }
        n == 1
    }
}

/// Counts an attempt for `user_key` from `actor`'s address before its password is checked.
/// `Ok(Err(Throttled))` means refused (and counted, not checked).
pub async fn admit(
    s: &Services,
    user_key: &str,
    actor: &Actor,
    event: crate::access::EventName,
) -> Result<Result<(), Throttled>, AppError> {
    let address = address(actor);
    let now = s.clock.now();
    let since = now - WINDOW;
    {
        let mut conn = s.pool.acquire().await?;
        let for_account = db::throttle::count_for_user(&mut conn, user_key, since).await?;
        drop(conn);
        let delay = ceiling_delay(for_account);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    let mut tx = s.pool.begin().await?;
    db::throttle::lock_address(&mut tx, &address).await?;
    let recent = db::throttle::recent(&mut tx, user_key, &address, since).await?;
    let frees_at = if recent.for_user >= MAX_FAILURES_PER_USER {
        recent.oldest_for_user
    } else if recent.for_address >= MAX_FAILURES_PER_ADDRESS {
        recent.oldest_for_address
    } else {
        None
    };
    if let Some(oldest) = frees_at {
        let refused = db::throttle::note_throttled(&mut tx, user_key, &address, now, since).await?;
        if audit_refusal(refused) {
            let actor = Actor {
                user_name: Some(user_key.to_string()),
                ..actor.clone()
            };
            audit::record(
                &mut tx,
                &s.audit_key,
                audit::Event {
                    actor: &actor,
                    event_name: event,
                    resource_arn: None,
                    request_parameters: serde_json::json!({"userName": user_key, "refusedAttempts": refused}),
                    outcome: "Throttled",
                    error_message: Some("too many failed attempts".into()),
                },
                now,
            )
            .await?;
        }
        tx.commit().await?;
        let retry_after = (oldest + WINDOW - now).max(Duration::seconds(1));
        return Ok(Err(Throttled { retry_after }));
    }
    db::throttle::record_failure(&mut tx, user_key, &address, now).await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Checks a signed-in user's own password (to change it, to create a token), throttled like
/// sign-in: `Ok(true)` when correct (the attempt then no longer counts), `Ok(false)` when wrong,
/// [`AppError::Throttled`] when refused without a check.
pub async fn check_own_password(
    s: &Services,
    user_name: &str,
    actor: &Actor,
    event: crate::access::EventName,
    password: &str,
    stored_hash: Option<&str>,
) -> Result<bool, AppError> {
    let key = user_key(user_name);
    if let Err(t) = admit(s, &key, actor, event).await? {
        return Err(AppError::Throttled {
            retry_after_secs: t.retry_after.whole_seconds(),
        });
    }
    if !s.hasher.verify(password, stored_hash).await? {
        return Ok(false);
    }
    let mut conn = s.pool.acquire().await?;
    succeeded(&mut conn, &key, actor).await?;
    Ok(true)
}

/// After a correct password: this account's attempts from this address no longer count.
pub async fn succeeded(
    conn: &mut sqlx::PgConnection,
    user_key: &str,
    actor: &Actor,
) -> Result<(), AppError> {
    db::throttle::clear(conn, user_key, &address(actor)).await?;
    Ok(())
}

fn address(actor: &Actor) -> String {
    actor.source_ip.clone().unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_unicode_variants_share_a_key() {
        assert_eq!(user_key("root"), "root");
        assert_eq!(user_key("ROOT"), "root");
        assert_eq!(user_key(" Root "), "root");
        // Kelvin sign and fullwidth letters name no account, but fold together.
        assert_eq!(user_key("\u{212A}EY"), user_key("key"));
        assert_eq!(user_key("ＲＯＯＴ"), user_key("ｒｏｏｔ"));
    }

    #[test]
    fn the_ceiling_grows_and_is_bounded() {
        assert!(ceiling_delay(0).is_zero());
        assert!(ceiling_delay(CEILING_FREE_FAILURES - 1).is_zero());
        let mut last = std::time::Duration::ZERO;
        for n in CEILING_FREE_FAILURES..CEILING_FREE_FAILURES + 40 {
            let d = ceiling_delay(n);
            assert!(d >= last && d <= CEILING_MAX_DELAY);
            last = d;
        }
        assert_eq!(last, CEILING_MAX_DELAY);
    }

    #[test]
    fn refusals_are_audited_logarithmically() {
        let audited: Vec<i64> = (1..=1000).filter(|&n| audit_refusal(n)).collect();
        assert_eq!(audited, vec![1, 10, 100, 1000]);
    }
}
