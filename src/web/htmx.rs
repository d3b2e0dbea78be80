//! htmx conventions.
//!
//! A page handler renders the whole page, or only its `content` block when the request carries
//! `HX-Request: true` (an htmx swap). Such responses vary on that header.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::HeaderMap;
use actix_web::{FromRequest, HttpRequest};

/// Whether the request came from htmx (`HX-Request: true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HxRequest(pub bool);

impl FromRequest for HxRequest {
    type Error = std::convert::Infallible;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(HxRequest(is_htmx(req.headers()))))
    }
}

/// Whether the headers mark an htmx request.
pub fn is_htmx(headers: &HeaderMap) -> bool {
    headers
        .get("HX-Request")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}
