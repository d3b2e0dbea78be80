//! `/admin/groups`: the list, a group's page, and its forms.

use super::*;

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
                members: shown_or_hidden(g.members),
                policies: shown_or_hidden(
                    g.policies
                        .map(|ps| ps.into_iter().map(|p| p.policy_name).collect()),
                ),
            })
            .collect(),
        next_page: listed.next.map(|n| segment(&n)),
        can_create: user.caller.can(Action::CreateGroup, &Resource::group("*")),
        form_name,
        form_error,
    })
}

pub(super) async fn groups(
    state: web::Data<AppState>,
    user: SignedIn,
    flash: web::Query<Flash>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let page = groups_page(&state, &user, &flash, String::new(), None).await?;
    render_with_status(hx, &page, StatusCode::OK)
}

#[derive(Deserialize)]
pub(super) struct NewGroup {
    #[serde(default)]
    group_name: String,
}

pub(super) async fn create_group(
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
    can_list_policies: bool,
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
        .flatten()
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
            .flatten()
            .map(|m| MemberLink {
                name: m.clone(),
                link: segment(m),
            })
            .collect(),
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

pub(super) async fn group(
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

pub(super) async fn group_members(
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

pub(super) async fn group_policies(
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

pub(super) async fn delete_group(
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
