//! Cross-cutting request handling: security headers, the access log, error pages, body limits.

use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{Error, HttpMessage, HttpResponse, web};
use tracing_actix_web::RequestId;

use super::console::ErrorKind;
use super::error::ConsoleError;
use super::htmx;
use crate::config::BodyLimit;

/// The Content-Security-Policy every response carries: only our own scripts, styles and
/// connections, no inline script, no plugins, no framing, no `<base>` rewriting.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     form-action 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Headers added to every response that does not set them itself.
pub fn security_headers(https: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ));
    if https {
        headers.add((
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ))
    } else {
        headers
    }
}

/// One log line per request: request id (also returned as `X-Request-Id`), method, path, status
/// and latency.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let route = req.match_pattern();
    let request_id = req.extensions().get::<RequestId>().copied();
    let result = next.call(req).await;
    let status = match &result {
        Ok(res) => res.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    crate::metrics::http_request(
        method.as_str(),
        route.as_deref().unwrap_or("unmatched"),
        status.as_u16(),
        latency_ms / 1000.0,
    );
    let id = request_id.map(|id| id.to_string()).unwrap_or_default();
    tracing::info!(
        request_id = %id,
        method = %method,
        path = %path,
        status = status.as_u16(),
        latency_ms = format_args!("{latency_ms:.2}"),
        "request"
    );
    result.map(|mut res| {
        if let Ok(value) = HeaderValue::from_str(&id) {
            res.headers_mut()
                .insert(HeaderName::from_static("x-request-id"), value);
        }
        res
    })
}

/// Refuses bodies whose declared length exceeds the limit before reading them. Chunked bodies
/// are cut off at the same limit by the extractors' configuration (see `web::body_limits`).
pub async fn limit_body(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    // Uploads into buckets stream to disk under a limit of their own (`web::api::buckets`).
    if super::api::is_upload(&req) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let limit = req
        .app_data::<web::Data<BodyLimit>>()
        .map_or(BodyLimit::DEFAULT.bytes(), |l| l.bytes());
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        let response = if super::api::is_api_request(&req) {
            req.error_response(super::api::ApiError::payload_too_large())
        } else {
            req.error_response(ConsoleError::PayloadTooLarge)
        };
        return Ok(response.map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Renders every error response in the console layout (or as its content block for htmx), with
/// the request id so that a user's report can be matched to the log.
pub async fn render_error_pages(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, Error> {
    if super::api::is_api_request(&req) {
        // The API answers with its own JSON errors.
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let htmx = htmx::is_htmx(req.headers());
    let request_id = req.extensions().get::<RequestId>().map(|id| id.to_string());
    let res = next.call(req).await?;
    if htmx && res.status() == actix_web::http::StatusCode::SEE_OTHER {
        // htmx would follow a redirect inside its swap; tell it to navigate instead.
        if let Some(location) = res.headers().get(header::LOCATION).cloned() {
            let (req, _) = res.into_parts();
            let response = HttpResponse::NoContent()
                .insert_header(("HX-Redirect", location))
                .finish();
            return Ok(ServiceResponse::new(req, response).map_into_right_body());
        }
    }
    let Some((kind, detail)) = error_kind(&res) else {
        return Ok(res.map_into_left_body());
    };
    let status = res.status();
    let layout = super::console::error_layout(res.request());
    let html = super::console::render_error(kind, detail, request_id, htmx, layout);
    let (req, old) = res.into_parts();
    let mut page = HttpResponse::build(status);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            page.append_header((name.clone(), value.clone()));
        }
    }
    let page = page
        .content_type("text/html; charset=utf-8")
        .insert_header((header::VARY, "HX-Request"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html);
    Ok(ServiceResponse::new(req, page).map_into_right_body())
}

/// Which error page a response needs: our own errors say so; errors raised by actix itself
/// (bad query strings, oversized chunked bodies…) get the page for their status.
fn error_kind<B>(res: &ServiceResponse<B>) -> Option<(ErrorKind, Option<String>)> {
    let error = res.response().error()?;
    if let Some(ours) = error.as_error::<ConsoleError>() {
        if matches!(ours, ConsoleError::SignInRequired { .. }) {
            return None;
        }
        return Some(ours.page());
    }
    Some((ErrorKind::from_status(res.status()), None))
}
