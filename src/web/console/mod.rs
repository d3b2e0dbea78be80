//! The server-rendered console: the layout, the page-rendering convention and console errors.

mod status;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError, web};
use askama::Template;

use super::htmx::HxRequest;

/// The console's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::get_only("/", status::show));
}

/// `default_service`: anything unrouted.
pub async fn not_found() -> Result<HttpResponse, ConsoleError> {
    Err(ConsoleError::NotFound)
}

/// A routed path asked with a method it does not take.
pub async fn method_not_allowed() -> Result<HttpResponse, ConsoleError> {
    Err(ConsoleError::MethodNotAllowed)
}

/// A console section in the header navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
}

/// One navigation link. Sections appear here only once their pages exist.
pub struct NavItem {
    pub label: &'static str,
    pub href: &'static str,
    pub section: Section,
}

const NAV: &[NavItem] = &[NavItem {
    label: "Overview",
    href: "/",
    section: Section::Overview,
}];

/// What the base layout (`templates/base.html`) needs from every page.
pub struct Layout {
    pub version: &'static str,
    pub current: Option<Section>,
    pub nav: &'static [NavItem],
    pub stylesheet: String,
    pub htmx_script: String,
    pub favicon: String,
}

impl Layout {
    pub fn new(current: Option<Section>) -> Self {
        Self {
            version: crate::VERSION,
            current,
            nav: NAV,
            stylesheet: super::asset_url("app.css"),
            htmx_script: super::asset_url("vendor/htmx-2.0.11.min.js"),
            favicon: super::asset_url("favicon.svg"),
        }
    }

    /// Whether `item` is the section being shown (templates mark it with `aria-current`).
    pub fn is_current(&self, item: &NavItem) -> bool {
        self.current == Some(item.section)
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
    let html = if hx.0 {
        page.render_content()
    } else {
        page.render()
    }
    .map_err(|e| ConsoleError::Internal(anyhow::Error::new(e).context("rendering a page")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::VARY, "HX-Request"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
}

/// The console's error type. Handlers return it; `render_error_pages` turns it into a page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("not found")]
    NotFound,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Anything unexpected. Its cause is logged, never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<sqlx::Error> for ConsoleError {
    fn from(e: sqlx::Error) -> Self {
        ConsoleError::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl ConsoleError {
    /// Which error page shows this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConsoleError::NotFound => ErrorKind::NotFound,
            ConsoleError::PayloadTooLarge => ErrorKind::PayloadTooLarge,
            ConsoleError::MethodNotAllowed => ErrorKind::MethodNotAllowed,
            ConsoleError::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        self.kind().status()
    }

    fn error_response(&self) -> HttpResponse {
        if let ConsoleError::Internal(cause) = self {
            // Logged here, once, inside the request's span (so with its request id).
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        // The body is replaced by the error page middleware, which knows the request.
        let mut response = HttpResponse::build(self.status_code());
        if let ConsoleError::MethodNotAllowed = self {
            response.insert_header((header::ALLOW, "GET, HEAD"));
        }
        response
            .content_type("text/plain; charset=utf-8")
            .body(self.kind().title())
    }
}

/// The error pages the console knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    Internal,
    Unavailable,
}

impl ErrorKind {
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            405 => ErrorKind::MethodNotAllowed,
            413 => ErrorKind::PayloadTooLarge,
            503 => ErrorKind::Unavailable,
            400..=499 => ErrorKind::BadRequest,
            _ => ErrorKind::Internal,
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "Bad request",
            ErrorKind::Forbidden => "Access denied",
            ErrorKind::NotFound => "Page not found",
            ErrorKind::MethodNotAllowed => "Method not allowed",
            ErrorKind::PayloadTooLarge => "Request too large",
            ErrorKind::Internal => "Something went wrong",
            ErrorKind::Unavailable => "Service unavailable",
        }
    }

    pub fn explanation(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => {
                "The request could not be understood. Check the address and try again."
            }
            ErrorKind::Forbidden => "You do not have permission to see this page or do this.",
            ErrorKind::NotFound => {
                "There is nothing at this address. It may have been moved or deleted."
            }
            ErrorKind::MethodNotAllowed => "This address does not accept that kind of request.",
            ErrorKind::PayloadTooLarge => "The request body is larger than this server accepts.",
            ErrorKind::Internal => {
                "Sluice could not complete the request. The problem has been logged; if it persists, give your administrator the request id below."
            }
            ErrorKind::Unavailable => {
                "Sluice cannot serve this request right now. Try again in a moment."
            }
        }
    }
}

#[derive(Template)]
#[template(path = "errors/page.html", blocks = ["content"])]
struct ErrorPage {
    layout: Layout,
    status: u16,
    title: &'static str,
    explanation: &'static str,
    request_id: Option<String>,
}
console_page!(ErrorPage);

/// The HTML of an error page (or of its content block, for htmx).
pub fn render_error(kind: ErrorKind, request_id: Option<String>, htmx: bool) -> String {
    let page = ErrorPage {
        layout: Layout::new(None),
        status: kind.status().as_u16(),
        title: kind.title(),
        explanation: kind.explanation(),
        request_id,
    };
    let rendered = if htmx {
        page.render_content()
    } else {
        page.render()
    };
    rendered.unwrap_or_else(|e| {
        tracing::error!(error = %e, "rendering the error page failed");
        format!("{} {}", page.status, page.title)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_page_renders_in_the_layout_with_its_status_and_request_id() {
        for kind in [
            ErrorKind::BadRequest,
            ErrorKind::Forbidden,
            ErrorKind::NotFound,
            ErrorKind::MethodNotAllowed,
            ErrorKind::PayloadTooLarge,
            ErrorKind::Internal,
            ErrorKind::Unavailable,
        ] {
            let html = render_error(kind, Some("req-123".into()), false);
            assert!(html.starts_with("<!DOCTYPE html>"), "{kind:?}");
            assert!(html.contains("site-header"), "{kind:?} in the layout");
            assert!(html.contains(kind.title()), "{kind:?}");
            assert!(
                html.contains(&kind.status().as_u16().to_string()),
                "{kind:?}"
            );
            assert!(html.contains("<code>req-123</code>"), "{kind:?}");
            assert_eq!(ErrorKind::from_status(kind.status()), kind);

            let partial = render_error(kind, None, true);
            assert!(
                !partial.contains("<html") && partial.contains(kind.title()),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn the_403_page_explains_the_refusal() {
        let html = render_error(ErrorKind::Forbidden, None, false);
        assert!(html.contains("Access denied"));
        assert!(html.contains("403"));
    }

    #[test]
    fn statuses_without_a_page_of_their_own_fall_back_by_class() {
        assert_eq!(
            ErrorKind::from_status(StatusCode::CONFLICT),
            ErrorKind::BadRequest
        );
        assert_eq!(
            ErrorKind::from_status(StatusCode::BAD_GATEWAY),
            ErrorKind::Internal
        );
    }
}
