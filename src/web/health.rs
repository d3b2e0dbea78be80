//! Liveness and readiness probes for load balancers and orchestrators.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::AppState;

/// A slow database counts as not ready rather than holding the probe open.
const READINESS_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /healthz`: the process is up and serving HTTP. Never touches the database.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body("ok")
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// `GET /readyz`: 200 when the database answers and carries every migration; 503 with a short
/// JSON reason otherwise.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let verdict = tokio::time::timeout(READINESS_TIMEOUT, crate::db::readiness(state.pool())).await;
    let (mut response, body) = match verdict {
        Ok(Ok(())) => (
            HttpResponse::Ok(),
            Readiness {
                status: "ready",
                reason: None,
            },
        ),
        Ok(Err(not_ready)) => (
            HttpResponse::ServiceUnavailable(),
            Readiness {
                status: "unavailable",
                reason: Some(not_ready.reason()),
            },
        ),
        Err(_) => (
            HttpResponse::ServiceUnavailable(),
            Readiness {
                status: "unavailable",
                reason: Some("database did not answer in time".into()),
            },
        ),
    };
    response
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}
