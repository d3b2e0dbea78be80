//! Users: create, read, list, enable/disable, delete, passwords, and sign-in throttling.

use std::collections::HashMap;

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Attached, attached, user_name};
use crate::access::{Action, Resource};
use crate::db::{self, users::UserRow};
use crate::error::AppError;
use crate::identity::NewPassword;
use crate::ops::{Caller, Kind, Op, Page, Paged, Services, throttle};

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub user_name: String,
    pub enabled: bool,
    pub has_password: bool,
    pub created_at: OffsetDateTime,
    pub last_sign_in_at: Option<OffsetDateTime>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            has_password: row.password_hash.is_some(),
            user_name: row.user_name,
            enabled: row.enabled,
            created_at: row.created_at,
            last_sign_in_at: row.last_sign_in_at,
        }
    }
}

/// A user with what the caller may also read of them: groups (with `iam:GetUser` on the user)
/// and attached policies (with `iam:ListAttachedUserPolicies`); `None` when not allowed.
#[derive(Debug, Clone)]
pub struct UserDetails {
    pub user: User,
    pub groups: Option<Vec<String>>,
    pub policies: Option<Vec<Attached>>,
}

pub async fn create_user(
    s: &Services,
    caller: &Caller,
    name: &str,
    password: Option<&str>,
) -> Result<User, AppError> {
    Op::run_prepared(
        s,
        caller,
        Kind::Change,
        Action::CreateUser,
        Resource::user(name),
        json!({"userName": name, "password": password.map(|_| "****")}),
        // Hashing holds no connection.
        async || {
            let name = user_name(name)?;
            let hash = match password {
                Some(p) => {
                    let p = NewPassword::parse(p, name.as_str())
                        .map_err(|m| AppError::validation("password", m))?;
                    Some(s.hasher.hash(&p).await?)
                }
                None => None,
            };
            Ok((name, hash))
        },
        async |op, (name, hash)| {
            let now = op.now();
            db::users::insert(
                op.conn(),
                Uuid::new_v4(),
                name.as_str(),
                hash.as_deref(),
                now,
            )
            .await?
            .map(User::from)
            .ok_or_else(|| {
                AppError::EntityAlreadyExists(format!("User with name {name} already exists."))
            })
        },
    )
    .await
}

/// Details of users, each with only what `caller` may read of it (one query per kind of detail
/// for the whole page).
async fn details_of(op: &mut Op<'_>, users: Vec<UserRow>) -> Result<Vec<UserDetails>, AppError> {
    let caller = op.caller();
    let may_groups: Vec<Uuid> = users
        .iter()
        .filter(|u| caller.can(Action::GetUser, &Resource::user(&u.user_name)))
        .map(|u| u.id)
        .collect();
    let may_policies: Vec<Uuid> = users
        .iter()
        .filter(|u| {
            caller.can(
                Action::ListAttachedUserPolicies,
                &Resource::user(&u.user_name),
            )
        })
        .map(|u| u.id)
        .collect();
    let mut groups: HashMap<Uuid, Vec<String>> =
        may_groups.iter().map(|&id| (id, Vec::new())).collect();
    if !may_groups.is_empty() {
        for (user_id, group) in db::groups::names_for_users(op.conn(), &may_groups).await? {
            groups.entry(user_id).or_default().push(group);
        }
    }
    let mut policies: HashMap<Uuid, Vec<Attached>> =
        may_policies.iter().map(|&id| (id, Vec::new())).collect();
    if !may_policies.is_empty() {
        for p in db::policies::attached_to_users(op.conn(), &may_policies).await? {
            policies.entry(p.holder_id).or_default().push(Attached {
                policy_name: p.policy_name,
                managed: p.managed,
            });
        }
    }
    Ok(users
        .into_iter()
        .map(|u| UserDetails {
            groups: groups.remove(&u.id),
            policies: policies.remove(&u.id),
            user: u.into(),
        })
        .collect())
}

pub async fn get_user(
    s: &Services,
    caller: &Caller,
    name: Option<&str>,
) -> Result<UserDetails, AppError> {
    let name = super::target_user(caller, name);
    Op::run_on(
        s,
        caller,
        Kind::Read,
        Action::GetUser,
        name,
        json!({"userName": name}),
        async |op, user: UserRow| {
            let groups = db::groups::names_for_user(op.conn(), user.id).await?;
            let policies = if op.caller().can(
                Action::ListAttachedUserPolicies,
                &Resource::user(&user.user_name),
            ) {
                Some(attached(
                    db::policies::attached_to_user(op.conn(), user.id).await?,
                ))
            } else {
                None
            };
            Ok(UserDetails {
                user: user.into(),
                groups: Some(groups),
                policies,
            })
        },
    )
    .await
}

pub async fn list_users(
    s: &Services,
    caller: &Caller,
    page: &Page,
) -> Result<Paged<UserDetails>, AppError> {
    Op::run(
        s,
        caller,
        Kind::Read,
        Action::ListUsers,
        Resource::All,
        json!({}),
        async |op| {
            let limit = page.limit()?;
            let rows = db::users::list(op.conn(), page.next.as_deref(), limit + 1).await?;
            let paged = Paged::from_rows(rows, limit, |u| u.user_name.clone());
            Ok(Paged {
                items: details_of(op, paged.items).await?,
                next: paged.next,
            })
        },
    )
    .await
}

/// Enables or disables a user. Disabling ends the user's sessions at once; their tokens are
/// refused while disabled.
pub async fn update_user(
    s: &Services,
    caller: &Caller,
    name: &str,
    enabled: Option<bool>,
) -> Result<User, AppError> {
    Op::run_on(
        s,
        caller,
        Kind::Change,
        Action::UpdateUser,
        name,
        json!({"userName": name, "enabled": enabled}),
        async |op, user: UserRow| {
            if let Some(enabled) = enabled {
                if !enabled && user.id == op.caller().user_id {
                    return Err(AppError::validation(
                        "enabled",
                        "you cannot disable yourself",
                    ));
                }
                db::users::set_enabled(op.conn(), user.id, enabled).await?;
                if !enabled {
                    db::sessions::delete_all_for_user(op.conn(), user.id, None).await?;
                }
            }
            Ok(User {
                enabled: enabled.unwrap_or(user.enabled),
                ..User::from(user)
            })
        },
    )
    .await
}

pub async fn delete_user(s: &Services, caller: &Caller, name: &str) -> Result<(), AppError> {
    Op::run_on(
        s,
        caller,
        Kind::Change,
        Action::DeleteUser,
        name,
        json!({"userName": name}),
        async |op, user: UserRow| {
            if user.id == op.caller().user_id {
                return Err(AppError::validation(
                    "userName",
                    "you cannot delete yourself",
                ));
            }
            db::users::delete(op.conn(), user.id).await?;
            Ok(())
        },
    )
    .await
}

/// What a password reset did besides setting the password.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResetOutcome {
    pub tokens_revoked: u64,
}

/// An administrator sets a user's password: the user's sessions end, their sign-in throttle is
/// cleared, and, when asked (`revoke_tokens`), their API tokens are revoked.
pub async fn reset_password(
    s: &Services,
    caller: &Caller,
    name: &str,
    password: &str,
    revoke_tokens: bool,
) -> Result<ResetOutcome, AppError> {
    Op::run_on_prepared(
        s,
        caller,
        Kind::Change,
        Action::ResetPassword,
        name,
        json!({"userName": name, "password": "****", "revokeTokens": revoke_tokens}),
        async |user: &UserRow| {
            let password = NewPassword::parse(password, &user.user_name)
                .map_err(|m| AppError::validation("password", m))?;
            s.hasher.hash(&password).await.map_err(AppError::from)
        },
        async |op, user: UserRow, hash| {
            db::users::set_password(op.conn(), user.id, &hash).await?;
            let keep = (user.id == op.caller().user_id)
                .then(|| op.caller().session_id())
                .flatten();
            db::sessions::delete_all_for_user(op.conn(), user.id, keep).await?;
            db::throttle::clear_user(op.conn(), &throttle::user_key(&user.user_name)).await?;
            let tokens_revoked = if revoke_tokens {
                db::access_keys::delete_all_for_user(op.conn(), user.id).await?
            } else {
                0
            };
            Ok(ResetOutcome { tokens_revoked })
        },
    )
    .await
}

/// A user changes their own password, proving the current one (throttled like sign-in); their
/// other sessions end.
pub async fn change_password(
    s: &Services,
    caller: &Caller,
    current: &str,
    new: &str,
) -> Result<(), AppError> {
    let name = caller.user_name().to_string();
    Op::run_on_prepared(
        s,
        caller,
        Kind::Change,
        Action::ChangePassword,
        &name,
        json!({"userName": name, "currentPassword": "****", "newPassword": "****"}),
        async |user: &UserRow| {
            let correct = throttle::check_own_password(
                s,
                &user.user_name,
                &caller.actor,
                Action::ChangePassword.into(),
                current,
                user.password_hash.as_deref(),
            )
            .await?;
            if !correct {
                return Err(AppError::validation(
                    "currentPassword",
                    "the current password is not correct",
                ));
            }
            let new = NewPassword::parse(new, &user.user_name)
                .map_err(|m| AppError::validation("newPassword", m))?;
            if current == new.expose() {
                return Err(AppError::validation(
                    "newPassword",
                    "the new password must differ from the current one",
                ));
            }
            s.hasher.hash(&new).await.map_err(AppError::from)
        },
        async |op, user: UserRow, hash| {
            db::users::set_password(op.conn(), user.id, &hash).await?;
            let keep = op.caller().session_id();
            db::sessions::delete_all_for_user(op.conn(), user.id, keep).await?;
            Ok(())
        },
    )
    .await
}

/// A user's sign-in throttling, as an administrator sees it.
#[derive(Debug, Clone)]
pub struct ThrottleState {
    /// Failed sign-ins in the last 15 minutes, from any address.
    pub failures: i64,
    pub last_failure: Option<OffsetDateTime>,
    /// Addresses from which sign-in is refused for this user now.
    pub throttled_addresses: Vec<String>,
}

/// The throttle state of a user (read with `iam:GetUser`).
pub async fn sign_in_throttle(
    s: &Services,
    caller: &Caller,
    name: &str,
) -> Result<ThrottleState, AppError> {
    Op::run_on(
        s,
        caller,
        Kind::Read,
        Action::GetUser,
        name,
        json!({"userName": name}),
        async |op, user: UserRow| {
            let since = op.now() - throttle::WINDOW;
            let state = db::throttle::state_for_user(
                op.conn(),
                &throttle::user_key(&user.user_name),
                since,
                throttle::MAX_FAILURES_PER_USER,
            )
            .await?;
            Ok(ThrottleState {
                failures: state.failures,
                last_failure: state.last_failure,
                throttled_addresses: state.throttled_addresses,
            })
        },
    )
    .await
}

/// Clears a user's sign-in throttle (audited), for a user locked out by someone else's guesses
/// behind a shared address. Returns how many failures were forgotten.
pub async fn clear_sign_in_throttle(
    s: &Services,
    caller: &Caller,
    name: &str,
) -> Result<u64, AppError> {
    Op::run_on(
        s,
        caller,
        Kind::Change,
        Action::ClearSignInThrottle,
        name,
        json!({"userName": name}),
        async |op, user: UserRow| {
            Ok(db::throttle::clear_user(op.conn(), &throttle::user_key(&user.user_name)).await?)
        },
    )
    .await
}
