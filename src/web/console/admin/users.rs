//! `/admin/users`: the list, a user's page, and every form on it.

use super::*;

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
                groups: shown_or_hidden(d.groups),
                policies: shown_or_hidden(
                    d.policies
                        .map(|ps| ps.into_iter().map(|p| p.policy_name).collect()),
                ),
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

pub(super) async fn users(
    state: web::Data<AppState>,
    user: SignedIn,
    flash: web::Query<Flash>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let page = users_page(&state, &user, &flash, CreateUserForm::default()).await?;
    render_with_status(hx, &page, StatusCode::OK)
}

#[derive(Deserialize)]
pub(super) struct NewUser {
    #[serde(default)]
    user_name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    policy: String,
}

pub(super) async fn create_user(
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
    can_list_policies: bool,
    policy_choices: Vec<String>,
    throttle_failures: i64,
    throttle_last: Option<String>,
    throttled_addresses: Vec<String>,
    can_clear_throttle: bool,
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
pub(super) struct UserQuery {
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
    let member_of = details.groups.clone().unwrap_or_default();
    let throttle = iam::sign_in_throttle(s, c, &name).await?;
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
        .filter(|g| !member_of.contains(g) && c.can(Action::AddUserToGroup, &Resource::group(g)))
        .collect();
    let attached: Vec<String> = details
        .policies
        .iter()
        .flatten()
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
        groups: member_of
            .iter()
            .map(|g| NamedLink {
                name: g.clone(),
                link: segment(g),
                can_remove: c.can(Action::RemoveUserFromGroup, &Resource::group(g)),
            })
            .collect(),
        group_choices,
        can_list_policies: details.policies.is_some(),
        policies: details
            .policies
            .iter()
            .flatten()
            .map(|p| PolicyLink {
                name: p.policy_name.clone(),
                link: segment(&p.policy_name),
                managed: p.managed,
            })
            .collect(),
        throttle_failures: throttle.failures,
        throttle_last: throttle.last_failure.map(display_time),
        throttled_addresses: throttle.throttled_addresses,
        can_clear_throttle: c.can(Action::ClearSignInThrottle, &me),
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

pub(super) async fn user(
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
pub(super) struct EnabledForm {
    enabled: String,
}

pub(super) async fn set_enabled(
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
pub(super) struct PasswordForm {
    #[serde(default)]
    password: String,
    /// `on` when the administrator also revokes the user's API tokens.
    #[serde(default)]
    revoke_tokens: Option<String>,
}

pub(super) async fn reset_password(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<PasswordForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let revoke = form.form.revoke_tokens.is_some();
    let result = iam::reset_password(
        &state.services,
        &form.user.caller,
        &path,
        &form.form.password,
        revoke,
    )
    .await
    .map(|_| ());
    let done = if revoke {
        "password-tokens"
    } else {
        "password"
    };
    after_user_action(&state, &form.user, &path, result, done, hx).await
}

pub(super) async fn delete_user(
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

pub(super) async fn clear_throttle(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<Empty>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let result = iam::clear_sign_in_throttle(&state.services, &form.user.caller, &path)
        .await
        .map(|_| ());
    after_user_action(&state, &form.user, &path, result, "throttle", hx).await
}

pub(super) async fn end_sessions(
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

pub(super) async fn user_groups(
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

pub(super) async fn user_policies(
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
