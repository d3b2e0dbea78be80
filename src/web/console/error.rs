//! The console's error pages: the HTML that shows a [`ConsoleError`](crate::web::error::ConsoleError).

use askama::Template;

use super::{Layout, Page, console_page};
pub use crate::web::error::ErrorKind;

#[derive(Template)]
#[template(path = "errors/page.html", blocks = ["content"])]
struct ErrorPage {
    layout: Layout,
    status: u16,
    title: &'static str,
    explanation: &'static str,
    detail: Option<String>,
    request_id: Option<String>,
}
console_page!(ErrorPage);

/// The HTML of an error page (or of its content block, for htmx).
pub fn render_error(
    kind: ErrorKind,
    detail: Option<String>,
    request_id: Option<String>,
    htmx: bool,
    layout: Option<Layout>,
) -> String {
    let page = ErrorPage {
        layout: layout.unwrap_or_else(Layout::public),
        status: kind.status().as_u16(),
        title: kind.title(),
        explanation: kind.explanation(),
        detail,
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
    use actix_web::http::StatusCode;

    const ALL: [ErrorKind; 10] = [
        ErrorKind::BadRequest,
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::Conflict,
        ErrorKind::PayloadTooLarge,
        ErrorKind::TooManyRequests,
        ErrorKind::Internal,
        ErrorKind::Unavailable,
    ];

    #[test]
    fn every_error_page_renders_in_the_layout_with_its_status_and_request_id() {
        for kind in ALL {
            let html = render_error(
                kind,
                Some("detail <b>".into()),
                Some("req-123".into()),
                false,
                None,
            );
            assert!(html.starts_with("<!DOCTYPE html>"), "{kind:?}");
            assert!(html.contains("site-header"), "{kind:?} in the layout");
            assert!(html.contains(kind.title()), "{kind:?}");
            assert!(
                html.contains(&kind.status().as_u16().to_string()),
                "{kind:?}"
            );
            assert!(html.contains("<code>req-123</code>"), "{kind:?}");
            assert!(!html.contains("<b>"), "the detail is escaped");
            assert_eq!(ErrorKind::from_status(kind.status()), kind);

            let partial = render_error(kind, None, None, true, None);
            assert!(
                !partial.contains("<html") && partial.contains(kind.title()),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn the_403_page_names_the_missing_permission() {
        let html = render_error(
            ErrorKind::Forbidden,
            Some("You are not allowed to perform iam:CreateUser on arn:sluice:iam:::user/x".into()),
            None,
            false,
            None,
        );
        assert!(html.contains("Access denied"));
        assert!(html.contains("iam:CreateUser on arn:sluice:iam:::user/x"));
    }

    #[test]
    fn statuses_without_a_page_of_their_own_fall_back_by_class() {
        assert_eq!(
            ErrorKind::from_status(StatusCode::GONE),
            ErrorKind::BadRequest
        );
        assert_eq!(
            ErrorKind::from_status(StatusCode::BAD_GATEWAY),
            ErrorKind::Internal
        );
    }
}
