//! API tokens (IAM's access keys): create, list, revoke.

use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{policy_document, target_user};
use crate::access::Action;
use crate::db::{self, users::UserRow};
use crate::error::AppError;
use crate::identity::Secret;
use crate::ops::{Caller, Kind, Op, Services, throttle};

#[derive(Debug, Clone)]
pub struct AccessKey {
    pub token_id: Uuid,
    pub user_name: String,
    pub name: String,
    pub narrowed: bool,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

/// A new API token: the only time its secret is seen.
#[derive(Debug, Clone)]
pub struct NewAccessKey {
    pub key: AccessKey,
    pub token: Secret,
}

/// When a new token expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenExpiry {
    /// The server's default (90 days unless configured otherwise).
    Default,
    /// After this many days (1 to 3650).
    Days(i64),
    /// Never: only when asked for explicitly.
    Never,
}

/// Longest token name.
pub const MAX_TOKEN_NAME_CHARS: usize = 100;

fn access_key(row: db::access_keys::AccessKeyRow) -> AccessKey {
    AccessKey {
        token_id: row.id,
        user_name: row.user_name,
        name: row.name,
        narrowed: row.policy_document.is_some(),
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
    }
}

/// Creates an API token for `user` (default: the caller), named, expiring as asked, optionally
/// narrowed. `password`, when given, must be the caller's own (the console asks for it again,
/// throttled like sign-in, so an unattended session cannot mint a long-lived credential).
#[allow(clippy::too_many_arguments)]
pub async fn create_access_key(
    s: &Services,
    caller: &Caller,
    user: Option<&str>,
    name: &str,
    expiry: TokenExpiry,
    policy: Option<&str>,
    password: Option<&str>,
) -> Result<NewAccessKey, AppError> {
    let target = target_user(caller, user).to_string();
    let expires_param = match expiry {
        TokenExpiry::Default => json!(s.token_default_expiry_days),
        TokenExpiry::Days(d) => json!(d),
        TokenExpiry::Never => json!("never"),
    };
    Op::run_on_prepared(
        s,
        caller,
        Kind::Change,
        Action::CreateAccessKey,
        &target,
        json!({"userName": target, "name": name, "expiresInDays": expires_param, "policyDocument": policy}),
        async |_user: &UserRow| {
            let name = name.trim();
            if name.chars().count() > MAX_TOKEN_NAME_CHARS {
                return Err(AppError::validation("name", "must be at most 100 characters"));
            }
            if name.chars().any(char::is_control) {
                return Err(AppError::validation("name", "must not contain control characters"));
            }
            if let TokenExpiry::Days(days) = expiry
                && !(1..=3650).contains(&days)
            {
                return Err(AppError::validation("expiresInDays", "must be between 1 and 3650"));
            }
            if let Some(text) = policy {
                policy_document("policyDocument", text)?;
            }
            if let Some(password) = password {
                verify_own_password(s, caller, password).await?;
            }
            Ok(name.to_string())
        },
        async |op, u: UserRow, name| {
            let now = op.now();
            let days = match expiry {
                TokenExpiry::Default => s.token_default_expiry_days,
                TokenExpiry::Days(d) => Some(d),
                TokenExpiry::Never => None,
            };
            let expires_at = days.map(|d| now + Duration::days(d));
            let token = Secret::new_api_token();
            let id = Uuid::new_v4();
            db::access_keys::insert(
                op.conn(),
                &db::access_keys::NewKey {
                    id,
                    token_hash: &token.hash(),
                    user_id: u.id,
                    name: &name,
                    policy_document: policy,
                    created_at: now,
                    expires_at,
                },
            )
            .await?;
            op.add_audit_param("tokenId", json!(id.to_string()));
            // A console session sees the token on the page its creation redirects to.
            if let Some(session) = op.caller().session_id() {
                let sealed = s.root_key.seal(token.expose(), &reveal_context(id, session));
                db::access_keys::keep_for_reveal(op.conn(), id, session, &sealed, now).await?;
            }
            Ok(NewAccessKey {
                key: AccessKey {
                    token_id: id,
                    user_name: u.user_name,
                    name,
                    narrowed: policy.is_some(),
                    created_at: now,
                    expires_at,
                    last_used_at: None,
                },
                token,
            })
        },
    )
    .await
}

/// Checks the caller's own password again, throttled like sign-in.
async fn verify_own_password(
    s: &Services,
    caller: &Caller,
    password: &str,
) -> Result<(), AppError> {
    let mut conn = s.pool.acquire().await?;
    let me = db::users::find_by_id(&mut conn, caller.user_id).await?;
    drop(conn);
    let stored = me.as_ref().and_then(|u| u.password_hash.as_deref());
    let event = Action::CreateAccessKey.into();
    if throttle::check_own_password(
        s,
        caller.user_name(),
        &caller.actor,
        event,
        password,
        stored,
    )
    .await?
    {
        Ok(())
    } else {
        Err(AppError::validation(
            "password",
            "the password is not correct",
        ))
    }
}

pub async fn list_access_keys(
    s: &Services,
    caller: &Caller,
    user: Option<&str>,
) -> Result<Vec<AccessKey>, AppError> {
    let name = target_user(caller, user).to_string();
    Op::run_on(
        s,
        caller,
        Kind::Read,
        Action::ListAccessKeys,
        &name,
        json!({"userName": name}),
        async |op, u: UserRow| {
            let rows = db::access_keys::list_for_user(op.conn(), u.id).await?;
            Ok(rows.into_iter().map(access_key).collect())
        },
    )
    .await
}

pub async fn delete_access_key(
    s: &Services,
    caller: &Caller,
    user: Option<&str>,
    token_id: &str,
) -> Result<(), AppError> {
    let name = target_user(caller, user).to_string();
    Op::run_on(
        s,
        caller,
        Kind::Change,
        Action::DeleteAccessKey,
        &name,
        json!({"userName": name, "tokenId": token_id}),
        async |op, u: UserRow| {
            let id = Uuid::parse_str(token_id)
                .map_err(|_| AppError::validation("tokenId", "is not a token id"))?;
            if !db::access_keys::delete_for_user(op.conn(), u.id, id).await? {
                return Err(AppError::NoSuchEntity(format!(
                    "The API token {token_id} of user {} cannot be found.",
                    u.user_name
                )));
            }
            Ok(())
        },
    )
    .await
}

/// How long a new token waits for its creator's page to show it.
pub const REVEAL_WINDOW: Duration = Duration::minutes(10);

/// The secret of a token this session just created, once: `None` when it was shown already (a
/// reload), is older than [`REVEAL_WINDOW`], or belongs to another session.
pub async fn reveal_new_access_key(
    s: &Services,
    caller: &Caller,
    token_id: Uuid,
) -> Result<Option<String>, AppError> {
    let Some(session) = caller.session_id() else {
        return Ok(None);
    };
    let name = caller.user_name().to_string();
    Op::run_on(
        s,
        caller,
        Kind::Read,
        Action::ListAccessKeys,
        &name,
        json!({"userName": name, "tokenId": token_id.to_string()}),
        async |op, _u: UserRow| {
            let since = op.now() - REVEAL_WINDOW;
            let sealed = db::access_keys::take_reveal(op.conn(), token_id, session, since).await?;
            Ok(sealed.and_then(|v| s.root_key.open(&v, &reveal_context(token_id, session))))
        },
    )
    .await
}

/// What a token kept for its one reveal is sealed for: that token, shown to that session.
pub(crate) fn reveal_context(token_id: Uuid, session: Uuid) -> String {
    format!("token-reveal:{token_id}:{session}")
}
