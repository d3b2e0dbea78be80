//! `/admin/policies`: managed and customer policies, the JSON editor.

use super::*;

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

pub(super) async fn policies(
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

pub(super) async fn new_policy(
    state: web::Data<AppState>,
    user: SignedIn,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    // The form is for those who may create policies.
    super::super::require(&state, &user, Action::CreatePolicy, &Resource::policy("*")).await?;
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
pub(super) struct PolicyForm {
    #[serde(default)]
    policy_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    document: String,
    #[serde(default)]
    version: String,
}

pub(super) async fn create_policy(
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

pub(super) async fn policy(
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

pub(super) async fn save_policy(
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

pub(super) async fn delete_policy(
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
