//! `/admin/connections`: the stored credentials Git sources clone with, a token (HTTPS) or an
//! SSH private key. Secrets are typed once and never shown again (not even masked by length);
//! an SSH key connection shows its public key, to install on the Git server. A connection a
//! pipeline names is not deleted.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::super::{
    ConsoleError, Layout, Section, console_page, display_time, render_with_status, see_other,
    segment,
};
use crate::access::{Action, Resource};
use crate::error::AppError;
use crate::ops::Page;
use crate::ops::connections::{self, ConnectionName, Credentials, PROVIDER_TYPES, Replacement};
use crate::web::AppState;
use crate::web::auth::{CsrfForm, SignedIn};
use crate::web::htmx::HxRequest;

struct Row {
    name: String,
    link: String,
    provider_type: String,
    username: String,
    host: String,
    has_ca: bool,
    /// Of an SSH key connection.
    ssh: Option<SshShown>,
    created_by: String,
    updated: String,
    may_update: bool,
    may_delete: bool,
}

struct SshShown {
    public_key: String,
    fingerprint: String,
    known_hosts: String,
}

/// The create form as typed (never the token or the private key).
#[derive(Default)]
struct NewForm {
    name: String,
    provider_type: String,
    username: String,
    ca_certificate: String,
    /// `Token` or `SshKey`: which credential fields the form shows.
    auth_type: String,
    known_hosts: String,
    host: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/connections.html", blocks = ["content"])]
struct ConnectionsPage {
    layout: Layout,
    rows: Vec<Row>,
    can_create: bool,
    types: &'static [&'static str],
    form: NewForm,
    notice: Option<String>,
    error: Option<String>,
}
console_page!(ConnectionsPage);

#[derive(Deserialize, Default)]
pub(super) struct Shown {
    done: Option<String>,
}

async fn page(
    state: &AppState,
    user: &SignedIn,
    form: NewForm,
    notice: Option<String>,
    error: Option<String>,
) -> Result<ConnectionsPage, ConsoleError> {
    let c = &user.caller;
    let listed = connections::list_connections(
        &state.services,
        c,
        None,
        &Page {
            next: None,
            max: Some(1000),
        },
    )
    .await?;
    Ok(ConnectionsPage {
        layout: Layout::signed_in(user, Section::Admin),
        rows: listed
            .items
            .into_iter()
            .map(|v| {
                let resource = Resource::connection(&v.name);
                Row {
                    link: segment(&v.name),
                    may_update: c.can(Action::UpdateConnection, &resource),
                    may_delete: c.can(Action::DeleteConnection, &resource),
                    name: v.name,
                    provider_type: v.provider_type,
                    username: v.username,
                    host: v.host.unwrap_or_else(|| "any".into()),
                    has_ca: v.has_ca_certificate,
                    ssh: (v.auth_type == "SshKey").then(|| SshShown {
                        public_key: v.public_key.unwrap_or_default(),
                        fingerprint: v.fingerprint.unwrap_or_default(),
                        known_hosts: v.known_hosts.unwrap_or_default(),
                    }),
                    created_by: v.created_by,
                    updated: display_time(v.updated_at),
                }
            })
            .collect(),
        can_create: c.can(Action::CreateConnection, &Resource::All)
            || c.can(Action::CreateConnection, &Resource::connection("*")),
        types: PROVIDER_TYPES,
        form,
        notice,
        error,
    })
}

pub(super) async fn list(
    state: web::Data<AppState>,
    user: SignedIn,
    shown: web::Query<Shown>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let notice = match shown.done.as_deref() {
        Some("created") => Some("The connection is stored; its secret is not shown again.".into()),
        Some("updated") => Some("The connection's credentials are replaced.".into()),
        Some("deleted") => Some("The connection is deleted.".into()),
        _ => None,
    };
    let page = page(&state, &user, NewForm::default(), notice, None).await?;
    render_with_status(hx, &page, StatusCode::OK)
}

#[derive(Deserialize)]
pub(super) struct Create {
    #[serde(default)]
    name: String,
    #[serde(default)]
    provider_type: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    ca_certificate: String,
    #[serde(default)]
    auth_type: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    known_hosts: String,
    #[serde(default)]
    host: String,
}

pub(super) async fn create(
    state: web::Data<AppState>,
    form: CsrfForm<Create>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, form } = form;
    let typed = || NewForm {
        name: form.name.clone(),
        provider_type: form.provider_type.clone(),
        username: form.username.clone(),
        ca_certificate: form.ca_certificate.clone(),
        auth_type: form.auth_type.clone(),
        known_hosts: form.known_hosts.clone(),
        host: form.host.clone(),
        error: None,
    };
    let result = async {
        let name = ConnectionName::parse(form.name.trim())
            .map_err(|m| AppError::validation("ConnectionName", m))?;
        // The chosen credential counts; what was typed in the other one's hidden fields does not.
        let credentials = if form.auth_type == "SshKey" {
            Credentials::ssh_key(form.username.trim(), &form.private_key, &form.known_hosts)?
        } else {
            let ca = Some(form.ca_certificate.as_str()).filter(|c| !c.trim().is_empty());
            Credentials::parse(form.username.trim(), &form.token, ca)?
        }
        .bound_to(Some(form.host.as_str()))?;
        connections::create_connection(
            &state.services,
            &user.caller,
            name,
            &form.provider_type,
            credentials,
        )
        .await
    }
    .await;
    match result {
        Ok(_) => Ok(see_other("/admin/connections?done=created")),
        Err(
            e @ (AppError::Validation { .. }
            | AppError::EntityAlreadyExists(_)
            | AppError::Rejected { .. }),
        ) => {
            let mut again = typed();
            again.error = Some(e.public_message());
            let page = page(&state, &user, again, None, None).await?;
            render_with_status(hx, &page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

/// A row's replace form: a token, or an SSH key and/or its known hosts (a blank field keeps
/// what is stored).
#[derive(Deserialize)]
pub(super) struct Update {
    #[serde(default)]
    token: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    known_hosts: String,
}

pub(super) async fn update(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<Update>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, form } = form;
    let result = async {
        let name =
            ConnectionName::parse(&path).map_err(|m| AppError::validation("ConnectionName", m))?;
        // The username and certificate stay; only the secret (and host keys) are replaced.
        fn given(text: &str) -> Option<&str> {
            Some(text).filter(|t| !t.trim().is_empty())
        }
        let change = Replacement {
            token: given(&form.token),
            private_key: given(&form.private_key),
            known_hosts: given(&form.known_hosts),
            ..Replacement::default()
        };
        connections::update_connection(&state.services, &user.caller, &name, change).await
    }
    .await;
    match result {
        Ok(_) => Ok(see_other("/admin/connections?done=updated")),
        Err(e @ (AppError::Validation { .. } | AppError::Rejected { .. })) => {
            let page = page(
                &state,
                &user,
                NewForm::default(),
                None,
                Some(e.public_message()),
            )
            .await?;
            render_with_status(hx, &page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct Empty {}

pub(super) async fn delete(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<Empty>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, .. } = form;
    let result = async {
        let name =
            ConnectionName::parse(&path).map_err(|m| AppError::validation("ConnectionName", m))?;
        connections::delete_connection(&state.services, &user.caller, &name).await
    }
    .await;
    match result {
        Ok(()) => Ok(see_other("/admin/connections?done=deleted")),
        Err(e @ (AppError::Validation { .. } | AppError::Rejected { .. })) => {
            let page = page(
                &state,
                &user,
                NewForm::default(),
                None,
                Some(e.public_message()),
            )
            .await?;
            render_with_status(hx, &page, StatusCode::CONFLICT)
        }
        Err(e) => Err(e.into()),
    }
}
