//! Users, groups, policies, attachments, API tokens, sessions and the policy simulator: the
//! IAM-shaped operations of the console and the API.
//!
//! Every operation on a named user, group or policy loads it first and is authorized against its
//! stored name ([`Op::run_on`]), so a name sent in another case is decided exactly as the stored
//! one.

pub(crate) mod access_keys;
mod groups;
mod policies;
mod sessions;
mod simulate;
mod users;

pub use access_keys::{
    AccessKey, NewAccessKey, REVEAL_WINDOW, TokenExpiry, create_access_key, delete_access_key,
    list_access_keys, reveal_new_access_key,
};
pub use groups::{
    Group, GroupDetails, change_membership, create_group, delete_group, get_group, list_groups,
};
pub use policies::{
    Holder, Policy, PolicyScope, change_attachment, create_policy, delete_policy, get_policy,
    list_attached, list_policies, update_policy,
};
pub use sessions::{SessionInfo, delete_sessions, list_sessions};
pub use simulate::{Simulation, simulate};
pub use users::{
    ThrottleState, User, UserDetails, change_password, clear_sign_in_throttle, create_user,
    delete_user, get_user, list_users, reset_password, sign_in_throttle, update_user,
};

use crate::access::{PolicyDocument, Resource};
use crate::db::{self, groups::GroupRow, policies::PolicyRow, users::UserRow};
use crate::error::AppError;
use crate::identity::{GroupName, PolicyName, UserName};

use super::{Caller, Named};

/// A policy attached to a user or group.
#[derive(Debug, Clone)]
pub struct Attached {
    pub policy_name: String,
    pub managed: bool,
}

impl Named for UserRow {
    async fn find(conn: &mut sqlx::PgConnection, name: &str) -> Result<Option<Self>, sqlx::Error> {
        if UserName::parse(name).is_err() {
            return Ok(None);
        }
        db::users::find_by_name(conn, name).await
    }

    fn resource(&self) -> Resource {
        Resource::user(&self.user_name)
    }

    fn resource_named(name: &str) -> Resource {
        Resource::user(name)
    }

    fn not_found(name: &str) -> AppError {
        AppError::NoSuchEntity(format!("The user with name {name} cannot be found."))
    }
}

impl Named for GroupRow {
    async fn find(conn: &mut sqlx::PgConnection, name: &str) -> Result<Option<Self>, sqlx::Error> {
        if GroupName::parse(name).is_err() {
            return Ok(None);
        }
        db::groups::find_by_name(conn, name).await
    }

    fn resource(&self) -> Resource {
        Resource::group(&self.group_name)
    }

    fn resource_named(name: &str) -> Resource {
        Resource::group(name)
    }

    fn not_found(name: &str) -> AppError {
        AppError::NoSuchEntity(format!("The group with name {name} cannot be found."))
    }
}

impl Named for PolicyRow {
    async fn find(conn: &mut sqlx::PgConnection, name: &str) -> Result<Option<Self>, sqlx::Error> {
        if PolicyName::parse(name).is_err() {
            return Ok(None);
        }
        db::policies::find_by_name(conn, name).await
    }

    fn resource(&self) -> Resource {
        Resource::policy(&self.policy_name)
    }

    fn resource_named(name: &str) -> Resource {
        Resource::policy(name)
    }

    fn not_found(name: &str) -> AppError {
        AppError::NoSuchEntity(format!("The policy with name {name} cannot be found."))
    }
}

fn user_name(raw: &str) -> Result<UserName, AppError> {
    UserName::parse(raw).map_err(|m| AppError::validation("userName", m))
}

fn group_name(raw: &str) -> Result<GroupName, AppError> {
    GroupName::parse(raw).map_err(|m| AppError::validation("groupName", m))
}

fn policy_name(raw: &str) -> Result<PolicyName, AppError> {
    PolicyName::parse(raw).map_err(|m| AppError::validation("policyName", m))
}

fn policy_document(field: &str, raw: &str) -> Result<PolicyDocument, AppError> {
    PolicyDocument::parse(raw).map_err(|e| AppError::validation(field, e.to_string()))
}

/// Loads a second named entity inside an operation (the user being added to a group, the policy
/// being attached). The operation itself is authorized on its own resource.
async fn require<E: Named>(op: &mut super::Op<'_>, name: &str) -> Result<E, AppError> {
    E::find(op.conn(), name)
        .await?
        .ok_or_else(|| E::not_found(name))
}

fn attached(rows: Vec<db::policies::AttachedPolicy>) -> Vec<Attached> {
    rows.into_iter()
        .map(|p| Attached {
            policy_name: p.policy_name,
            managed: p.managed,
        })
        .collect()
}

/// The user a self-service operation is about: the named one, or the caller.
fn target_user<'a>(caller: &'a Caller, requested: Option<&'a str>) -> &'a str {
    requested.unwrap_or(caller.user_name())
}
