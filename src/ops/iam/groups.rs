//! Groups: create, read, list, delete, membership.

use std::collections::HashMap;

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Attached, attached, group_name, require};
use crate::access::{Action, Resource};
use crate::db::{self, groups::GroupRow, users::UserRow};
use crate::error::AppError;
use crate::ops::{Caller, Kind, Op, Page, Paged, Services};

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

/// A group with what the caller may also read of it: members (with `iam:GetGroup` on the group)
/// and attached policies (with `iam:ListAttachedGroupPolicies`); `None` when not allowed.
#[derive(Debug, Clone)]
pub struct GroupDetails {
    pub group: Group,
    pub members: Option<Vec<String>>,
    pub policies: Option<Vec<Attached>>,
}

pub async fn create_group(s: &Services, caller: &Caller, name: &str) -> Result<Group, AppError> {
    Op::run(
        s,
        caller,
        Kind::Change,
        Action::CreateGroup,
        Resource::group(name),
        json!({"groupName": name}),
        async |op| {
            let name = group_name(name)?;
            let now = op.now();
            db::groups::insert(op.conn(), Uuid::new_v4(), name.as_str(), now)
                .await?
                .map(Group::from)
                .ok_or_else(|| {
                    AppError::EntityAlreadyExists(format!("Group with name {name} already exists."))
                })
        },
    )
    .await
}

pub async fn get_group(
    s: &Services,
    caller: &Caller,
    name: &str,
) -> Result<GroupDetails, AppError> {
    Op::run_on(
        s,
        caller,
        Kind::Read,
        Action::GetGroup,
        name,
        json!({"groupName": name}),
        async |op, group: GroupRow| {
            let members = db::groups::member_names(op.conn(), group.id).await?;
            let policies = if op.caller().can(
                Action::ListAttachedGroupPolicies,
                &Resource::group(&group.group_name),
            ) {
                Some(attached(
                    db::policies::attached_to_group(op.conn(), group.id).await?,
                ))
            } else {
                None
            };
            Ok(GroupDetails {
                group: group.into(),
                members: Some(members),
                policies,
            })
        },
    )
    .await
}

pub async fn list_groups(
    s: &Services,
    caller: &Caller,
    page: &Page,
) -> Result<Paged<GroupDetails>, AppError> {
    Op::run(
        s,
        caller,
        Kind::Read,
        Action::ListGroups,
        Resource::All,
        json!({}),
        async |op| {
            let limit = page.limit()?;
            let rows = db::groups::list(op.conn(), page.next.as_deref(), limit + 1).await?;
            let paged = Paged::from_rows(rows, limit, |g| g.group_name.clone());
            let caller = op.caller();
            let may_members: Vec<Uuid> = paged
                .items
                .iter()
                .filter(|g| caller.can(Action::GetGroup, &Resource::group(&g.group_name)))
                .map(|g| g.id)
                .collect();
            let may_policies: Vec<Uuid> = paged
                .items
                .iter()
                .filter(|g| {
                    caller.can(
                        Action::ListAttachedGroupPolicies,
                        &Resource::group(&g.group_name),
                    )
                })
                .map(|g| g.id)
                .collect();
            let mut members: HashMap<Uuid, Vec<String>> =
                may_members.iter().map(|&id| (id, Vec::new())).collect();
            if !may_members.is_empty() {
                for (group_id, user) in
                    db::groups::member_names_for_groups(op.conn(), &may_members).await?
                {
                    members.entry(group_id).or_default().push(user);
                }
            }
            let mut policies: HashMap<Uuid, Vec<Attached>> =
                may_policies.iter().map(|&id| (id, Vec::new())).collect();
            if !may_policies.is_empty() {
                for p in db::policies::attached_to_groups(op.conn(), &may_policies).await? {
                    policies.entry(p.holder_id).or_default().push(Attached {
                        policy_name: p.policy_name,
                        managed: p.managed,
                    });
                }
            }
            Ok(Paged {
                items: paged
                    .items
                    .into_iter()
                    .map(|g| GroupDetails {
                        members: members.remove(&g.id),
                        policies: policies.remove(&g.id),
                        group: g.into(),
                    })
                    .collect(),
                next: paged.next,
            })
        },
    )
    .await
}

pub async fn delete_group(s: &Services, caller: &Caller, name: &str) -> Result<(), AppError> {
    Op::run_on(
        s,
        caller,
        Kind::Change,
        Action::DeleteGroup,
        name,
        json!({"groupName": name}),
        async |op, group: GroupRow| {
            db::groups::delete(op.conn(), group.id).await?;
            Ok(())
        },
    )
    .await
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
    Op::run_on(
        s,
        caller,
        Kind::Change,
        action,
        group,
        json!({"groupName": group, "userName": user}),
        async |op, g: GroupRow| {
            let u: UserRow = require(op, user).await?;
            let now = op.now();
            if add {
                db::groups::add_member(op.conn(), g.id, u.id, now).await?;
            } else if !db::groups::remove_member(op.conn(), g.id, u.id).await? {
                return Err(AppError::NoSuchEntity(format!(
                    "The user {} is not a member of the group {}.",
                    u.user_name, g.group_name
                )));
            }
            Ok(())
        },
    )
    .await
}
