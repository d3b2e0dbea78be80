//! Authentication: first-run set-up, sign-in with throttling, sessions, sign-out, API tokens, and
//! the administrator's command-line operations.

use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::iam::TokenExpiry;
use super::{Caller, Credential, Kind, Op, Services, throttle};
use crate::access::{Action, EventName, Resource, SessionEvent, managed};
use crate::audit::{self, Actor};
use crate::db;
use crate::error::AppError;
use crate::identity::{NewPassword, Secret, UserName, looks_like_api_token, token_hash};

/// A new console session: the cookie's secret and the CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub token: Secret,
    pub csrf_token: String,
    pub user_name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Too many recent failures; try again after `retry_after`.
    #[error("too many failed sign-ins; try again later")]
    Throttled { retry_after: Duration },
    /// Wrong user name or password (never says which), or a disabled user.
    #[error("the user name or password is not correct")]
    Invalid,
    #[error(transparent)]
    Internal(#[from] AppError),
}

impl From<sqlx::Error> for SignInError {
    fn from(e: sqlx::Error) -> Self {
        SignInError::Internal(e.into())
    }
}

/// Whether first-run set-up is still open (no user exists).
pub async fn setup_open(s: &Services) -> Result<bool, AppError> {
    let mut conn = s.pool.acquire().await?;
    Ok(db::users::count(&mut conn).await? == 0)
}

/// First run: creates the administrator (AdministratorAccess) and signs them in. Returns
/// `Ok(None)` when a user already exists (set-up is closed for good). Runs as the operator: no
/// one is signed in yet, and the event names the new administrator.
pub async fn setup(
    s: &Services,
    user_name: &str,
    password: &str,
    actor: &Actor,
) -> Result<Option<NewSession>, AppError> {
    let actor = Actor {
        user_name: Some(user_name.chars().take(64).collect()),
        ..actor.clone()
    };
    let caller = Caller::operator(actor.clone());
    Op::run_prepared(
        s,
        &caller,
        Kind::Change,
        Action::CreateUser,
        Resource::user(user_name),
        json!({"userName": user_name, "setup": true, "policies": [managed::ADMINISTRATOR_ACCESS]}),
        async || {
            let name =
                UserName::parse(user_name).map_err(|m| AppError::validation("username", m))?;
            let password = NewPassword::parse(password, name.as_str())
                .map_err(|m| AppError::validation("password", m))?;
            Ok((name, s.hasher.hash(&password).await?))
        },
        async |op, (name, hash)| {
            let now = op.now();
            db::users::lock_for_setup(op.conn()).await?;
            if db::users::count(op.conn()).await? > 0 {
                return Err(AppError::Rejected {
                    code: SETUP_CLOSED,
                    message: "Set-up is already done.".into(),
                });
            }
            let user =
                db::users::insert(op.conn(), Uuid::new_v4(), name.as_str(), Some(&hash), now)
                    .await?
                    .ok_or_else(|| AppError::EntityAlreadyExists("the user exists".into()))?;
            let admin = db::policies::find_by_name(op.conn(), managed::ADMINISTRATOR_ACCESS)
                .await?
                .ok_or_else(|| {
                    AppError::Internal(anyhow::anyhow!("managed policies are missing"))
                })?;
            db::policies::attach_to_user(op.conn(), user.id, admin.id, now).await?;
            insert_session(s, op.conn(), user.id, &user.user_name, &actor, now).await
        },
    )
    .await
    .map(Some)
    .or_else(|e| match e {
        AppError::Rejected {
            code: SETUP_CLOSED, ..
        } => Ok(None),
        other => Err(other),
    })
}

/// The refusal code of a set-up attempted after the first user exists.
const SETUP_CLOSED: &str = "SetupClosed";

async fn insert_session(
    s: &Services,
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    user_name: &str,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<NewSession, AppError> {
    let token = Secret::new_session_token();
    let csrf = Secret::new_csrf_token();
    let id = Uuid::new_v4();
    db::sessions::insert(
        conn,
        id,
        &token.hash(),
        user_id,
        csrf.expose(),
        now,
        now + s.sessions.absolute,
        actor.source_ip.as_deref(),
        actor.user_agent.as_deref().map(|ua| truncate(ua, 512)),
    )
    .await?;
    db::users::record_sign_in(conn, user_id, now).await?;
    Ok(NewSession {
        id,
        token,
        csrf_token: csrf.expose().to_string(),
        user_name: user_name.to_string(),
    })
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Signs in with a user name and password. The attempt is counted before the password is checked
/// ([`super::throttle`]); an unknown user costs the same time as a known one; the error never
/// says which part was wrong.
pub async fn sign_in(
    s: &Services,
    user_name: &str,
    password: &str,
    actor: &Actor,
) -> Result<NewSession, SignInError> {
    let user_key = throttle::user_key(user_name);
    let event = EventName::Session(SessionEvent::ConsoleLogin);
    if let Err(t) = throttle::admit(s, &user_key, actor, event).await? {
        return Err(SignInError::Throttled {
            retry_after: t.retry_after,
        });
    }
    let user = match UserName::parse(user_name) {
        Ok(name) => {
            let mut conn = s.pool.acquire().await?;
            db::users::find_by_name(&mut conn, name.as_str()).await?
        }
        Err(_) => None,
    };
    let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let matches = s
        .hasher
        .verify(password, stored)
        .await
        .map_err(AppError::from)?;
    let failed_actor = Actor {
        user_name: Some(user_key.clone()),
        ..actor.clone()
    };
    let user = match user {
        Some(u) if matches && u.enabled => u,
        _ => {
            s.audit_alone(audit::Event {
                actor: &failed_actor,
                event_name: event,
                resource_arn: None,
                request_parameters: json!({"userName": user_name.chars().take(64).collect::<String>()}),
                outcome: "Failure",
                error_message: Some("Failed authentication".into()),
            })
            .await?;
            return Err(SignInError::Invalid);
        }
    };

    let now = s.clock.now();
    let mut tx = s.pool.begin().await?;
    let session = insert_session(s, &mut tx, user.id, &user.user_name, actor, now).await?;
    throttle::succeeded(&mut tx, &user_key, actor).await?;
    let actor = Actor {
        user_name: Some(user.user_name.clone()),
        ..actor.clone()
    };
    audit::record(
        &mut tx,
        &s.audit_key,
        audit::Event {
            actor: &actor,
            event_name: event,
            resource_arn: None,
            request_parameters: json!({"userName": user.user_name}),
            outcome: audit::SUCCESS,
            error_message: None,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(session)
}

/// A valid session found from its cookie.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    pub caller: Caller,
    pub csrf_token: String,
    /// When it expires unless used again (idle) or at all (absolute), whichever comes first.
    pub valid_until: OffsetDateTime,
}

/// Finds the session of a cookie token: unknown, expired (idle or absolute) or belonging to a
/// disabled user → `None` (an expired session is deleted).
pub async fn resolve_session(
    s: &Services,
    token: &str,
    actor: Actor,
) -> Result<Option<ActiveSession>, AppError> {
    if token.is_empty() || token.len() > 100 {
        return Ok(None);
    }
    let now = s.clock.now();
    let mut conn = s.pool.acquire().await?;
    let Some((row, policies)) =
        db::sessions::find_with_policies(&mut conn, &token_hash(token)).await?
    else {
        return Ok(None);
    };
    if row.expires_at <= now || row.last_seen_at + s.sessions.idle <= now {
        db::sessions::delete(&mut conn, row.id).await?;
        return Ok(None);
    }
    if !row.user_enabled {
        return Ok(None);
    }
    // One write a minute at most per session keeps the idle timer honest without a write per request.
    let mut last_seen = row.last_seen_at;
    if now - row.last_seen_at > Duration::minutes(1) {
        db::sessions::touch(&mut conn, row.id, now).await?;
        last_seen = now;
    }
    let actor = Actor {
        user_name: Some(row.user_name.clone()),
        ..actor
    };
    let caller = Caller::from_attached(
        row.user_id,
        &row.user_name,
        Credential::Session(row.id),
        None,
        actor,
        policies,
    );
    Ok(Some(ActiveSession {
        caller,
        csrf_token: row.csrf_token,
        valid_until: row.expires_at.min(last_seen + s.sessions.idle),
    }))
}

/// Ends the caller's session.
pub async fn sign_out(s: &Services, caller: &Caller) -> Result<(), AppError> {
    let Some(id) = caller.session_id() else {
        return Ok(());
    };
    let now = s.clock.now();
    let mut tx = s.pool.begin().await?;
    db::sessions::delete(&mut tx, id).await?;
    audit::record(
        &mut tx,
        &s.audit_key,
        audit::Event {
            actor: &caller.actor,
            event_name: SessionEvent::ConsoleLogout.into(),
            resource_arn: None,
            request_parameters: json!({}),
            outcome: audit::SUCCESS,
            error_message: None,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Why an API request's credentials were refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("The request has no credentials: send Authorization: Bearer <token>.")]
    Missing,
    #[error("The security token included in the request is invalid.")]
    Unrecognized,
    #[error(transparent)]
    Internal(#[from] AppError),
}

/// Authenticates an API token: known, not expired, its user enabled.
pub async fn resolve_token(s: &Services, token: &str, actor: Actor) -> Result<Caller, TokenError> {
    if !looks_like_api_token(token) {
        return Err(TokenError::Unrecognized);
    }
    let now = s.clock.now();
    let mut conn = s.pool.acquire().await.map_err(AppError::from)?;
    let row = db::access_keys::find_by_token_hash(&mut conn, &token_hash(token))
        .await
        .map_err(AppError::from)?
        .ok_or(TokenError::Unrecognized)?;
    if !row.user_enabled || row.expires_at.is_some_and(|t| t <= now) {
        return Err(TokenError::Unrecognized);
    }
    db::access_keys::touch(&mut conn, row.id, now)
        .await
        .map_err(AppError::from)?;
    let actor = Actor {
        user_name: Some(row.user_name.clone()),
        token_id: Some(row.id),
        ..actor
    };
    Ok(Caller::load(
        &mut conn,
        row.user_id,
        &row.user_name,
        Credential::Token(row.id),
        row.policy_document.as_deref(),
        actor,
    )
    .await?)
}

// ---- Administrator commands (`sluice admin …`), run with direct database access ------------

fn cli_actor() -> Actor {
    Actor {
        user_name: Some("(sluice admin)".into()),
        source_ip: Some("local".into()),
        ..Actor::default()
    }
}

/// `sluice admin create-user`: a user with a password and the named policies (managed or customer).
pub async fn admin_create_user(
    s: &Services,
    user_name: &str,
    password: &str,
    policies: &[String],
) -> Result<(), AppError> {
    let caller = Caller::operator(cli_actor());
    Op::run_prepared(
        s,
        &caller,
        Kind::Change,
        Action::CreateUser,
        Resource::user(user_name),
        json!({"userName": user_name, "policies": policies}),
        async || {
            let name =
                UserName::parse(user_name).map_err(|m| AppError::validation("--username", m))?;
            let password = NewPassword::parse(password, name.as_str())
                .map_err(|m| AppError::validation("password", m))?;
            Ok((name, s.hasher.hash(&password).await?))
        },
        async |op, (name, hash)| {
            let now = op.now();
            let user =
                db::users::insert(op.conn(), Uuid::new_v4(), name.as_str(), Some(&hash), now)
                    .await?
                    .ok_or_else(|| {
                        AppError::EntityAlreadyExists(format!(
                            "User with name {name} already exists."
                        ))
                    })?;
            for policy in policies {
                let p = db::policies::find_by_name(op.conn(), policy)
                    .await?
                    .ok_or_else(|| {
                        let known: Vec<&str> = managed::all().iter().map(|m| m.name).collect();
                        AppError::validation(
                            "--policy",
                            format!(
                                "there is no policy called {policy} (managed policies: {})",
                                known.join(", ")
                            ),
                        )
                    })?;
                db::policies::attach_to_user(op.conn(), user.id, p.id, now).await?;
            }
            Ok(())
        },
    )
    .await
}

/// `sluice admin reset-password`: sets the password, ends the user's sessions and clears their
/// sign-in throttle.
pub async fn admin_reset_password(
    s: &Services,
    user_name: &str,
    password: &str,
) -> Result<(), AppError> {
    let caller = Caller::operator(cli_actor());
    super::iam::reset_password(s, &caller, user_name, password, false)
        .await
        .map(|_| ())
}

/// `sluice admin create-access-key`: a new API token for the user (printed once by the caller).
pub async fn admin_create_access_key(
    s: &Services,
    user_name: &str,
    expires_in_days: Option<i64>,
) -> Result<Secret, AppError> {
    let caller = Caller::operator(cli_actor());
    let expiry = match expires_in_days {
        Some(d) => TokenExpiry::Days(d),
        None => TokenExpiry::Never,
    };
    super::iam::create_access_key(
        s,
        &caller,
        Some(user_name),
        "sluice admin",
        expiry,
        None,
        None,
    )
    .await
    .map(|k| k.token)
    .map_err(|e| match e {
        AppError::Validation { field, message } if field == "expiresInDays" => {
            AppError::Validation {
                field: "--expires-in-days".into(),
                message,
            }
        }
        other => other,
    })
}
