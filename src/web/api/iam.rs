//! The identity and access operations of the API, with IAM-shaped, lowerCamelCase JSON.

use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{ApiError, epoch, parse};
use crate::access::{MatchedStatement, Resource};
use crate::db::audit::AuditFilter;
use crate::error::AppError;
use crate::ops::iam::{self, Attached, Holder, PolicyScope};
use crate::ops::{Caller, Page, Services};

/// Every operation this module answers.
pub const OPERATIONS: &[&str] = &[
    "GetCallerIdentity",
    "CreateUser",
    "GetUser",
    "ListUsers",
    "UpdateUser",
    "DeleteUser",
    "CreateGroup",
    "GetGroup",
    "ListGroups",
    "DeleteGroup",
    "AddUserToGroup",
    "RemoveUserFromGroup",
    "CreatePolicy",
    "GetPolicy",
    "ListPolicies",
    "UpdatePolicy",
    "DeletePolicy",
    "AttachUserPolicy",
    "DetachUserPolicy",
    "AttachGroupPolicy",
    "DetachGroupPolicy",
    "ListAttachedUserPolicies",
    "ListAttachedGroupPolicies",
    "CreateAccessKey",
    "ListAccessKeys",
    "DeleteAccessKey",
    "SimulatePrincipalPolicy",
    "LookupAuditEvents",
];

pub async fn call(
    s: &Services,
    c: &Caller,
    operation: &str,
    input: Value,
) -> Result<Value, ApiError> {
    Ok(match operation {
        "GetCallerIdentity" => {
            parse::<Empty>(input)?;
            json!({
                "userName": c.user_name(),
                "userArn": c.principal.arn(),
                "tokenId": c.actor.token_id.map(|t| t.to_string()),
            })
        }
        "CreateUser" => {
            let i: CreateUser = parse(input)?;
            let user = iam::create_user(s, c, &i.user_name, i.password.as_deref()).await?;
            json!({ "user": user_json(&user) })
        }
        "GetUser" => {
            let i: MaybeUser = parse(input)?;
            let d = iam::get_user(s, c, i.user_name.as_deref()).await?;
            json!({
                "user": user_json(&d.user),
                "groups": d.groups,
                "attachedPolicies": d.policies.as_deref().map(attached_json),
            })
        }
        "ListUsers" => {
            let i: Paging = parse(input)?;
            let page = iam::list_users(s, c, &i.page()).await?;
            json!({
                "users": page.items.iter().map(|d| user_json(&d.user)).collect::<Vec<_>>(),
                "nextToken": page.next,
            })
        }
        "UpdateUser" => {
            let i: UpdateUser = parse(input)?;
            let user = iam::update_user(s, c, &i.user_name, i.enabled).await?;
            json!({ "user": user_json(&user) })
        }
        "DeleteUser" => {
            let i: UserNamed = parse(input)?;
            iam::delete_user(s, c, &i.user_name).await?;
            json!({})
        }
        "CreateGroup" => {
            let i: GroupNamed = parse(input)?;
            let g = iam::create_group(s, c, &i.group_name).await?;
            json!({ "group": group_json(&g.group_name, g.id, g.created_at) })
        }
        "GetGroup" => {
            let i: GroupNamed = parse(input)?;
            let d = iam::get_group(s, c, &i.group_name).await?;
            json!({
                "group": group_json(&d.group.group_name, d.group.id, d.group.created_at),
                "users": d.members.iter().flatten().map(|m| json!({"userName": m, "arn": Resource::user(m).to_string()})).collect::<Vec<_>>(),
                "attachedPolicies": d.policies.as_deref().map(attached_json),
            })
        }
        "ListGroups" => {
            let i: Paging = parse(input)?;
            let page = iam::list_groups(s, c, &i.page()).await?;
            json!({
                "groups": page.items.iter().map(|d| group_json(&d.group.group_name, d.group.id, d.group.created_at)).collect::<Vec<_>>(),
                "nextToken": page.next,
            })
        }
        "DeleteGroup" => {
            let i: GroupNamed = parse(input)?;
            iam::delete_group(s, c, &i.group_name).await?;
            json!({})
        }
        "AddUserToGroup" | "RemoveUserFromGroup" => {
            let i: Membership = parse(input)?;
            iam::change_membership(
                s,
                c,
                &i.group_name,
                &i.user_name,
                operation == "AddUserToGroup",
            )
            .await?;
            json!({})
        }
        "CreatePolicy" => {
            let i: CreatePolicy = parse(input)?;
            let p = iam::create_policy(
                s,
                c,
                &i.policy_name,
                &i.policy_document,
                i.description.as_deref().unwrap_or_default(),
            )
            .await?;
            json!({ "policy": policy_json(&p) })
        }
        "GetPolicy" => {
            let i: PolicyNamed = parse(input)?;
            let p = iam::get_policy(s, c, &i.policy_name).await?;
            json!({ "policy": policy_json(&p), "policyDocument": p.document })
        }
        "ListPolicies" => {
            let i: ListPolicies = parse(input)?;
            let scope = match i.scope.as_deref() {
                None | Some("All") => PolicyScope::All,
                Some("AWS") | Some("Managed") => PolicyScope::Managed,
                Some("Local") | Some("Customer") => PolicyScope::Customer,
                Some(other) => {
                    return Err(AppError::validation(
                        "scope",
                        format!("{other:?} is not All, AWS or Local"),
                    )
                    .into());
                }
            };
            let page = iam::list_policies(
                s,
                c,
                scope,
                &Page {
                    next: i.next_token,
                    max: i.max_results,
                },
            )
            .await?;
            json!({
                "policies": page.items.iter().map(policy_json).collect::<Vec<_>>(),
                "nextToken": page.next,
            })
        }
        "UpdatePolicy" => {
            let i: UpdatePolicy = parse(input)?;
            let p = iam::update_policy(
                s,
                c,
                &i.policy_name,
                &i.policy_document,
                i.description.as_deref(),
                None,
            )
            .await?;
            json!({ "policy": policy_json(&p) })
        }
        "DeletePolicy" => {
            let i: PolicyNamed = parse(input)?;
            iam::delete_policy(s, c, &i.policy_name).await?;
            json!({})
        }
        "AttachUserPolicy" | "DetachUserPolicy" => {
            let i: UserPolicy = parse(input)?;
            iam::change_attachment(
                s,
                c,
                Holder::User,
                &i.user_name,
                &i.policy_name,
                operation == "AttachUserPolicy",
            )
            .await?;
            json!({})
        }
        "AttachGroupPolicy" | "DetachGroupPolicy" => {
            let i: GroupPolicy = parse(input)?;
            iam::change_attachment(
                s,
                c,
                Holder::Group,
                &i.group_name,
                &i.policy_name,
                operation == "AttachGroupPolicy",
            )
            .await?;
            json!({})
        }
        "ListAttachedUserPolicies" => {
            let i: UserNamed = parse(input)?;
            let list = iam::list_attached(s, c, Holder::User, &i.user_name).await?;
            json!({ "attachedPolicies": attached_json(&list) })
        }
        "ListAttachedGroupPolicies" => {
            let i: GroupNamed = parse(input)?;
            let list = iam::list_attached(s, c, Holder::Group, &i.group_name).await?;
            json!({ "attachedPolicies": attached_json(&list) })
        }
        "CreateAccessKey" => {
            let i: CreateAccessKey = parse(input)?;
            let expiry = match (i.expires_in_days, i.never_expires) {
                (Some(_), Some(true)) => {
                    return Err(AppError::validation(
                        "neverExpires",
                        "send either expiresInDays or neverExpires, not both",
                    )
                    .into());
                }
                (Some(days), _) => iam::TokenExpiry::Days(days),
                (None, Some(true)) => iam::TokenExpiry::Never,
                (None, _) => iam::TokenExpiry::Default,
            };
            let k = iam::create_access_key(
                s,
                c,
                i.user_name.as_deref(),
                i.name.as_deref().unwrap_or_default(),
                expiry,
                i.policy_document.as_deref(),
                None,
            )
            .await?;
            json!({
                "accessKey": {
                    "tokenId": k.key.token_id,
                    "name": k.key.name,
                    "token": k.token.expose(),
                    "userName": k.key.user_name,
                    "createDate": epoch(k.key.created_at),
                    "expirationDate": k.key.expires_at.map(epoch),
                    "narrowed": k.key.narrowed,
                }
            })
        }
        "ListAccessKeys" => {
            let i: MaybeUser = parse(input)?;
            let keys = iam::list_access_keys(s, c, i.user_name.as_deref()).await?;
            json!({
                "accessKeys": keys.iter().map(|k| json!({
                    "tokenId": k.token_id,
                    "name": k.name,
                    "userName": k.user_name,
                    "createDate": epoch(k.created_at),
                    "expirationDate": k.expires_at.map(epoch),
                    "lastUsedDate": k.last_used_at.map(epoch),
                    "narrowed": k.narrowed,
                })).collect::<Vec<_>>(),
            })
        }
        "DeleteAccessKey" => {
            let i: DeleteAccessKey = parse(input)?;
            iam::delete_access_key(s, c, i.user_name.as_deref(), &i.token_id).await?;
            json!({})
        }
        "SimulatePrincipalPolicy" => {
            let i: Simulate = parse(input)?;
            let results = iam::simulate(
                s,
                c,
                &i.user_name,
                &i.action_names,
                &i.resource_arns.unwrap_or_default(),
            )
            .await?;
            json!({
                "evaluationResults": results.iter().map(|r| json!({
                    "evalActionName": r.action,
                    "evalResourceName": r.resource,
                    "evalDecision": r.decision,
                    "matchedStatements": r.matched.iter().map(matched_json).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        }
        "LookupAuditEvents" => {
            let i: LookupAuditEvents = parse(input)?;
            let time = |field: &str, v: Option<f64>| -> Result<Option<OffsetDateTime>, ApiError> {
                v.map(|secs| {
                    OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128).map_err(|_| {
                        ApiError::from(AppError::validation(
                            field,
                            "is not a valid time (epoch seconds)",
                        ))
                    })
                })
                .transpose()
            };
            let filter = AuditFilter {
                user_name: i.user_name,
                event_name: i.event_name,
                resource_prefix: i.resource_prefix,
                outcome: i.outcome,
                start_time: time("startTime", i.start_time)?,
                end_time: time("endTime", i.end_time)?,
            };
            let page = crate::ops::audit_log::lookup_audit_events(
                s,
                c,
                &filter,
                &Page {
                    next: i.next_token,
                    max: i.max_results,
                },
            )
            .await?;
            json!({
                "events": page.items.iter().map(|e| json!({
                    "eventId": e.event_id,
                    "eventTime": epoch(e.event_time),
                    "userName": e.user_name,
                    "tokenId": e.token_id,
                    "sourceIpAddress": e.source_ip,
                    "userAgent": e.user_agent,
                    "eventName": e.event_name,
                    "resourceArn": e.resource_arn,
                    "requestParameters": e.parameters(),
                    "outcome": e.outcome,
                    "errorMessage": e.error_message,
                    "requestId": e.request_id,
                })).collect::<Vec<_>>(),
                "nextToken": page.next,
            })
        }
        other => {
            return Err(ApiError::new(
                actix_web::http::StatusCode::BAD_REQUEST,
                "UnknownOperationException",
                format!("{other} is not an operation of this API"),
            ));
        }
    })
}

fn user_json(u: &iam::User) -> Value {
    json!({
        "userName": u.user_name,
        "userId": u.id,
        "arn": Resource::user(&u.user_name).to_string(),
        "createDate": epoch(u.created_at),
        "enabled": u.enabled,
        "passwordLastUsed": u.last_sign_in_at.map(epoch),
    })
}

fn group_json(name: &str, id: uuid::Uuid, created: OffsetDateTime) -> Value {
    json!({
        "groupName": name,
        "groupId": id,
        "arn": Resource::group(name).to_string(),
        "createDate": epoch(created),
    })
}

fn policy_json(p: &iam::Policy) -> Value {
    json!({
        "policyName": p.policy_name,
        "policyId": p.id,
        "arn": Resource::policy(&p.policy_name).to_string(),
        "description": p.description,
        "isManaged": p.managed,
        "attachmentCount": p.attachment_count,
        "defaultVersionId": format!("v{}", p.version),
        "createDate": epoch(p.created_at),
        "updateDate": epoch(p.updated_at),
    })
}

fn attached_json(list: &[Attached]) -> Vec<Value> {
    list.iter()
        .map(|a| json!({"policyName": a.policy_name, "policyArn": Resource::policy(&a.policy_name).to_string()}))
        .collect()
}

fn matched_json(m: &MatchedStatement) -> Value {
    json!({"policyName": m.policy_name, "sid": m.sid, "effect": m.effect.to_string()})
}

// ---- Inputs ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateUser {
    user_name: String,
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MaybeUser {
    user_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserNamed {
    user_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateUser {
    user_name: String,
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Paging {
    next_token: Option<String>,
    max_results: Option<i64>,
}

impl Paging {
    fn page(&self) -> Page {
        Page {
            next: self.next_token.clone(),
            max: self.max_results,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GroupNamed {
    group_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Membership {
    group_name: String,
    user_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreatePolicy {
    policy_name: String,
    policy_document: String,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyNamed {
    policy_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListPolicies {
    scope: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdatePolicy {
    policy_name: String,
    policy_document: String,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserPolicy {
    user_name: String,
    policy_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GroupPolicy {
    group_name: String,
    policy_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateAccessKey {
    user_name: Option<String>,
    name: Option<String>,
    expires_in_days: Option<i64>,
    never_expires: Option<bool>,
    policy_document: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeleteAccessKey {
    user_name: Option<String>,
    token_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Simulate {
    user_name: String,
    action_names: Vec<String>,
    resource_arns: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LookupAuditEvents {
    user_name: Option<String>,
    event_name: Option<String>,
    resource_prefix: Option<String>,
    outcome: Option<String>,
    start_time: Option<f64>,
    end_time: Option<f64>,
    next_token: Option<String>,
    max_results: Option<i64>,
}
