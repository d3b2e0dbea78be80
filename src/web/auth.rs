//! Who is asking, for the console: the session cookie, the signed-in extractor, and CSRF checks.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ConsoleError;
use super::request::{actor, state};
use crate::access::SessionEvent;
use crate::audit;
use crate::ops::Caller;
use crate::ops::auth::{self, ActiveSession};

/// The session cookie's name: `__Host-` prefixed (and Secure) when Sluice is reached over https.
pub fn cookie_name(state: &AppState) -> &'static str {
    if state.info.public_url.is_https() {
        "__Host-sluice_session"
    } else {
        "sluice_session"
    }
}

/// The cookie that carries a new session's token.
pub fn session_cookie(state: &AppState, token: &str) -> Cookie<'static> {
    Cookie::build(cookie_name(state), token.to_string())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.info.public_url.is_https())
        .finish()
}

/// A cookie that removes the session cookie.
pub fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut cookie = session_cookie(state, "");
    cookie.make_removal();
    cookie
}

/// The session of the request, looked up once and cached in the request's extensions.
async fn session_of(req: &HttpRequest) -> Result<Option<ActiveSession>, ConsoleError> {
    if let Some(cached) = req.extensions().get::<Option<ActiveSession>>() {
        return Ok(cached.clone());
    }
    let state = state(req)?;
    let session = match req.cookie(cookie_name(&state)) {
        Some(cookie) => {
            auth::resolve_session(&state.services, cookie.value(), actor(req, &state)).await?
        }
        None => None,
    };
    req.extensions_mut().insert(session.clone());
    Ok(session)
}

/// A signed-in console user. Requests without a valid session are sent to the sign-in page.
#[derive(Clone)]
pub struct SignedIn {
    pub caller: Caller,
    pub csrf_token: String,
}

impl FromRequest for SignedIn {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            match session_of(&req).await? {
                Some(s) => Ok(SignedIn {
                    caller: s.caller,
                    csrf_token: s.csrf_token,
                }),
                None => Err(ConsoleError::SignInRequired {
                    next: next_target(&req),
                }),
            }
        })
    }
}

/// Where to return after signing in: the page asked for (GET only), else the overview.
fn next_target(req: &HttpRequest) -> String {
    if req.method() == actix_web::http::Method::GET {
        let pq = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        safe_next(pq).to_string()
    } else {
        "/".to_string()
    }
}

/// A local path to go to after sign-in; anything else (another origin, `//host`) becomes `/`.
pub fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control());
    if local { next } else { "/" }
}

/// Whether the request comes from a page of this Sluice: `Sec-Fetch-Site: same-origin`, or,
/// from browsers that do not send it, an `Origin` or `Referer` on the public origin.
pub fn same_origin(req: &HttpRequest, state: &AppState) -> bool {
    let headers = req.headers();
    if let Some(site) = headers.get("Sec-Fetch-Site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin";
    }
    let public = state.info.public_url.origin();
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return origin == public;
    }
    if let Some(referer) = headers.get(header::REFERER).and_then(|v| v.to_str().ok()) {
        return referer == public || referer.starts_with(&format!("{public}/"));
    }
    false
}

/// A console form submitted by a signed-in user, past both CSRF checks: same origin, and the
/// session's synchronizer token (form field `csrf_token` or header `X-CSRF-Token`).
pub struct CsrfForm<T> {
    pub user: SignedIn,
    pub form: T,
}

#[derive(serde::Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    csrf_token: Option<String>,
    #[serde(flatten)]
    inner: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let user = SignedIn::from_request(&req, &mut Payload::None).await?;
            let body = body.await.map_err(|e| {
                if e.as_response_error().status_code()
                    == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE
                {
                    ConsoleError::PayloadTooLarge
                } else {
                    ConsoleError::BadRequest("the form could not be read".into())
                }
            })?;
            let envelope: Envelope<T> = serde_urlencoded::from_bytes(&body)
                .map_err(|e| ConsoleError::BadRequest(format!("the form is not valid: {e}")))?;
            let header_token = req
                .headers()
                .get("X-CSRF-Token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let presented = envelope.csrf_token.or(header_token).unwrap_or_default();
            let state = state(&req)?;
            let token_ok = constant_time_eq(presented.as_bytes(), user.csrf_token.as_bytes());
            if !same_origin(&req, &state) || !token_ok {
                let why = if token_ok {
                    "cross-site request"
                } else {
                    "missing or wrong CSRF token"
                };
                state
                    .services
                    .audit_alone(audit::Event {
                        actor: &user.caller.actor,
                        event_name: SessionEvent::CsrfCheck.into(),
                        resource_arn: None,
                        request_parameters: serde_json::json!({"path": req.path(), "method": req.method().as_str()}),
                        outcome: "Forbidden",
                        error_message: Some(why.into()),
                    })
                    .await?;
                return Err(ConsoleError::CsrfRejected);
            }
            Ok(CsrfForm {
                user,
                form: envelope.inner,
            })
        })
    }
}

/// Compares secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_targets_stay_on_this_site() {
        assert_eq!(safe_next("/admin/users?x=1"), "/admin/users?x=1");
        assert_eq!(safe_next("//evil.example/x"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        assert_eq!(safe_next(""), "/");
    }

    #[test]
    fn secrets_compare_fully() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
