//! The server-rendered console: the layout, the page-rendering convention, and the pages.

mod account;
mod admin;
mod ansi;
mod approvals;
mod buckets;
mod editor;
mod error;
mod executions;
mod live;
mod login;
mod pipelines;
mod status;
mod timeline;
mod triggers;
mod wizard;

pub use pipelines::list as pipelines_list;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;

pub use crate::web::error::{ConsoleError, ErrorKind};
pub use error::render_error;

/// The layout for an error page: the signed-in user's, when the request had a valid session.
pub fn error_layout(req: &actix_web::HttpRequest) -> Option<Layout> {
    use actix_web::HttpMessage;
    let extensions = req.extensions();
    let session = extensions
        .get::<Option<crate::ops::auth::ActiveSession>>()?
        .as_ref()?;
    Some(Layout::signed_in_anywhere(&SignedIn {
        caller: session.caller.clone(),
        csrf_token: session.csrf_token.clone(),
    }))
}

use super::auth::SignedIn;
use super::htmx::HxRequest;
use crate::error::AppError;

/// The console's routes (`/` itself is registered by `web::routes`, as the API shares it).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::get_only("/status", status::show));
    // The wizard's /pipelines/new goes before /pipelines/{name}.
    wizard::routes(cfg);
    editor::routes(cfg);
    executions::routes(cfg);
    triggers::routes(cfg);
    buckets::routes(cfg);
    approvals::routes(cfg);
    live::routes(cfg);
    pipelines::routes(cfg);
    login::routes(cfg);
    account::routes(cfg);
    admin::routes(cfg);
}

/// `default_service`: anything unrouted (API paths get the API's JSON error).
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    if req.path().starts_with("/api/") {
        return actix_web::ResponseError::error_response(&super::api::ApiError::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "API operations are at POST /api/v1/{Operation}",
        ));
    }
    HttpResponse::from_error(ConsoleError::NotFound)
}

/// A routed path asked with a method it does not take.
pub async fn method_not_allowed() -> Result<HttpResponse, ConsoleError> {
    Err(ConsoleError::MethodNotAllowed)
}

/// A console section in the header navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Pipelines,
    Approvals,
    Status,
    Admin,
    Account,
}

/// One navigation link. Sections appear only once their pages exist, and only to users who may
/// use them.
pub struct NavItem {
    pub label: &'static str,
    pub href: &'static str,
    pub section: Section,
    /// The id of the element in the link that the live stream fills with a count of what
    /// waits there.
    pub count_id: Option<&'static str>,
}

const PIPELINES: NavItem = NavItem {
    label: "Pipelines",
    href: "/",
    section: Section::Pipelines,
    count_id: None,
};
/// Every signed-in user has an inbox; it lists what their permissions let them answer.
const APPROVALS: NavItem = NavItem {
    label: "Approvals",
    href: "/approvals",
    section: Section::Approvals,
    count_id: Some("nav-approvals-count"),
};
const ADMIN: NavItem = NavItem {
    label: "Admin",
    href: "/admin",
    section: Section::Admin,
    count_id: None,
};

/// What the base layout (`templates/base.html`) needs from every page.
pub struct Layout {
    pub version: &'static str,
    pub current: Option<Section>,
    pub nav: Vec<NavItem>,
    pub stylesheet: String,
    pub htmx_script: String,
    /// htmx's server-sent events extension (the live stream).
    pub sse_script: String,
    pub app_script: String,
    pub favicon: String,
    /// The signed-in user, if any (shown with Account and Sign out).
    pub user_name: Option<String>,
    /// The session's CSRF token, for forms and htmx requests.
    pub csrf_token: Option<String>,
    /// The page's live stream (`/live?…`): every signed-in page has one, for the navigation's
    /// count at least; pages that change while shown name their view.
    pub live_url: Option<String>,
}

impl Layout {
    /// The layout of pages anyone may see (sign-in, set-up, errors).
    pub fn public() -> Self {
        Self {
            // The exact version helps attackers more than anonymous visitors.
            version: "",
            current: None,
            nav: Vec::new(),
            stylesheet: super::asset_url("app.css"),
            htmx_script: super::asset_url("vendor/htmx-2.0.11.min.js"),
            sse_script: super::asset_url("vendor/htmx-ext-sse-2.2.4.min.js"),
            app_script: super::asset_url("app.js"),
            favicon: super::asset_url("favicon.svg"),
            user_name: None,
            csrf_token: None,
            live_url: None,
        }
    }

    /// The layout of a page that is no section of its own (an error page for a signed-in user).
    pub fn signed_in_anywhere(user: &SignedIn) -> Self {
        Self {
            current: None,
            ..Self::signed_in(user, Section::Pipelines)
        }
    }

    /// The layout for a signed-in user: the navigation shows only what they may use.
    pub fn signed_in(user: &SignedIn, current: Section) -> Self {
        let mut nav = vec![PIPELINES, APPROVALS];
        if admin::may_administer(&user.caller) {
            nav.push(ADMIN);
        }
        let may_see_version = user.caller.can(
            crate::access::Action::GetServerStatus,
            &crate::access::Resource::All,
        );
        Self {
            version: if may_see_version { crate::VERSION } else { "" },
            current: Some(current),
            nav,
            user_name: Some(user.caller.user_name().to_string()),
            csrf_token: Some(user.csrf_token.clone()),
            live_url: Some("/live".to_string()),
            ..Self::public()
        }
    }

    /// The same layout with the page's own live view (see `console::live`).
    pub fn live(self, url: String) -> Self {
        Self {
            live_url: Some(url),
            ..self
        }
    }

    /// Whether `item` is the section being shown (templates mark it with `aria-current`).
    pub fn is_current(&self, item: &NavItem) -> bool {
        self.current == Some(item.section)
    }

    /// Whether the page is the user's own account page.
    pub fn is_account(&self) -> bool {
        self.current == Some(Section::Account)
    }

    /// `hx-headers` for the body, so htmx requests carry the CSRF token.
    pub fn hx_headers(&self) -> Option<String> {
        self.csrf_token
            .as_ref()
            .map(|t| serde_json::json!({ "X-CSRF-Token": t }).to_string())
    }

    /// The CSRF token for hidden form fields.
    pub fn csrf(&self) -> &str {
        self.csrf_token.as_deref().unwrap_or_default()
    }
}

/// A console page: a template extending `base.html` whose page-specific part is the block
/// `content`. Implemented with [`console_page!`].
pub trait Page: Template {
    /// Renders only the `content` block, for htmx swaps.
    fn render_content(&self) -> askama::Result<String>;
}

/// Implements [`Page`] for a template declared with `blocks = ["content"]`.
macro_rules! console_page {
    ($page:ty) => {
        impl $crate::web::console::Page for $page {
            fn render_content(&self) -> askama::Result<String> {
                askama::Template::render(&self.as_content())
            }
        }
    };
}
pub(crate) use console_page;

/// Renders a page in full, or only its content block for an htmx request.
pub fn render(hx: HxRequest, page: &impl Page) -> Result<HttpResponse, ConsoleError> {
    render_with_status(hx, page, StatusCode::OK)
}

/// [`render`] with another status (a form shown again with its errors: 400).
pub fn render_with_status(
    hx: HxRequest,
    page: &impl Page,
    status: StatusCode,
) -> Result<HttpResponse, ConsoleError> {
    let html = if hx.0 {
        page.render_content()
    } else {
        page.render()
    }
    .map_err(|e| ConsoleError::Internal(anyhow::Error::new(e).context("rendering a page")))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::VARY, "HX-Request"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
}

/// After a successful form post: go to `location` (303, so a reload does not post again).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_string()))
        .finish()
}

/// Times as people read them: `2026-11-27 10:07:11 UTC`.
pub fn display_time(at: time::OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap_or_default()
}

/// Percent-encodes a path segment (user, group and policy names in links).
pub fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Refuses unless the caller may do `action` on `resource`, for a page that is not itself one
/// operation (the editor before anything is saved, the wizard). The refusal is audited exactly
/// as an operation's is (`ops::require`).
pub async fn require(
    state: &super::AppState,
    user: &SignedIn,
    action: crate::access::Action,
    resource: &crate::access::Resource,
) -> Result<(), ConsoleError> {
    crate::ops::require(
        &state.services,
        &user.caller,
        action,
        resource,
        serde_json::json!({"console": true}),
    )
    .await
    .map_err(ConsoleError::from)
}

/// The editors' pages and forms are for those who may update the pipeline; others are refused
/// (audited) before anything of the page is read.
pub async fn may_update_pipeline(
    state: &super::AppState,
    user: &SignedIn,
    name: &str,
) -> Result<(), ConsoleError> {
    require(
        state,
        user,
        crate::access::Action::UpdatePipeline,
        &crate::access::Resource::pipeline(name),
    )
    .await
}

/// The wizard, import and clone are forms for those who may create pipelines; others are refused
/// (audited) rather than shown a form whose every use would fail.
pub async fn may_create_pipelines(
    state: &super::AppState,
    user: &SignedIn,
) -> Result<(), ConsoleError> {
    require(
        state,
        user,
        crate::access::Action::CreatePipeline,
        &crate::access::Resource::pipeline("*"),
    )
    .await
}

/// A save the operations layer refused, as a form shows it: the form comes back with everything
/// the user typed, and either the problems by path or one message.
pub struct Refusal {
    pub status: StatusCode,
    pub problems: Vec<(String, String)>,
    pub message: Option<String>,
}

impl Refusal {
    /// Sorts a refusal into what the form shows; anything a form cannot show (a missing pipeline,
    /// an internal error) stays an error page.
    pub fn of(error: AppError) -> Result<Refusal, ConsoleError> {
        let (status, problems, message) = match error {
            AppError::Declaration(problems) => (
                StatusCode::BAD_REQUEST,
                problems
                    .all()
                    .iter()
                    .map(|p| (p.path.clone(), p.message.clone()))
                    .collect(),
                None,
            ),
            AppError::Validation { field, message } => {
                (StatusCode::BAD_REQUEST, vec![(field, message)], None)
            }
            AppError::AccessDenied(denied) => (
                StatusCode::FORBIDDEN,
                Vec::new(),
                Some(denied.console_message()),
            ),
            AppError::Conflict(message) | AppError::EntityAlreadyExists(message) => {
                (StatusCode::CONFLICT, Vec::new(), Some(message))
            }
            AppError::Rejected { message, .. } => {
                (StatusCode::BAD_REQUEST, Vec::new(), Some(message))
            }
            other => return Err(other.into()),
        };
        Ok(Refusal {
            status,
            problems,
            message,
        })
    }
}
