//! `/admin`: users, groups, policies, the policy simulator and the audit log. Every page and form
//! goes through the operations layer, which authorizes and audits; the pages only decide what to
//! show from the same decisions (`Caller::can`).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use time::PrimitiveDateTime;
use time::format_description::well_known::Rfc3339;

use super::{
    ConsoleError, Layout, Section, console_page, display_time, render_with_status, see_other,
    segment,
};
use crate::access::{Action, Resource};
use crate::db::audit::AuditFilter;
use crate::error::AppError;
use crate::ops::iam::{self, Holder, PolicyScope};
use crate::ops::{Caller, Page};
use crate::web::AppState;
use crate::web::auth::{CsrfForm, SignedIn};
use crate::web::htmx::HxRequest;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::web::get_only("/admin", index))
        .service(
            web::resource("/admin/users")
                .route(web::get().to(users))
                .route(web::post().to(create_user))
                .default_service(web::to(super::method_not_allowed)),
        )
        .service(crate::web::get_only("/admin/users/{name}", user))
        .route("/admin/users/{name}/enabled", web::post().to(set_enabled))
        .route(
            "/admin/users/{name}/password",
            web::post().to(reset_password),
        )
        .route("/admin/users/{name}/delete", web::post().to(delete_user))
        .route(
            "/admin/users/{name}/sessions/end",
            web::post().to(end_sessions),
        )
        .route("/admin/users/{name}/groups", web::post().to(user_groups))
        .route(
            "/admin/users/{name}/policies",
            web::post().to(user_policies),
        )
        .service(
            web::resource("/admin/groups")
                .route(web::get().to(groups))
                .route(web::post().to(create_group))
                .default_service(web::to(super::method_not_allowed)),
        )
        .service(crate::web::get_only("/admin/groups/{name}", group))
        .route(
            "/admin/groups/{name}/members",
            web::post().to(group_members),
        )
        .route(
            "/admin/groups/{name}/policies",
            web::post().to(group_policies),
        )
        .route("/admin/groups/{name}/delete", web::post().to(delete_group))
        .service(crate::web::get_only("/admin/policies", policies))
        .service(
            web::resource("/admin/policies/new")
                .route(web::get().to(new_policy))
                .route(web::post().to(create_policy))
                .default_service(web::to(super::method_not_allowed)),
        )
        .service(
            web::resource("/admin/policies/{name}")
                .route(web::get().to(policy))
                .route(web::post().to(save_policy))
                .default_service(web::to(super::method_not_allowed)),
        )
        .route(
            "/admin/policies/{name}/delete",
            web::post().to(delete_policy),
        )
        .service(crate::web::get_only("/admin/audit", audit))
        .service(crate::web::get_only("/admin/audit/export", audit_export));
}

/// Whether the caller may use any admin page (decides the Admin link in the navigation).
pub fn may_administer(caller: &Caller) -> bool {
    [
        Action::ListUsers,
        Action::ListGroups,
        Action::ListPolicies,
        Action::LookupAuditEvents,
    ]
    .into_iter()
    .any(|a| caller.can(a, &Resource::All))
}

#[derive(Deserialize, Default)]
struct Flash {
    done: Option<String>,
    next: Option<String>,
}

fn notice(done: Option<&str>) -> Option<String> {
    let text = match done? {
        "created" => "Created.",
        "deleted" => "Deleted.",
        "saved" => "Saved.",
        "enabled" => "The user is enabled.",
        "disabled" => "The user is disabled; their sessions have ended.",
        "password" => "The password was set; the user's sessions have ended.",
        "sessions" => "The user's sessions have ended.",
        "groups" => "Group membership updated.",
        "members" => "Members updated.",
        "policies" => "Policies updated.",
        _ => return None,
    };
    Some(text.to_string())
}

// ---- Index ----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "admin/index.html", blocks = ["content"])]
struct IndexPage {
    layout: Layout,
    can_users: bool,
    can_groups: bool,
    can_policies: bool,
    can_audit: bool,
}
console_page!(IndexPage);

async fn index(user: SignedIn, hx: HxRequest) -> Result<HttpResponse, ConsoleError> {
    let c = &user.caller;
    if !may_administer(c) {
        // Refused through the one function, so the refusal is audited like any other.
        return Err(forbidden(c, Action::ListUsers, Resource::All));
    }
    let page = IndexPage {
        layout: Layout::signed_in(&user, Section::Admin),
        can_users: c.can(Action::ListUsers, &Resource::All),
        can_groups: c.can(Action::ListGroups, &Resource::All),
        can_policies: c.can(Action::ListPolicies, &Resource::All),
        can_audit: c.can(Action::LookupAuditEvents, &Resource::All),
    };
    render_with_status(hx, &page, StatusCode::OK)
}

fn forbidden(caller: &Caller, action: Action, resource: Resource) -> ConsoleError {
    match crate::access::authorize(&caller.principal, action, &resource) {
        crate::access::Decision::Denied(d) => ConsoleError::Forbidden(d),
        crate::access::Decision::Allowed => ConsoleError::NotFound,
    }
}

// ---- Users ----------------------------------------------------------------------------------

struct UserRow {
    name: String,
    link: String,
    enabled: bool,
    groups: String,
    policies: String,
    last_sign_in: String,
}

#[derive(Default)]
struct CreateUserForm {
    user_name: String,
    policy: String,
    user_name_error: Option<String>,
    password_error: Option<String>,
    other_error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/users.html", blocks = ["content"])]
struct UsersPage {
    layout: Layout,
    notice: Option<String>,
    users: Vec<UserRow>,
    next_page: Option<String>,
    can_create: bool,
    policy_choices: Vec<String>,
    form: CreateUserForm,
}
console_page!(UsersPage);

fn join_or_dash(items: impl IntoIterator<Item = String>) -> String {
    let joined = items.into_iter().collect::<Vec<_>>().join(", ");
    if joined.is_empty() {
        "—".into()
    } else {
        joined
    }
}

/// Names of all policies, when the caller may list them (for attach menus).
async fn policy_names(state: &AppState, caller: &Caller) -> Result<Vec<String>, ConsoleError> {
    if !caller.can(Action::ListPolicies, &Resource::All) {
        return Ok(Vec::new());
    }
    let page = Page {
        next: None,
        max: Some(1000),
    };
    let listed = iam::list_policies(&state.services, caller, PolicyScope::All, &page).await?;
    Ok(listed.items.into_iter().map(|p| p.policy_name).collect())
}

async fn users_page(
    state: &AppState,
    user: &SignedIn,
    flash: &Flash,
    form: CreateUserForm,
) -> Result<UsersPage, ConsoleError> {
    let page = Page {
        next: flash.next.clone(),
        max: Some(100),
    };
    let listed = iam::list_users(&state.services, &user.caller, &page).await?;
    let can_create = user.caller.can(Action::CreateUser, &Resource::user("*"));
    Ok(UsersPage {
        layout: Layout::signed_in(user, Section::Admin),
        notice: notice(flash.done.as_deref()),
        users: listed
            .items
            .into_iter()
            .map(|d| UserRow {
                link: segment(&d.user.user_name),
                name: d.user.user_name,
                enabled: d.user.enabled,
                groups: join_or_dash(d.groups),
                policies: join_or_dash(d.policies.into_iter().map(|p| p.policy_name)),
                last_sign_in: d
                    .user
                    .last_sign_in_at
                    .map_or_else(|| "Never".into(), display_time),
            })
            .collect(),
        next_page: listed.next.map(|n| segment(&n)),
        can_create,
        policy_choices: if can_create {
            policy_names(state, &user.caller).await?
        } else {
            Vec::new()
        },
        form,
    })
}

async fn users(
    state: web::Data<AppState>,
    user: SignedIn,
    flash: web::Query<Flash>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let page = users_page(&state, &user, &flash, CreateUserForm::default()).await?;
    render_with_status(hx, &page, StatusCode::OK)
}

#[derive(Deserialize)]
struct NewUser {
    #[serde(default)]
    user_name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    policy: String,
}

async fn create_user(
    state: web::Data<AppState>,
    form: CsrfForm<NewUser>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, form } = form;
    let s = &state.services;
    let password = Some(form.password.as_str()).filter(|p| !p.is_empty());
    let mut result = iam::create_user(s, &user.caller, form.user_name.trim(), password)
        .await
        .map(|_| ());
    if result.is_ok() && !form.policy.is_empty() {
        result = iam::change_attachment(
            s,
            &user.caller,
            Holder::User,
            form.user_name.trim(),
            &form.policy,
            true,
        )
        .await;
    }
    match result {
        Ok(()) => Ok(see_other(&format!(
            "/admin/users/{}?done=created",
            segment(form.user_name.trim())
        ))),
        Err(e @ (AppError::Validation { .. } | AppError::EntityAlreadyExists(_))) => {
            let mut again = CreateUserForm {
                user_name: form.user_name.clone(),
                policy: form.policy.clone(),
                ..Default::default()
            };
            match e {
                AppError::Validation { field, message } if field == "password" => {
                    again.password_error = Some(message)
                }
                AppError::Validation { field, message } if field == "userName" => {
                    again.user_name_error = Some(message)
                }
                AppError::EntityAlreadyExists(message) => again.user_name_error = Some(message),
                other => again.other_error = Some(other.public_message()),
            }
            let page = users_page(&state, &user, &Flash::default(), again).await?;
            render_with_status(hx, &page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

struct NamedLink {
    name: String,
    link: String,
    can_remove: bool,
}

struct PolicyLink {
    name: String,
    link: String,
    managed: bool,
}

struct MatchView {
    policy: String,
    statement: String,
    effect: String,
}

struct SimulationView {
    action: String,
    resource: String,
    decision: &'static str,
    matched: Vec<MatchView>,
}

#[derive(Template)]
#[template(path = "admin/user.html", blocks = ["content"])]
struct UserPage {
    layout: Layout,
    name: String,
    link: String,
    arn: String,
    enabled: bool,
    has_password: bool,
    created: String,
    last_sign_in: String,
    notice: Option<String>,
    error: Option<String>,
    password_error: Option<String>,
    groups: Vec<NamedLink>,
    group_choices: Vec<String>,
    policies: Vec<PolicyLink>,
    policy_choices: Vec<String>,
    can_update: bool,
    can_delete: bool,
    can_reset: bool,
    can_end_sessions: bool,
    can_attach: bool,
    can_detach: bool,
    can_simulate: bool,
    action_choices: Vec<&'static str>,
    sim_action: String,
    sim_resource: String,
    sim_error: Option<String>,
    simulation: Option<SimulationView>,
}
console_page!(UserPage);

#[derive(Deserialize, Default)]
struct UserQuery {
    done: Option<String>,
    action: Option<String>,
    resource: Option<String>,
}

#[derive(Default)]
struct UserExtras {
    error: Option<String>,
    password_error: Option<String>,
}

async fn user_page(
    state: &AppState,
    user: &SignedIn,
    name: &str,
    query: &UserQuery,
    extras: UserExtras,
) -> Result<UserPage, ConsoleError> {
    let s = &state.services;
    let c = &user.caller;
    let details = iam::get_user(s, c, Some(name)).await?;
    let name = details.user.user_name.clone();
    let me = Resource::user(&name);
    let all_groups: Vec<String> = if c.can(Action::ListGroups, &Resource::All) {
        let listed = iam::list_groups(
            s,
            c,
            &Page {
                next: None,
                max: Some(1000),
            },
        )
        .await?;
        listed
            .items
            .into_iter()
            .map(|g| g.group.group_name)
            .collect()
    } else {
        Vec::new()
    };
    let group_choices = all_groups
        .into_iter()
        .filter(|g| {
            !details.groups.contains(g) && c.can(Action::AddUserToGroup, &Resource::group(g))
        })
        .collect();
    let attached: Vec<String> = details
        .policies
        .iter()
        .map(|p| p.policy_name.clone())
        .collect();
    let policy_choices = policy_names(state, c)
        .await?
        .into_iter()
        .filter(|p| !attached.contains(p))
        .collect();

    let can_simulate = c.can(Action::SimulatePrincipalPolicy, &me);
    let sim_action = query
        .action
        .clone()
        .unwrap_or_else(|| Action::GetPipeline.as_str().to_string());
    let sim_resource = query.resource.clone().unwrap_or_default();
    let (simulation, sim_error) = match (&query.action, can_simulate) {
        (Some(action), true) => {
            let resources: Vec<String> = Some(sim_resource.trim().to_string())
                .filter(|r| !r.is_empty())
                .into_iter()
                .collect();
            match iam::simulate(s, c, &name, std::slice::from_ref(action), &resources).await {
                Ok(mut results) => {
                    let r = results.remove(0);
                    (
                        Some(SimulationView {
                            action: r.action,
                            resource: r.resource,
                            decision: r.decision,
                            matched: r
                                .matched
                                .into_iter()
                                .map(|m| MatchView {
                                    policy: m.policy_name,
                                    statement: m
                                        .sid
                                        .unwrap_or_else(|| format!("#{}", m.statement_index + 1)),
                                    effect: m.effect.to_string(),
                                })
                                .collect(),
                        }),
                        None,
                    )
                }
                Err(AppError::Validation { message, .. }) => (None, Some(message)),
                Err(e) => return Err(e.into()),
            }
        }
        _ => (None, None),
    };

    Ok(UserPage {
        layout: Layout::signed_in(user, Section::Admin),
        link: segment(&name),
        arn: me.to_string(),
        enabled: details.user.enabled,
        has_password: details.user.has_password,
        created: display_time(details.user.created_at),
        last_sign_in: details
            .user
            .last_sign_in_at
            .map_or_else(|| "Never".into(), display_time),
        notice: notice(query.done.as_deref()),
        error: extras.error,
        password_error: extras.password_error,
        groups: details
            .groups
            .iter()
            .map(|g| NamedLink {
                name: g.clone(),
                link: segment(g),
                can_remove: c.can(Action::RemoveUserFromGroup, &Resource::group(g)),
            })
            .collect(),
        group_choices,
        policies: details
            .policies
            .iter()
            .map(|p| PolicyLink {
                name: p.policy_name.clone(),
                link: segment(&p.policy_name),
                managed: p.managed,
            })
            .collect(),
        policy_choices,
        can_update: c.can(Action::UpdateUser, &me),
        can_delete: c.can(Action::DeleteUser, &me),
        can_reset: c.can(Action::ResetPassword, &me),
        can_end_sessions: c.can(Action::DeleteSession, &me),
        can_attach: c.can(Action::AttachUserPolicy, &me),
        can_detach: c.can(Action::DetachUserPolicy, &me),
        can_simulate,
        action_choices: Action::ALL.iter().map(|a| a.as_str()).collect(),
        sim_action,
        sim_resource,
        sim_error,
        simulation,
        name,
    })
}

async fn user(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    query: web::Query<UserQuery>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let page = user_page(&state, &user, &path, &query, UserExtras::default()).await?;
    render_with_status(hx, &page, StatusCode::OK)
}

/// Shows the user page again with an error for a failed form, or goes on after success.
async fn after_user_action(
    state: &AppState,
    user: &SignedIn,
    name: &str,
    result: Result<(), AppError>,
    done: &str,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    match result {
        Ok(()) => Ok(see_other(&format!(
            "/admin/users/{}?done={done}",
            segment(name)
        ))),
        Err(
            e @ (AppError::Validation { .. }
            | AppError::NoSuchEntity(_)
            | AppError::EntityAlreadyExists(_)
            | AppError::DeleteConflict(_)),
        ) => {
            let extras = match e {
                AppError::Validation { field, message } if field == "password" => UserExtras {
                    password_error: Some(message),
                    ..Default::default()
                },
                other => UserExtras {
                    error: Some(other.public_message()),
                    ..Default::default()
                },
            };
            let page = user_page(state, user, name, &UserQuery::default(), extras).await?;
            render_with_status(hx, &page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct EnabledForm {
    enabled: String,
}

async fn set_enabled(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<EnabledForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let enabled = form.form.enabled == "true";
    let result = iam::update_user(&state.services, &form.user.caller, &path, Some(enabled))
        .await
        .map(|_| ());
    after_user_action(
        &state,
        &form.user,
        &path,
        result,
        if enabled { "enabled" } else { "disabled" },
        hx,
    )
    .await
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    password: String,
}

async fn reset_password(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<PasswordForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let result = iam::reset_password(
        &state.services,
        &form.user.caller,
        &path,
        &form.form.password,
    )
    .await;
    after_user_action(&state, &form.user, &path, result, "password", hx).await
}

#[derive(Deserialize)]
struct Empty {}

async fn delete_user(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<Empty>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    match iam::delete_user(&state.services, &form.user.caller, &path).await {
        Ok(()) => Ok(see_other("/admin/users?done=deleted")),
        Err(e) => after_user_action(&state, &form.user, &path, Err(e), "", hx).await,
    }
}

async fn end_sessions(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<Empty>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let result = iam::delete_sessions(&state.services, &form.user.caller, Some(&path), None)
        .await
        .map(|_| ());
    after_user_action(&state, &form.user, &path, result, "sessions", hx).await
}

#[derive(Deserialize)]
struct ChangeForm {
    #[serde(default)]
    group: String,
    #[serde(default)]
    policy: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    op: String,
}

async fn user_groups(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<ChangeForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let add = form.form.op == "add";
    let result = iam::change_membership(
        &state.services,
        &form.user.caller,
        &form.form.group,
        &path,
        add,
    )
    .await;
    after_user_action(&state, &form.user, &path, result, "groups", hx).await
}

async fn user_policies(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<ChangeForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let attach = form.form.op == "attach";
    let result = iam::change_attachment(
        &state.services,
        &form.user.caller,
        Holder::User,
        &path,
        &form.form.policy,
        attach,
    )
    .await;
    after_user_action(&state, &form.user, &path, result, "policies", hx).await
}

// ---- Groups ---------------------------------------------------------------------------------

struct GroupRow {
    name: String,
    link: String,
    members: String,
    policies: String,
}

#[derive(Template)]
#[template(path = "admin/groups.html", blocks = ["content"])]
struct GroupsPage {
    layout: Layout,
    notice: Option<String>,
    groups: Vec<GroupRow>,
    next_page: Option<String>,
    can_create: bool,
    form_name: String,
    form_error: Option<String>,
}
console_page!(GroupsPage);

async fn groups_page(
    state: &AppState,
    user: &SignedIn,
    flash: &Flash,
    form_name: String,
    form_error: Option<String>,
) -> Result<GroupsPage, ConsoleError> {
    let page = Page {
        next: flash.next.clone(),
        max: Some(100),
    };
    let listed = iam::list_groups(&state.services, &user.caller, &page).await?;
    Ok(GroupsPage {
        layout: Layout::signed_in(user, Section::Admin),
        notice: notice(flash.done.as_deref()),
        groups: listed
            .items
            .into_iter()
            .map(|g| GroupRow {
                link: segment(&g.group.group_name),
                name: g.group.group_name,
                members: join_or_dash(g.members),
                policies: join_or_dash(g.policies.into_iter().map(|p| p.policy_name)),
            })
            .collect(),
        next_page: listed.next.map(|n| segment(&n)),
        can_create: user.caller.can(Action::CreateGroup, &Resource::group("*")),
        form_name,
        form_error,
    })
}

async fn groups(
    state: web::Data<AppState>,
    user: SignedIn,
    flash: web::Query<Flash>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let page = groups_page(&state, &user, &flash, String::new(), None).await?;
    render_with_status(hx, &page, StatusCode::OK)
}

#[derive(Deserialize)]
struct NewGroup {
    #[serde(default)]
    group_name: String,
}

async fn create_group(
    state: web::Data<AppState>,
    form: CsrfForm<NewGroup>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, form } = form;
    let name = form.group_name.trim().to_string();
    match iam::create_group(&state.services, &user.caller, &name).await {
        Ok(_) => Ok(see_other(&format!(
            "/admin/groups/{}?done=created",
            segment(&name)
        ))),
        Err(e @ (AppError::Validation { .. } | AppError::EntityAlreadyExists(_))) => {
            let message = match e {
                AppError::Validation { message, .. } => message,
                other => other.public_message(),
            };
            let page = groups_page(
                &state,
                &user,
                &Flash::default(),
                form.group_name,
                Some(message),
            )
            .await?;
            render_with_status(hx, &page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

struct MemberLink {
    name: String,
    link: String,
}

#[derive(Template)]
#[template(path = "admin/group.html", blocks = ["content"])]
struct GroupPage {
    layout: Layout,
    name: String,
    link: String,
    arn: String,
    notice: Option<String>,
    error: Option<String>,
    members: Vec<MemberLink>,
    policies: Vec<PolicyLink>,
    policy_choices: Vec<String>,
    can_add: bool,
    can_remove: bool,
    can_attach: bool,
    can_detach: bool,
    can_delete: bool,
}
console_page!(GroupPage);

async fn group_page(
    state: &AppState,
    user: &SignedIn,
    name: &str,
    done: Option<&str>,
    error: Option<String>,
) -> Result<GroupPage, ConsoleError> {
    let c = &user.caller;
    let details = iam::get_group(&state.services, c, name).await?;
    let name = details.group.group_name.clone();
    let me = Resource::group(&name);
    let attached: Vec<String> = details
        .policies
        .iter()
        .map(|p| p.policy_name.clone())
        .collect();
    Ok(GroupPage {
        layout: Layout::signed_in(user, Section::Admin),
        link: segment(&name),
        arn: me.to_string(),
        notice: notice(done),
        error,
        members: details
            .members
            .iter()
            .map(|m| MemberLink {
                name: m.clone(),
                link: segment(m),
            })
            .collect(),
        policies: details
            .policies
            .iter()
            .map(|p| PolicyLink {
                name: p.policy_name.clone(),
                link: segment(&p.policy_name),
                managed: p.managed,
            })
            .collect(),
        policy_choices: policy_names(state, c)
            .await?
            .into_iter()
            .filter(|p| !attached.contains(p))
            .collect(),
        can_add: c.can(Action::AddUserToGroup, &me),
        can_remove: c.can(Action::RemoveUserFromGroup, &me),
        can_attach: c.can(Action::AttachGroupPolicy, &me),
        can_detach: c.can(Action::DetachGroupPolicy, &me),
        can_delete: c.can(Action::DeleteGroup, &me),
        name,
    })
}

async fn group(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    flash: web::Query<Flash>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let page = group_page(&state, &user, &path, flash.done.as_deref(), None).await?;
    render_with_status(hx, &page, StatusCode::OK)
}

async fn after_group_action(
    state: &AppState,
    user: &SignedIn,
    name: &str,
    result: Result<(), AppError>,
    done: &str,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    match result {
        Ok(()) => Ok(see_other(&format!(
            "/admin/groups/{}?done={done}",
            segment(name)
        ))),
        Err(
            e @ (AppError::Validation { .. }
            | AppError::NoSuchEntity(_)
            | AppError::DeleteConflict(_)
            | AppError::EntityAlreadyExists(_)),
        ) => {
            let page = group_page(state, user, name, None, Some(e.public_message())).await?;
            render_with_status(hx, &page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

async fn group_members(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<ChangeForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let add = form.form.op == "add";
    let result = iam::change_membership(
        &state.services,
        &form.user.caller,
        &path,
        form.form.user.trim(),
        add,
    )
    .await;
    after_group_action(&state, &form.user, &path, result, "members", hx).await
}

async fn group_policies(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<ChangeForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let attach = form.form.op == "attach";
    let result = iam::change_attachment(
        &state.services,
        &form.user.caller,
        Holder::Group,
        &path,
        &form.form.policy,
        attach,
    )
    .await;
    after_group_action(&state, &form.user, &path, result, "policies", hx).await
}

async fn delete_group(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<Empty>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    match iam::delete_group(&state.services, &form.user.caller, &path).await {
        Ok(()) => Ok(see_other("/admin/groups?done=deleted")),
        Err(e) => after_group_action(&state, &form.user, &path, Err(e), "", hx).await,
    }
}

// ---- Policies -------------------------------------------------------------------------------

struct PolicyRow {
    name: String,
    link: String,
    managed: bool,
    description: String,
    attachments: i64,
}

#[derive(Template)]
#[template(path = "admin/policies.html", blocks = ["content"])]
struct PoliciesPage {
    layout: Layout,
    notice: Option<String>,
    policies: Vec<PolicyRow>,
    next_page: Option<String>,
    can_create: bool,
}
console_page!(PoliciesPage);

async fn policies(
    state: web::Data<AppState>,
    user: SignedIn,
    flash: web::Query<Flash>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let page = Page {
        next: flash.next.clone(),
        max: Some(100),
    };
    let listed = iam::list_policies(&state.services, &user.caller, PolicyScope::All, &page).await?;
    let page = PoliciesPage {
        layout: Layout::signed_in(&user, Section::Admin),
        notice: notice(flash.done.as_deref()),
        policies: listed
            .items
            .into_iter()
            .map(|p| PolicyRow {
                link: segment(&p.policy_name),
                name: p.policy_name,
                managed: p.managed,
                description: p.description,
                attachments: p.attachment_count,
            })
            .collect(),
        next_page: listed.next.map(|n| segment(&n)),
        can_create: user
            .caller
            .can(Action::CreatePolicy, &Resource::policy("*")),
    };
    render_with_status(hx, &page, StatusCode::OK)
}

#[derive(Template)]
#[template(path = "admin/policy.html", blocks = ["content"])]
struct PolicyPage {
    layout: Layout,
    is_new: bool,
    name: String,
    link: String,
    managed: bool,
    editable: bool,
    version: i32,
    attachments: i64,
    description: String,
    document: String,
    notice: Option<String>,
    error: Option<String>,
    name_error: Option<String>,
    /// (path, message) pairs, shown next to the document.
    document_errors: Vec<(String, String)>,
    can_delete: bool,
}
console_page!(PolicyPage);

const NEW_POLICY_TEMPLATE: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ReadPipelines",
      "Effect": "Allow",
      "Action": ["codepipeline:Get*", "codepipeline:List*"],
      "Resource": "*"
    }
  ]
}"#;

fn document_errors(message: &str) -> Vec<(String, String)> {
    // PolicyErrors display as "path: message; path: message"; a message without a path stands alone.
    message
        .split("; ")
        .map(|part| match part.split_once(": ") {
            Some((path, msg)) if !path.contains(' ') => (path.to_string(), msg.to_string()),
            _ => (String::new(), part.to_string()),
        })
        .collect()
}

async fn new_policy(user: SignedIn, hx: HxRequest) -> Result<HttpResponse, ConsoleError> {
    let page = PolicyPage {
        layout: Layout::signed_in(&user, Section::Admin),
        is_new: true,
        name: String::new(),
        link: String::new(),
        managed: false,
        editable: true,
        version: 0,
        attachments: 0,
        description: String::new(),
        document: NEW_POLICY_TEMPLATE.to_string(),
        notice: None,
        error: None,
        name_error: None,
        document_errors: Vec::new(),
        can_delete: false,
    };
    render_with_status(hx, &page, StatusCode::OK)
}

#[derive(Deserialize)]
struct PolicyForm {
    #[serde(default)]
    policy_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    document: String,
    #[serde(default)]
    version: String,
}

async fn create_policy(
    state: web::Data<AppState>,
    form: CsrfForm<PolicyForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, form } = form;
    let name = form.policy_name.trim().to_string();
    match iam::create_policy(
        &state.services,
        &user.caller,
        &name,
        &form.document,
        form.description.trim(),
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!(
            "/admin/policies/{}?done=created",
            segment(&name)
        ))),
        Err(e @ (AppError::Validation { .. } | AppError::EntityAlreadyExists(_))) => {
            let mut page = PolicyPage {
                layout: Layout::signed_in(&user, Section::Admin),
                is_new: true,
                name: form.policy_name.clone(),
                link: String::new(),
                managed: false,
                editable: true,
                version: 0,
                attachments: 0,
                description: form.description.clone(),
                document: form.document.clone(),
                notice: None,
                error: None,
                name_error: None,
                document_errors: Vec::new(),
                can_delete: false,
            };
            match e {
                AppError::Validation { field, message } if field == "policyDocument" => {
                    page.document_errors = document_errors(&message)
                }
                AppError::Validation { field, message } if field == "policyName" => {
                    page.name_error = Some(message)
                }
                AppError::EntityAlreadyExists(message) => page.name_error = Some(message),
                other => page.error = Some(other.public_message()),
            }
            render_with_status(hx, &page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

async fn policy_page(
    state: &AppState,
    user: &SignedIn,
    name: &str,
) -> Result<PolicyPage, ConsoleError> {
    let c = &user.caller;
    let p = iam::get_policy(&state.services, c, name).await?;
    let me = Resource::policy(&p.policy_name);
    Ok(PolicyPage {
        layout: Layout::signed_in(user, Section::Admin),
        is_new: false,
        link: segment(&p.policy_name),
        editable: !p.managed && c.can(Action::UpdatePolicy, &me),
        can_delete: !p.managed && c.can(Action::DeletePolicy, &me),
        name: p.policy_name,
        managed: p.managed,
        version: p.version,
        attachments: p.attachment_count,
        description: p.description,
        document: p.document,
        notice: None,
        error: None,
        name_error: None,
        document_errors: Vec::new(),
    })
}

async fn policy(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    flash: web::Query<Flash>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let mut page = policy_page(&state, &user, &path).await?;
    page.notice = notice(flash.done.as_deref());
    render_with_status(hx, &page, StatusCode::OK)
}

async fn save_policy(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<PolicyForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, form } = form;
    let version = form.version.parse::<i32>().ok();
    match iam::update_policy(
        &state.services,
        &user.caller,
        &path,
        &form.document,
        Some(form.description.trim()),
        version,
    )
    .await
    {
        Ok(p) => Ok(see_other(&format!(
            "/admin/policies/{}?done=saved",
            segment(&p.policy_name)
        ))),
        Err(AppError::Validation { field, message }) => {
            let mut page = policy_page(&state, &user, &path).await?;
            // Keep what the user typed.
            page.description = form.description.clone();
            page.document = form.document.clone();
            if field == "policyDocument" {
                page.document_errors = document_errors(&message);
            } else {
                page.error = Some(message);
            }
            render_with_status(hx, &page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

async fn delete_policy(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<Empty>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    match iam::delete_policy(&state.services, &form.user.caller, &path).await {
        Ok(()) => Ok(see_other("/admin/policies?done=deleted")),
        Err(e @ (AppError::Validation { .. } | AppError::DeleteConflict(_))) => {
            let mut page = policy_page(&state, &form.user, &path).await?;
            page.error = Some(e.public_message());
            render_with_status(hx, &page, StatusCode::CONFLICT)
        }
        Err(e) => Err(e.into()),
    }
}

// ---- Audit log ------------------------------------------------------------------------------

#[derive(Deserialize, Default, Clone)]
struct AuditQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    next: Option<String>,
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, String> {
        let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let time = |label: &str, s: &str| -> Result<Option<time::OffsetDateTime>, String> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            let formats = [
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]"),
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
            ];
            formats
                .iter()
                .find_map(|f| PrimitiveDateTime::parse(s, f).ok())
                .map(|t| Some(t.assume_utc()))
                .ok_or_else(|| format!("{label}: use the form 2026-11-27T10:00"))
        };
        Ok(AuditFilter {
            user_name: text(&self.user),
            event_name: text(&self.event),
            resource_prefix: text(&self.resource),
            outcome: text(&self.outcome),
            start_time: time("From", &self.from)?,
            end_time: time("To", &self.to)?,
        })
    }

    /// The filters as a query string (for the export link and paging).
    fn query_string(&self) -> String {
        serde_urlencoded::to_string([
            ("user", &self.user),
            ("event", &self.event),
            ("resource", &self.resource),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("to", &self.to),
        ])
        .unwrap_or_default()
    }
}

struct EventRow {
    time: String,
    user: String,
    event: String,
    resource: String,
    outcome: String,
    success: bool,
    source: String,
}

#[derive(Template)]
#[template(path = "admin/audit.html", blocks = ["content"])]
struct AuditPage {
    layout: Layout,
    filter: AuditQuery,
    outcomes: Vec<(&'static str, &'static str)>,
    query: String,
    events: Vec<EventRow>,
    next_link: Option<String>,
    error: Option<String>,
}
console_page!(AuditPage);

const OUTCOMES: [(&str, &str); 5] = [
    ("", "Any"),
    ("success", "Success"),
    ("failure", "Any failure"),
    ("AccessDenied", "AccessDenied"),
    ("ValidationException", "ValidationException"),
];

async fn audit(
    state: web::Data<AppState>,
    user: SignedIn,
    query: web::Query<AuditQuery>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let query = query.into_inner();
    let mut page = AuditPage {
        layout: Layout::signed_in(&user, Section::Admin),
        query: query.query_string(),
        outcomes: OUTCOMES.to_vec(),
        events: Vec::new(),
        next_link: None,
        error: None,
        filter: query.clone(),
    };
    let filter = match query.filter() {
        Ok(f) => f,
        Err(message) => {
            // Refuse through the operation first, so that a user without the right sees 403.
            iam::lookup_audit_events(
                &state.services,
                &user.caller,
                &AuditFilter::default(),
                &Page {
                    next: None,
                    max: Some(1),
                },
            )
            .await?;
            page.error = Some(message);
            return render_with_status(hx, &page, StatusCode::BAD_REQUEST);
        }
    };
    let listed = iam::lookup_audit_events(
        &state.services,
        &user.caller,
        &filter,
        &Page {
            next: query.next.clone(),
            max: Some(100),
        },
    )
    .await?;
    page.events = listed
        .items
        .into_iter()
        .map(|e| EventRow {
            time: display_time(e.event_time),
            user: e.user_name.unwrap_or_else(|| "—".into()),
            success: e.outcome == crate::audit::SUCCESS,
            event: e.event_name,
            resource: e.resource_arn.unwrap_or_default(),
            outcome: e.outcome,
            source: e.source_ip.unwrap_or_default(),
        })
        .collect();
    page.next_link = listed
        .next
        .map(|n| format!("/admin/audit?{}&next={n}", page.query));
    render_with_status(hx, &page, StatusCode::OK)
}

/// The filtered events as JSON Lines, newest first (at most 100,000 events per export).
async fn audit_export(
    state: web::Data<AppState>,
    user: SignedIn,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let filter = query.filter().map_err(ConsoleError::BadRequest)?;
    let mut body = String::new();
    let mut next = None;
    for _ in 0..100 {
        let page = iam::lookup_audit_events(
            &state.services,
            &user.caller,
            &filter,
            &Page {
                next: next.clone(),
                max: Some(1000),
            },
        )
        .await?;
        for e in &page.items {
            let line = serde_json::json!({
                "eventId": e.event_id,
                "eventTime": e.event_time.format(&Rfc3339).unwrap_or_default(),
                "userName": e.user_name,
                "tokenId": e.token_id,
                "sourceIpAddress": e.source_ip,
                "userAgent": e.user_agent,
                "eventName": e.event_name,
                "resourceArn": e.resource_arn,
                "requestParameters": e.request_parameters,
                "outcome": e.outcome,
                "errorMessage": e.error_message,
                "requestId": e.request_id,
            });
            body.push_str(&line.to_string());
            body.push('\n');
        }
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"sluice-audit.jsonl\"",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}
