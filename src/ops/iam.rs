//! Users, groups, policies, attachments, API tokens, sessions, the policy simulator and audit
//! lookup: the IAM-shaped operations of the console and the API.

use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{Caller, Kind, Op, Page, Paged, Services};
use crate::access::{
    self, Action, Decision, DenyReason, MatchedStatement, PolicyDocument, Resource,
};
use crate::db::{self, audit::AuditFilter, audit::AuditRow, groups::GroupRow, users::UserRow};
use crate::error::AppError;
use crate::identity::{GroupName, NewPassword, PolicyName, Secret, UserName};

// ---- Types returned -----------------------------------------------------------------------

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

/// A policy attached to a user or group.
#[derive(Debug, Clone)]
pub struct Attached {
    pub policy_name: String,
    pub managed: bool,
}

#[derive(Debug, Clone)]
pub struct UserDetails {
    pub user: User,
    pub groups: Vec<String>,
    pub policies: Vec<Attached>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: Uuid,
    pub group_name: String,
    pub created_at: OffsetDateTime,
}

impl From<GroupRow> for Group {
    fn from(row: GroupRow) -> Self {
        Self {
            id: row.id,
            group_name: row.group_name,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GroupDetails {
    pub group: Group,
    pub members: Vec<String>,
    pub policies: Vec<Attached>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub id: Uuid,
    pub policy_name: String,
    pub managed: bool,
    pub description: String,
    pub document: String,
    pub version: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub attachment_count: i64,
}

impl From<db::policies::PolicyRow> for Policy {
    fn from(row: db::policies::PolicyRow) -> Self {
        Self {
            id: row.id,
            policy_name: row.policy_name,
            managed: row.managed,
            description: row.description,
            document: row.document,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
            attachment_count: row.attachment_count,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AccessKey {
    pub token_id: Uuid,
    pub user_name: String,
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

#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub current: bool,
}

/// One (action, resource) pair of a simulation.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub action: String,
    pub resource: String,
    /// `allowed`, `explicitDeny` or `implicitDeny`.
    pub decision: &'static str,
    pub matched: Vec<MatchedStatement>,
}

// ---- Helpers --------------------------------------------------------------------------------

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

async fn require_user(op: &mut Op<'_>, name: &str) -> Result<UserRow, AppError> {
    db::users::find_by_name(op.conn(), name)
        .await?
        .ok_or_else(|| {
            AppError::NoSuchEntity(format!("The user with name {name} cannot be found."))
        })
}

async fn require_group(op: &mut Op<'_>, name: &str) -> Result<GroupRow, AppError> {
    db::groups::find_by_name(op.conn(), name)
        .await?
        .ok_or_else(|| {
            AppError::NoSuchEntity(format!("The group with name {name} cannot be found."))
        })
}

async fn require_policy(op: &mut Op<'_>, name: &str) -> Result<db::policies::PolicyRow, AppError> {
    db::policies::find_by_name(op.conn(), name)
        .await?
        .ok_or_else(|| {
            AppError::NoSuchEntity(format!("The policy with name {name} cannot be found."))
        })
}

async fn user_details(op: &mut Op<'_>, user: UserRow) -> Result<UserDetails, AppError> {
    let groups = db::groups::names_for_user(op.conn(), user.id).await?;
    let policies = attached(db::policies::attached_to_user(op.conn(), user.id).await?);
    Ok(UserDetails {
        user: user.into(),
        groups,
        policies,
    })
}

async fn group_details(op: &mut Op<'_>, group: GroupRow) -> Result<GroupDetails, AppError> {
    let members = db::groups::member_names(op.conn(), group.id).await?;
    let policies = attached(db::policies::attached_to_group(op.conn(), group.id).await?);
    Ok(GroupDetails {
        group: group.into(),
        members,
        policies,
    })
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

// ---- Users ----------------------------------------------------------------------------------

pub async fn create_user(
    s: &Services,
    caller: &Caller,
    name: &str,
    password: Option<&str>,
) -> Result<User, AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Change,
        Action::CreateUser,
        Resource::user(name),
        json!({"userName": name, "password": password.map(|_| "****")}),
    )
    .await?;
    let result = async {
        let name = user_name(name)?;
        let hash = match password {
            Some(p) => {
                let p = NewPassword::parse(p, name.as_str())
                    .map_err(|m| AppError::validation("password", m))?;
                Some(s.hasher.hash(&p).await?)
            }
            None => None,
        };
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
    }
    .await;
    op.finish(result).await
}

pub async fn get_user(
    s: &Services,
    caller: &Caller,
    name: Option<&str>,
) -> Result<UserDetails, AppError> {
    let name = target_user(caller, name);
    let mut op = Op::begin(
        s,
        caller,
        Kind::Read,
        Action::GetUser,
        Resource::user(name),
        json!({"userName": name}),
    )
    .await?;
    let result = async {
        let user = require_user(&mut op, name).await?;
        user_details(&mut op, user).await
    }
    .await;
    op.finish(result).await
}

pub async fn list_users(
    s: &Services,
    caller: &Caller,
    page: &Page,
) -> Result<Paged<UserDetails>, AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Read,
        Action::ListUsers,
        Resource::All,
        json!({}),
    )
    .await?;
    let result = async {
        let limit = page.limit()?;
        let rows = db::users::list(op.conn(), page.next.as_deref(), limit + 1).await?;
        let paged = Paged::from_rows(rows, limit, |u| u.user_name.clone());
        let mut items = Vec::with_capacity(paged.items.len());
        for user in paged.items {
            items.push(user_details(&mut op, user).await?);
        }
        Ok(Paged {
            items,
            next: paged.next,
        })
    }
    .await;
    op.finish(result).await
}

/// Enables or disables a user. Disabling ends the user's sessions at once; their tokens are
/// refused while disabled.
pub async fn update_user(
    s: &Services,
    caller: &Caller,
    name: &str,
    enabled: Option<bool>,
) -> Result<User, AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Change,
        Action::UpdateUser,
        Resource::user(name),
        json!({"userName": name, "enabled": enabled}),
    )
    .await?;
    let result = async {
        let user = require_user(&mut op, name).await?;
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
    }
    .await;
    op.finish(result).await
}

pub async fn delete_user(s: &Services, caller: &Caller, name: &str) -> Result<(), AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Change,
        Action::DeleteUser,
        Resource::user(name),
        json!({"userName": name}),
    )
    .await?;
    let result = async {
        let user = require_user(&mut op, name).await?;
        if user.id == op.caller().user_id {
            return Err(AppError::validation(
                "userName",
                "you cannot delete yourself",
            ));
        }
        db::users::delete(op.conn(), user.id).await?;
        Ok(())
    }
    .await;
    op.finish(result).await
}

/// An administrator sets a user's password; the user's sessions end.
pub async fn reset_password(
    s: &Services,
    caller: &Caller,
    name: &str,
    password: &str,
) -> Result<(), AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Change,
        Action::ResetPassword,
        Resource::user(name),
        json!({"userName": name, "password": "****"}),
    )
    .await?;
    let result = async {
        let user = require_user(&mut op, name).await?;
        let password = NewPassword::parse(password, &user.user_name)
            .map_err(|m| AppError::validation("password", m))?;
        let hash = s.hasher.hash(&password).await?;
        db::users::set_password(op.conn(), user.id, &hash).await?;
        let keep = (user.id == op.caller().user_id)
            .then(|| op.caller().session_id())
            .flatten();
        db::sessions::delete_all_for_user(op.conn(), user.id, keep).await?;
        Ok(())
    }
    .await;
    op.finish(result).await
}

/// A user changes their own password, proving the current one; their other sessions end.
pub async fn change_password(
    s: &Services,
    caller: &Caller,
    current: &str,
    new: &str,
) -> Result<(), AppError> {
    let name = caller.user_name().to_string();
    let mut op = Op::begin(
        s,
        caller,
        Kind::Change,
        Action::ChangePassword,
        Resource::user(&name),
        json!({"userName": name, "currentPassword": "****", "newPassword": "****"}),
    )
    .await?;
    let result = async {
        let user = require_user(&mut op, &name).await?;
        if !s
            .hasher
            .verify(current, user.password_hash.as_deref())
            .await?
        {
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
        let hash = s.hasher.hash(&new).await?;
        db::users::set_password(op.conn(), user.id, &hash).await?;
        let keep = op.caller().session_id();
        db::sessions::delete_all_for_user(op.conn(), user.id, keep).await?;
        Ok(())
    }
    .await;
    op.finish(result).await
}

// ---- Groups ---------------------------------------------------------------------------------

pub async fn create_group(s: &Services, caller: &Caller, name: &str) -> Result<Group, AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Change,
        Action::CreateGroup,
        Resource::group(name),
        json!({"groupName": name}),
    )
    .await?;
    let result = async {
        let name = group_name(name)?;
        let now = op.now();
        db::groups::insert(op.conn(), Uuid::new_v4(), name.as_str(), now)
            .await?
            .map(Group::from)
            .ok_or_else(|| {
                AppError::EntityAlreadyExists(format!("Group with name {name} already exists."))
            })
    }
    .await;
    op.finish(result).await
}

pub async fn get_group(
    s: &Services,
    caller: &Caller,
    name: &str,
) -> Result<GroupDetails, AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Read,
        Action::GetGroup,
        Resource::group(name),
        json!({"groupName": name}),
    )
    .await?;
    let result = async {
        let group = require_group(&mut op, name).await?;
        group_details(&mut op, group).await
    }
    .await;
    op.finish(result).await
}

pub async fn list_groups(
    s: &Services,
    caller: &Caller,
    page: &Page,
) -> Result<Paged<GroupDetails>, AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Read,
        Action::ListGroups,
        Resource::All,
        json!({}),
    )
    .await?;
    let result = async {
        let limit = page.limit()?;
        let rows = db::groups::list(op.conn(), page.next.as_deref(), limit + 1).await?;
        let paged = Paged::from_rows(rows, limit, |g| g.group_name.clone());
        let mut items = Vec::with_capacity(paged.items.len());
        for group in paged.items {
            items.push(group_details(&mut op, group).await?);
        }
        Ok(Paged {
            items,
            next: paged.next,
        })
    }
    .await;
    op.finish(result).await
}

pub async fn delete_group(s: &Services, caller: &Caller, name: &str) -> Result<(), AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Change,
        Action::DeleteGroup,
        Resource::group(name),
        json!({"groupName": name}),
    )
    .await?;
    let result = async {
        let group = require_group(&mut op, name).await?;
        db::groups::delete(op.conn(), group.id).await?;
        Ok(())
    }
    .await;
    op.finish(result).await
}

/// Adds (`add`) or removes a member.
pub async fn change_membership(
    s: &Services,
    caller: &Caller,
    group: &str,
    user: &str,
    add: bool,
) -> Result<(), AppError> {
    let action = if add {
        Action::AddUserToGroup
    } else {
        Action::RemoveUserFromGroup
    };
    let mut op = Op::begin(
        s,
        caller,
        Kind::Change,
        action,
        Resource::group(group),
        json!({"groupName": group, "userName": user}),
    )
    .await?;
    let result = async {
        let g = require_group(&mut op, group).await?;
        let u = require_user(&mut op, user).await?;
        let now = op.now();
        if add {
            db::groups::add_member(op.conn(), g.id, u.id, now).await?;
        } else if !db::groups::remove_member(op.conn(), g.id, u.id).await? {
            return Err(AppError::NoSuchEntity(format!(
                "The user {user} is not a member of the group {group}."
            )));
        }
        Ok(())
    }
    .await;
    op.finish(result).await
}

// ---- Policies -------------------------------------------------------------------------------

/// Which policies to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyScope {
    All,
    Managed,
    Customer,
}

pub async fn create_policy(
    s: &Services,
    caller: &Caller,
    name: &str,
    document: &str,
    description: &str,
) -> Result<Policy, AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Change,
        Action::CreatePolicy,
        Resource::policy(name),
        json!({"policyName": name, "policyDocument": document, "description": description}),
    )
    .await?;
    let result = async {
        let name = policy_name(name)?;
        policy_document("policyDocument", document)?;
        if description.chars().count() > 1000 {
            return Err(AppError::validation(
                "description",
                "must be at most 1000 characters",
            ));
        }
        let now = op.now();
        db::policies::insert(
            op.conn(),
            Uuid::new_v4(),
            name.as_str(),
            description,
            document,
            now,
        )
        .await?
        .map(Policy::from)
        .ok_or_else(|| {
            AppError::EntityAlreadyExists(format!("A policy called {name} already exists."))
        })
    }
    .await;
    op.finish(result).await
}

pub async fn get_policy(s: &Services, caller: &Caller, name: &str) -> Result<Policy, AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Read,
        Action::GetPolicy,
        Resource::policy(name),
        json!({"policyName": name}),
    )
    .await?;
    let result = async { Ok(require_policy(&mut op, name).await?.into()) }.await;
    op.finish(result).await
}

pub async fn list_policies(
    s: &Services,
    caller: &Caller,
    scope: PolicyScope,
    page: &Page,
) -> Result<Paged<Policy>, AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Read,
        Action::ListPolicies,
        Resource::All,
        json!({}),
    )
    .await?;
    let result = async {
        let limit = page.limit()?;
        let managed = match scope {
            PolicyScope::All => None,
            PolicyScope::Managed => Some(true),
            PolicyScope::Customer => Some(false),
        };
        let rows = db::policies::list(op.conn(), managed, page.next.as_deref(), limit + 1).await?;
        let paged = Paged::from_rows(rows, limit, |p| p.policy_name.clone());
        Ok(Paged {
            items: paged.items.into_iter().map(Policy::from).collect(),
            next: paged.next,
        })
    }
    .await;
    op.finish(result).await
}

/// Replaces a customer policy's document (and description, when given). `expected_version`,
/// when given, must match (someone else may have saved in between).
pub async fn update_policy(
    s: &Services,
    caller: &Caller,
    name: &str,
    document: &str,
    description: Option<&str>,
    expected_version: Option<i32>,
) -> Result<Policy, AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Change,
        Action::UpdatePolicy,
        Resource::policy(name),
        json!({"policyName": name, "policyDocument": document, "description": description}),
    )
    .await?;
    let result = async {
        let policy = require_policy(&mut op, name).await?;
        if policy.managed {
            return Err(AppError::validation("policyName", format!("{name} is a managed policy and cannot be changed")));
        }
        if let Some(v) = expected_version
            && v != policy.version
        {
            return Err(AppError::validation(
                "version",
                format!("someone else saved version {} of this policy; reload it and apply your change again", policy.version),
            ));
        }
        policy_document("policyDocument", document)?;
        let description = description.unwrap_or(&policy.description);
        if description.chars().count() > 1000 {
            return Err(AppError::validation("description", "must be at most 1000 characters"));
        }
        db::policies::update(op.conn(), policy.id, description, document).await?;
        Ok(require_policy(&mut op, name).await?.into())
    }
    .await;
    op.finish(result).await
}

pub async fn delete_policy(s: &Services, caller: &Caller, name: &str) -> Result<(), AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Change,
        Action::DeletePolicy,
        Resource::policy(name),
        json!({"policyName": name}),
    )
    .await?;
    let result = async {
        let policy = require_policy(&mut op, name).await?;
        if policy.managed {
            return Err(AppError::validation(
                "policyName",
                format!("{name} is a managed policy and cannot be deleted"),
            ));
        }
        if policy.attachment_count > 0 {
            return Err(AppError::DeleteConflict(format!(
                "Cannot delete {name}: it is attached to {} user(s) or group(s). Detach it first.",
                policy.attachment_count
            )));
        }
        match db::policies::delete(op.conn(), policy.id).await {
            Err(e) if db::is_foreign_key_violation(&e) => Err(AppError::DeleteConflict(format!(
                "Cannot delete {name}: it was attached meanwhile. Detach it first."
            ))),
            other => Ok(other?),
        }
    }
    .await;
    op.finish(result).await
}

/// Whom a policy is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    User,
    Group,
}

/// Attaches (`attach`) or detaches a policy to or from a user or group.
pub async fn change_attachment(
    s: &Services,
    caller: &Caller,
    holder: Holder,
    holder_name: &str,
    policy: &str,
    attach: bool,
) -> Result<(), AppError> {
    let (action, resource, params) = match (holder, attach) {
        (Holder::User, true) => (
            Action::AttachUserPolicy,
            Resource::user(holder_name),
            json!({"userName": holder_name, "policyName": policy}),
        ),
        (Holder::User, false) => (
            Action::DetachUserPolicy,
            Resource::user(holder_name),
            json!({"userName": holder_name, "policyName": policy}),
        ),
        (Holder::Group, true) => (
            Action::AttachGroupPolicy,
            Resource::group(holder_name),
            json!({"groupName": holder_name, "policyName": policy}),
        ),
        (Holder::Group, false) => (
            Action::DetachGroupPolicy,
            Resource::group(holder_name),
            json!({"groupName": holder_name, "policyName": policy}),
        ),
    };
    let mut op = Op::begin(s, caller, Kind::Change, action, resource, params).await?;
    let result = async {
        let p = require_policy(&mut op, policy).await?;
        let now = op.now();
        let changed = match holder {
            Holder::User => {
                let u = require_user(&mut op, holder_name).await?;
                if attach {
                    db::policies::attach_to_user(op.conn(), u.id, p.id, now).await?
                } else {
                    db::policies::detach_from_user(op.conn(), u.id, p.id).await?
                }
            }
            Holder::Group => {
                let g = require_group(&mut op, holder_name).await?;
                if attach {
                    db::policies::attach_to_group(op.conn(), g.id, p.id, now).await?
                } else {
                    db::policies::detach_from_group(op.conn(), g.id, p.id).await?
                }
            }
        };
        if !attach && !changed {
            return Err(AppError::NoSuchEntity(format!(
                "The policy {policy} is not attached to {holder_name}."
            )));
        }
        Ok(())
    }
    .await;
    op.finish(result).await
}

pub async fn list_attached(
    s: &Services,
    caller: &Caller,
    holder: Holder,
    holder_name: &str,
) -> Result<Vec<Attached>, AppError> {
    let (action, resource) = match holder {
        Holder::User => (
            Action::ListAttachedUserPolicies,
            Resource::user(holder_name),
        ),
        Holder::Group => (
            Action::ListAttachedGroupPolicies,
            Resource::group(holder_name),
        ),
    };
    let mut op = Op::begin(
        s,
        caller,
        Kind::Read,
        action,
        resource,
        json!({"name": holder_name}),
    )
    .await?;
    let result = async {
        let rows = match holder {
            Holder::User => {
                let u = require_user(&mut op, holder_name).await?;
                db::policies::attached_to_user(op.conn(), u.id).await?
            }
            Holder::Group => {
                let g = require_group(&mut op, holder_name).await?;
                db::policies::attached_to_group(op.conn(), g.id).await?
            }
        };
        Ok(attached(rows))
    }
    .await;
    op.finish(result).await
}

// ---- API tokens -----------------------------------------------------------------------------

fn access_key(row: db::access_keys::AccessKeyRow) -> AccessKey {
    AccessKey {
        token_id: row.id,
        user_name: row.user_name,
        narrowed: row.policy_document.is_some(),
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
    }
}

/// Creates an API token for `user` (default: the caller), optionally expiring and narrowed.
pub async fn create_access_key(
    s: &Services,
    caller: &Caller,
    user: Option<&str>,
    expires_in_days: Option<i64>,
    policy: Option<&str>,
) -> Result<NewAccessKey, AppError> {
    let name = target_user(caller, user).to_string();
    let mut op = Op::begin(
        s,
        caller,
        Kind::Change,
        Action::CreateAccessKey,
        Resource::user(&name),
        json!({"userName": name, "expiresInDays": expires_in_days, "policyDocument": policy}),
    )
    .await?;
    let result = async {
        let u = require_user(&mut op, &name).await?;
        if let Some(days) = expires_in_days
            && !(1..=3650).contains(&days)
        {
            return Err(AppError::validation(
                "expiresInDays",
                "must be between 1 and 3650",
            ));
        }
        if let Some(text) = policy {
            policy_document("policyDocument", text)?;
        }
        let now = op.now();
        let expires_at = expires_in_days.map(|d| now + Duration::days(d));
        let token = Secret::new_api_token();
        let id = Uuid::new_v4();
        db::access_keys::insert(op.conn(), id, &token.hash(), u.id, policy, now, expires_at)
            .await?;
        Ok(NewAccessKey {
            key: AccessKey {
                token_id: id,
                user_name: u.user_name,
                narrowed: policy.is_some(),
                created_at: now,
                expires_at,
                last_used_at: None,
            },
            token,
        })
    }
    .await;
    op.finish(result).await
}

pub async fn list_access_keys(
    s: &Services,
    caller: &Caller,
    user: Option<&str>,
) -> Result<Vec<AccessKey>, AppError> {
    let name = target_user(caller, user).to_string();
    let mut op = Op::begin(
        s,
        caller,
        Kind::Read,
        Action::ListAccessKeys,
        Resource::user(&name),
        json!({"userName": name}),
    )
    .await?;
    let result = async {
        let u = require_user(&mut op, &name).await?;
        let rows = db::access_keys::list_for_user(op.conn(), u.id).await?;
        Ok(rows.into_iter().map(access_key).collect())
    }
    .await;
    op.finish(result).await
}

pub async fn delete_access_key(
    s: &Services,
    caller: &Caller,
    user: Option<&str>,
    token_id: &str,
) -> Result<(), AppError> {
    let name = target_user(caller, user).to_string();
    let mut op = Op::begin(
        s,
        caller,
        Kind::Change,
        Action::DeleteAccessKey,
        Resource::user(&name),
        json!({"userName": name, "tokenId": token_id}),
    )
    .await?;
    let result = async {
        let id = Uuid::parse_str(token_id)
            .map_err(|_| AppError::validation("tokenId", "is not a token id"))?;
        let u = require_user(&mut op, &name).await?;
        if !db::access_keys::delete_for_user(op.conn(), u.id, id).await? {
            return Err(AppError::NoSuchEntity(format!(
                "The API token {token_id} of user {name} cannot be found."
            )));
        }
        Ok(())
    }
    .await;
    op.finish(result).await
}

// ---- Sessions -------------------------------------------------------------------------------

pub async fn list_sessions(
    s: &Services,
    caller: &Caller,
    user: Option<&str>,
) -> Result<Vec<SessionInfo>, AppError> {
    let name = target_user(caller, user).to_string();
    let mut op = Op::begin(
        s,
        caller,
        Kind::Read,
        Action::ListSessions,
        Resource::user(&name),
        json!({"userName": name}),
    )
    .await?;
    let result = async {
        let u = require_user(&mut op, &name).await?;
        let now = op.now();
        let idle_cutoff = now - s.sessions.idle;
        let current = op.caller().session_id();
        let rows = db::sessions::list_for_user(op.conn(), u.id, now).await?;
        Ok(rows
            .into_iter()
            .filter(|r| r.last_seen_at > idle_cutoff)
            .map(|r| SessionInfo {
                current: Some(r.id) == current,
                id: r.id,
                created_at: r.created_at,
                last_seen_at: r.last_seen_at,
                expires_at: r.expires_at,
                source_ip: r.source_ip,
                user_agent: r.user_agent,
            })
            .collect())
    }
    .await;
    op.finish(result).await
}

/// Ends one session (`Some(id)`) or all (`None`) of a user.
pub async fn delete_sessions(
    s: &Services,
    caller: &Caller,
    user: Option<&str>,
    session: Option<Uuid>,
) -> Result<u64, AppError> {
    let name = target_user(caller, user).to_string();
    let mut op = Op::begin(
        s,
        caller,
        Kind::Change,
        Action::DeleteSession,
        Resource::user(&name),
        json!({"userName": name, "sessionId": session.map(|s| s.to_string())}),
    )
    .await?;
    let result = async {
        let u = require_user(&mut op, &name).await?;
        match session {
            Some(id) => {
                if db::sessions::delete_for_user(op.conn(), u.id, id).await? {
                    Ok(1)
                } else {
                    Err(AppError::NoSuchEntity(
                        "That session does not exist or has ended.".into(),
                    ))
                }
            }
            None => Ok(db::sessions::delete_all_for_user(op.conn(), u.id, None).await?),
        }
    }
    .await;
    op.finish(result).await
}

// ---- Policy simulator -----------------------------------------------------------------------

pub async fn simulate(
    s: &Services,
    caller: &Caller,
    user: &str,
    actions: &[String],
    resources: &[String],
) -> Result<Vec<Simulation>, AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Read,
        Action::SimulatePrincipalPolicy,
        Resource::user(user),
        json!({"userName": user, "actionNames": actions, "resourceArns": resources}),
    )
    .await?;
    let result = async {
        if actions.is_empty() {
            return Err(AppError::validation(
                "actionNames",
                "name at least one action",
            ));
        }
        if actions.len() > 100 || resources.len() > 100 {
            return Err(AppError::validation(
                "actionNames",
                "at most 100 actions and 100 resources",
            ));
        }
        let parsed_actions = actions
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.parse::<Action>()
                    .map_err(|e| AppError::validation(&format!("actionNames[{i}]"), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let parsed_resources = if resources.is_empty() {
            vec![Resource::All]
        } else {
            resources
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    Resource::parse(r)
                        .map_err(|m| AppError::validation(&format!("resourceArns[{i}]"), m))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let u = require_user(&mut op, user).await?;
        let subject = Caller::load(
            op.conn(),
            u.id,
            &u.user_name,
            super::Credential::Session(Uuid::nil()),
            None,
            Default::default(),
        )
        .await?;
        let mut out = Vec::new();
        for action in &parsed_actions {
            for resource in &parsed_resources {
                let decision = match access::authorize(&subject.principal, *action, resource) {
                    Decision::Allowed => "allowed",
                    Decision::Denied(d) => match d.reason {
                        DenyReason::ExplicitDeny(_) | DenyReason::TokenExplicitDeny(_) => {
                            "explicitDeny"
                        }
                        DenyReason::NoAllow | DenyReason::TokenNoAllow => "implicitDeny",
                    },
                };
                out.push(Simulation {
                    action: action.as_str().to_string(),
                    resource: resource.to_string(),
                    decision,
                    matched: subject
                        .principal
                        .policies()
                        .matching_statements(*action, resource),
                });
            }
        }
        Ok(out)
    }
    .await;
    op.finish(result).await
}

// ---- Audit ----------------------------------------------------------------------------------

pub async fn lookup_audit_events(
    s: &Services,
    caller: &Caller,
    filter: &AuditFilter,
    page: &Page,
) -> Result<Paged<AuditRow>, AppError> {
    let mut op = Op::begin(
        s,
        caller,
        Kind::Read,
        Action::LookupAuditEvents,
        Resource::All,
        json!({}),
    )
    .await?;
    let result = async {
        let limit = page.limit()?;
        let before = match &page.next {
            None => None,
            Some(t) => Some(t.parse::<i64>().map_err(|_| {
                AppError::validation("nextToken", "is not a token from an earlier page")
            })?),
        };
        let rows = db::audit::lookup(op.conn(), filter, before, limit + 1).await?;
        Ok(Paged::from_rows(rows, limit, |r| r.seq.to_string()))
    }
    .await;
    op.finish(result).await
}
