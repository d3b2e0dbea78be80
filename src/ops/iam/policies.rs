//! Policies (managed and customer) and their attachments to users and groups.

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Attached, attached, policy_document, policy_name, require};
use crate::access::{Action, Resource};
use crate::db::{self, groups::GroupRow, policies::PolicyRow, users::UserRow};
use crate::error::AppError;
use crate::ops::{Caller, Kind, Op, Page, Paged, Services};

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

impl From<PolicyRow> for Policy {
    fn from(row: PolicyRow) -> Self {
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

/// Which policies to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyScope {
    All,
    Managed,
    Customer,
}

const MAX_DESCRIPTION_CHARS: usize = 1000;

fn check_description(description: &str) -> Result<(), AppError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(AppError::validation(
            "description",
            "must be at most 1000 characters",
        ));
    }
    Ok(())
}

pub async fn create_policy(
    s: &Services,
    caller: &Caller,
    name: &str,
    document: &str,
    description: &str,
) -> Result<Policy, AppError> {
    Op::run(
        s,
        caller,
        Kind::Change,
        Action::CreatePolicy,
        Resource::policy(name),
        json!({"policyName": name, "policyDocument": document, "description": description}),
        async |op| {
            let name = policy_name(name)?;
            policy_document("policyDocument", document)?;
            check_description(description)?;
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
        },
    )
    .await
}

pub async fn get_policy(s: &Services, caller: &Caller, name: &str) -> Result<Policy, AppError> {
    Op::run_on(
        s,
        caller,
        Kind::Read,
        Action::GetPolicy,
        name,
        json!({"policyName": name}),
        async |_op, policy: PolicyRow| Ok(policy.into()),
    )
    .await
}

pub async fn list_policies(
    s: &Services,
    caller: &Caller,
    scope: PolicyScope,
    page: &Page,
) -> Result<Paged<Policy>, AppError> {
    Op::run(
        s,
        caller,
        Kind::Read,
        Action::ListPolicies,
        Resource::All,
        json!({}),
        async |op| {
            let limit = page.limit()?;
            let managed = match scope {
                PolicyScope::All => None,
                PolicyScope::Managed => Some(true),
                PolicyScope::Customer => Some(false),
            };
            let rows =
                db::policies::list(op.conn(), managed, page.next.as_deref(), limit + 1).await?;
            let paged = Paged::from_rows(rows, limit, |p| p.policy_name.clone());
            Ok(Paged {
                items: paged.items.into_iter().map(Policy::from).collect(),
                next: paged.next,
            })
        },
    )
    .await
}

/// Replaces a customer policy's document (and description, when given). `expected_version`,
/// when given, must still be the stored version (compare-and-set in the database: someone else
/// may have saved in between).
pub async fn update_policy(
    s: &Services,
    caller: &Caller,
    name: &str,
    document: &str,
    description: Option<&str>,
    expected_version: Option<i32>,
) -> Result<Policy, AppError> {
    Op::run_on(
        s,
        caller,
        Kind::Change,
        Action::UpdatePolicy,
        name,
        json!({"policyName": name, "policyDocument": document, "description": description, "expectedVersion": expected_version}),
        async |op, policy: PolicyRow| {
            if policy.managed {
                return Err(AppError::validation(
                    "policyName",
                    format!(
                        "{} is a managed policy and cannot be changed",
                        policy.policy_name
                    ),
                ));
            }
            policy_document("policyDocument", document)?;
            let description = description.unwrap_or(&policy.description);
            check_description(description)?;
            let conflict = || {
                AppError::Conflict(format!(
                    "Someone else saved this policy since version {}; reload it and apply your change again.",
                    expected_version.unwrap_or(policy.version)
                ))
            };
            if expected_version.is_some_and(|v| v != policy.version) {
                return Err(conflict());
            }
            db::policies::update(op.conn(), policy.id, description, document, expected_version)
                .await?
                .ok_or_else(conflict)?;
            let saved: PolicyRow = require(op, &policy.policy_name).await?;
            Ok(saved.into())
        },
    )
    .await
}

pub async fn delete_policy(s: &Services, caller: &Caller, name: &str) -> Result<(), AppError> {
    Op::run_on(
        s,
        caller,
        Kind::Change,
        Action::DeletePolicy,
        name,
        json!({"policyName": name}),
        async |op, policy: PolicyRow| {
            let name = &policy.policy_name;
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
                Err(e) if db::is_foreign_key_violation(&e) => {
                    Err(AppError::DeleteConflict(format!(
                        "Cannot delete {name}: it was attached meanwhile. Detach it first."
                    )))
                }
                other => Ok(other?),
            }
        },
    )
    .await
}

/// Whom a policy is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    User,
    Group,
}

/// Attaches (`attach`) or detaches a policy to or from a user or group, authorized on the
/// holder's stored name.
pub async fn change_attachment(
    s: &Services,
    caller: &Caller,
    holder: Holder,
    holder_name: &str,
    policy: &str,
    attach: bool,
) -> Result<(), AppError> {
    let not_attached = |p: &PolicyRow, holder: &str| {
        AppError::NoSuchEntity(format!(
            "The policy {} is not attached to {holder}.",
            p.policy_name
        ))
    };
    match holder {
        Holder::User => {
            let action = if attach {
                Action::AttachUserPolicy
            } else {
                Action::DetachUserPolicy
            };
            Op::run_on(
                s,
                caller,
                Kind::Change,
                action,
                holder_name,
                json!({"userName": holder_name, "policyName": policy}),
                async |op, u: UserRow| {
                    let p: PolicyRow = require(op, policy).await?;
                    let now = op.now();
                    if attach {
                        db::policies::attach_to_user(op.conn(), u.id, p.id, now).await?;
                    } else if !db::policies::detach_from_user(op.conn(), u.id, p.id).await? {
                        return Err(not_attached(&p, &u.user_name));
                    }
                    Ok(())
                },
            )
            .await
        }
        Holder::Group => {
            let action = if attach {
                Action::AttachGroupPolicy
            } else {
                Action::DetachGroupPolicy
            };
            Op::run_on(
                s,
                caller,
                Kind::Change,
                action,
                holder_name,
                json!({"groupName": holder_name, "policyName": policy}),
                async |op, g: GroupRow| {
                    let p: PolicyRow = require(op, policy).await?;
                    let now = op.now();
                    if attach {
                        db::policies::attach_to_group(op.conn(), g.id, p.id, now).await?;
                    } else if !db::policies::detach_from_group(op.conn(), g.id, p.id).await? {
                        return Err(not_attached(&p, &g.group_name));
                    }
                    Ok(())
                },
            )
            .await
        }
    }
}

pub async fn list_attached(
    s: &Services,
    caller: &Caller,
    holder: Holder,
    holder_name: &str,
) -> Result<Vec<Attached>, AppError> {
    let params = json!({"name": holder_name});
    match holder {
        Holder::User => {
            Op::run_on(
                s,
                caller,
                Kind::Read,
                Action::ListAttachedUserPolicies,
                holder_name,
                params,
                async |op, u: UserRow| {
                    Ok(attached(
                        db::policies::attached_to_user(op.conn(), u.id).await?,
                    ))
                },
            )
            .await
        }
        Holder::Group => {
            Op::run_on(
                s,
                caller,
                Kind::Read,
                Action::ListAttachedGroupPolicies,
                holder_name,
                params,
                async |op, g: GroupRow| {
                    Ok(attached(
                        db::policies::attached_to_group(op.conn(), g.id).await?,
                    ))
                },
            )
            .await
        }
    }
}
