//! What a request says about itself that every front door needs: the audit facts of its sender
//! (behind trusted proxies) and the application state. The API, the console and `auth` all
//! depend on this module, never on each other for it.

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, web};
use tracing_actix_web::RequestId;

use super::AppState;
use super::error::ConsoleError;
use crate::audit::Actor;

/// The audit facts of a request: client address, user agent, request id.
pub fn actor(req: &HttpRequest, state: &AppState) -> Actor {
    let source_ip = req.peer_addr().map(|peer| {
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("X-Forwarded-For")
            .filter_map(|v| v.to_str().ok())
            .collect();
        state
            .info
            .trusted_proxies
            .client_address(peer.ip(), &forwarded)
            .to_string()
    });
    Actor {
        user_name: None,
        token_id: None,
        source_ip,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(512).collect()),
        request_id: req.extensions().get::<RequestId>().map(|id| id.to_string()),
    }
}

pub fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ConsoleError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ConsoleError::Internal(anyhow::anyhow!("application state missing")))
}
