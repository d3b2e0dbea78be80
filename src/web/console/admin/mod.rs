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

mod audit;
mod connections;
mod groups;
mod policies;
mod users;
mod workers;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::web::get_only("/admin", index))
        .service(crate::web::get_only("/admin/workers", workers::workers))
        .service(
            web::resource("/admin/connections")
                .route(web::get().to(connections::list))
                .route(web::head().to(connections::list))
                .route(web::post().to(connections::create))
                .default_service(web::to(super::method_not_allowed)),
        )
        .route(
            "/admin/connections/{name}/token",
            web::post().to(connections::update),
        )
        .route(
            "/admin/connections/{name}/delete",
            web::post().to(connections::delete),
        )
        .service(
            web::resource("/admin/users")
                .route(web::get().to(users::users))
                .route(web::post().to(users::create_user))
                .default_service(web::to(super::method_not_allowed)),
        )
        .service(crate::web::get_only("/admin/users/{name}", users::user))
        .route(
            "/admin/users/{name}/enabled",
            web::post().to(users::set_enabled),
        )
        .route(
            "/admin/users/{name}/password",
            web::post().to(users::reset_password),
        )
        .route(
            "/admin/users/{name}/delete",
            web::post().to(users::delete_user),
        )
        .route(
            "/admin/users/{name}/sessions/end",
            web::post().to(users::end_sessions),
        )
        .route(
            "/admin/users/{name}/groups",
            web::post().to(users::user_groups),
        )
        .route(
            "/admin/users/{name}/throttle/clear",
            web::post().to(users::clear_throttle),
        )
        .route(
            "/admin/users/{name}/policies",
            web::post().to(users::user_policies),
        )
        .service(
            web::resource("/admin/groups")
                .route(web::get().to(groups::groups))
                .route(web::post().to(groups::create_group))
                .default_service(web::to(super::method_not_allowed)),
        )
        .service(crate::web::get_only("/admin/groups/{name}", groups::group))
        .route(
            "/admin/groups/{name}/members",
            web::post().to(groups::group_members),
        )
        .route(
            "/admin/groups/{name}/policies",
            web::post().to(groups::group_policies),
        )
        .route(
            "/admin/groups/{name}/delete",
            web::post().to(groups::delete_group),
        )
        .service(crate::web::get_only("/admin/policies", policies::policies))
        .service(
            web::resource("/admin/policies/new")
                .route(web::get().to(policies::new_policy))
                .route(web::post().to(policies::create_policy))
                .default_service(web::to(super::method_not_allowed)),
        )
        .service(
            web::resource("/admin/policies/{name}")
                .route(web::get().to(policies::policy))
                .route(web::post().to(policies::save_policy))
                .default_service(web::to(super::method_not_allowed)),
        )
        .route(
            "/admin/policies/{name}/delete",
            web::post().to(policies::delete_policy),
        )
        .service(crate::web::get_only("/admin/audit", audit::audit))
        .service(crate::web::get_only(
            "/admin/audit/events/{id}",
            audit::audit_event,
        ))
        .service(crate::web::get_only(
            "/admin/audit/export",
            audit::audit_export,
        ));
}

/// Whether the caller may use any admin page (decides the Admin link in the navigation).
pub fn may_administer(caller: &Caller) -> bool {
    [
        Action::ListUsers,
        Action::ListGroups,
        Action::ListPolicies,
        Action::LookupAuditEvents,
        Action::ListWorkers,
        Action::ListConnections,
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
        "password-tokens" => {
            "The password was set; the user's sessions have ended and their API tokens are revoked."
        }
        "throttle" => "Sign-in throttling for the user is cleared.",
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
    can_workers: bool,
    can_connections: bool,
}
console_page!(IndexPage);

async fn index(
    state: web::Data<AppState>,
    user: SignedIn,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let c = &user.caller;
    if !may_administer(c) {
        // Refused through the same audited path as every operation.
        crate::ops::require(
            &state.services,
            c,
            Action::ListUsers,
            &Resource::All,
            serde_json::json!({"page": "/admin"}),
        )
        .await?;
    }
    let page = IndexPage {
        layout: Layout::signed_in(&user, Section::Admin),
        can_users: c.can(Action::ListUsers, &Resource::All),
        can_groups: c.can(Action::ListGroups, &Resource::All),
        can_policies: c.can(Action::ListPolicies, &Resource::All),
        can_audit: c.can(Action::LookupAuditEvents, &Resource::All),
        can_workers: c.can(Action::ListWorkers, &Resource::All),
        can_connections: c.can(Action::ListConnections, &Resource::All),
    };
    render_with_status(hx, &page, StatusCode::OK)
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

/// A list the caller may read, joined; or a note that it is not shown to them.
fn shown_or_hidden(items: Option<Vec<String>>) -> String {
    match items {
        Some(items) => join_or_dash(items),
        None => "(not shown)".into(),
    }
}

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

#[derive(Deserialize)]
struct Empty {}

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
