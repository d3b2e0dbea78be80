//! `POST /hooks/{pipeline}/{action}`: push webhooks from GitHub, GitLab, Gitea/Forgejo and
//! Bitbucket. No account: the delivery's signature is its authority (`ops::hooks`). Answered with
//! a small JSON body at once; the execution runs on the workers.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::error::AppError;
use crate::ops::hooks::{self, Reply};

fn answer(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(body.to_string())
}

pub async fn receive(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (pipeline, action) = path.into_inner();
    let headers = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    match hooks::receive(&state.services, &pipeline, &action, &headers, &body).await {
        Ok(Reply::Started(id)) => answer(
            StatusCode::ACCEPTED,
            json!({"status": "started", "pipelineExecutionId": id}),
        ),
        Ok(Reply::Ignored(why)) => {
            answer(StatusCode::OK, json!({"status": "ignored", "reason": why}))
        }
        Ok(Reply::Duplicate) => answer(
            StatusCode::OK,
            json!({"status": "duplicate", "reason": "this delivery was received before"}),
        ),
        Ok(Reply::BadSignature) => answer(
            StatusCode::UNAUTHORIZED,
            json!({"status": "refused", "reason": "the signature is not this hook's secret's"}),
        ),
        Ok(Reply::Unreadable(why)) => answer(
            StatusCode::BAD_REQUEST,
            json!({"status": "refused", "reason": why}),
        ),
        Err(AppError::NotFound { message, .. }) => answer(
            StatusCode::NOT_FOUND,
            json!({"status": "refused", "reason": message}),
        ),
        Err(e) => {
            tracing::error!(error = %e, "a webhook delivery failed");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"status": "error", "reason": "Sluice could not take this delivery; try again"}),
            )
        }
    }
}
