//! The console's error type, and what HTTP answer each error is. The pages that show them are
//! `console::error`'s; the request handlers of `auth`, `console` and `static_files` all return it,
//! so it lives here, below all of them.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};

use crate::access::Denied;
use crate::error::AppError;

/// The console's error type. Handlers return it; `render_error_pages` turns it into a page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    NotFoundWith(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    BadRequest(String),
    /// No valid session: go to the sign-in page, then back to `next`.
    #[error("sign-in required")]
    SignInRequired { next: String },
    /// The one authorization function said no (already audited).
    #[error("{}", .0.console_message())]
    Forbidden(Box<Denied>),
    /// A console form failed the CSRF checks (already audited).
    #[error("the request did not come from a Sluice page")]
    CsrfRejected,
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; the answer says when to try again.
    #[error("too many attempts")]
    Throttled { retry_after_secs: i64 },
    /// Anything unexpected. Its cause is logged, never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<sqlx::Error> for ConsoleError {
    fn from(e: sqlx::Error) -> Self {
        ConsoleError::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl From<AppError> for ConsoleError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::AccessDenied(d) => ConsoleError::Forbidden(d),
            AppError::Validation { message, .. } => ConsoleError::BadRequest(message),
            AppError::NoSuchEntity(m) => ConsoleError::NotFoundWith(m),
            AppError::EntityAlreadyExists(m)
            | AppError::DeleteConflict(m)
            | AppError::Conflict(m) => ConsoleError::Conflict(m),
            AppError::Throttled { retry_after_secs } => {
                ConsoleError::Throttled { retry_after_secs }
            }
            AppError::Declaration(problems) => ConsoleError::BadRequest(problems.to_string()),
            // A pipeline (or version) that does not exist is a missing page, not a bad request.
            AppError::NotFound { message, .. } => ConsoleError::NotFoundWith(message),
            AppError::Rejected { message, .. } => ConsoleError::BadRequest(message),
            AppError::Internal(cause) => ConsoleError::Internal(cause),
        }
    }
}

impl ConsoleError {
    /// Which error page shows this error, and the detail it shows.
    pub fn page(&self) -> (ErrorKind, Option<String>) {
        match self {
            ConsoleError::NotFound => (ErrorKind::NotFound, None),
            ConsoleError::NotFoundWith(m) => (ErrorKind::NotFound, Some(m.clone())),
            ConsoleError::PayloadTooLarge => (ErrorKind::PayloadTooLarge, None),
            ConsoleError::MethodNotAllowed => (ErrorKind::MethodNotAllowed, None),
            ConsoleError::BadRequest(m) => (ErrorKind::BadRequest, Some(m.clone())),
            ConsoleError::SignInRequired { .. } => (ErrorKind::Unauthorized, None),
            ConsoleError::Forbidden(d) => (ErrorKind::Forbidden, Some(d.console_message())),
            ConsoleError::CsrfRejected => (
                ErrorKind::Forbidden,
                Some(
                    "The form did not come from this Sluice, or your session changed. Reload the page and try again."
                        .into(),
                ),
            ),
            ConsoleError::Conflict(m) => (ErrorKind::Conflict, Some(m.clone())),
            ConsoleError::Throttled { retry_after_secs } => (
                ErrorKind::TooManyRequests,
                Some(format!(
                    "Too many failed attempts. Try again in {} minute(s).",
                    (retry_after_secs + 59) / 60
                )),
            ),
            ConsoleError::Internal(_) => (ErrorKind::Internal, None),
        }
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::SignInRequired { .. } => StatusCode::SEE_OTHER,
            other => other.page().0.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ConsoleError::Internal(cause) => {
                // Logged here, once, inside the request's span (so with its request id).
                tracing::error!(error = format!("{cause:#}"), "internal error");
            }
            ConsoleError::SignInRequired { next } => {
                let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, format!("/login?{query}")))
                    .finish();
            }
            _ => {}
        }
        // The body is replaced by the error page middleware, which knows the request.
        let mut response = HttpResponse::build(self.status_code());
        if let ConsoleError::MethodNotAllowed = self {
            response.insert_header((header::ALLOW, "GET, HEAD"));
        }
        if let ConsoleError::Throttled { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.max(&1).to_string()));
        }
        response
            .content_type("text/plain; charset=utf-8")
            .body(self.page().0.title())
    }
}

/// The error pages the console knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    TooManyRequests,
    Internal,
    Unavailable,
}

impl ErrorKind {
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            405 => ErrorKind::MethodNotAllowed,
            409 => ErrorKind::Conflict,
            413 => ErrorKind::PayloadTooLarge,
            429 => ErrorKind::TooManyRequests,
            503 => ErrorKind::Unavailable,
            400..=499 => ErrorKind::BadRequest,
            _ => ErrorKind::Internal,
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "Bad request",
            ErrorKind::Unauthorized => "Sign-in required",
            ErrorKind::Forbidden => "Access denied",
            ErrorKind::NotFound => "Page not found",
            ErrorKind::MethodNotAllowed => "Method not allowed",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::PayloadTooLarge => "Request too large",
            ErrorKind::TooManyRequests => "Too many requests",
            ErrorKind::Internal => "Something went wrong",
            ErrorKind::Unavailable => "Service unavailable",
        }
    }

    pub fn explanation(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "The request could not be carried out.",
            ErrorKind::Unauthorized => "Sign in to continue.",
            ErrorKind::Forbidden => "You do not have permission to see this page or do this.",
            ErrorKind::NotFound => {
                "There is nothing at this address. It may have been moved or deleted."
            }
            ErrorKind::MethodNotAllowed => "This address does not accept that kind of request.",
            ErrorKind::Conflict => "The request conflicts with the current state.",
            ErrorKind::PayloadTooLarge => "The request body is larger than this server accepts.",
            ErrorKind::TooManyRequests => "Too many requests. Wait a moment and try again.",
            ErrorKind::Internal => {
                "Sluice could not complete the request. The problem has been logged; if it persists, give your administrator the request id below."
            }
            ErrorKind::Unavailable => {
                "Sluice cannot serve this request right now. Try again in a moment."
            }
        }
    }
}
