//! The JSON API: CodePipeline-style RPC. `POST /api/v1/{Operation}` with a JSON body, or `POST /`
//! with `X-Amz-Target: CodePipeline_20150709.{Operation}`. Bearer tokens only (no cookies, so no
//! CSRF). Errors are `{"__type": "...", "message": "..."}`.

mod buckets;
mod connections;
mod executions;
mod iam;
mod pipelines;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AppState;
use super::request::actor;
use crate::error::AppError;
use crate::ops::Caller;
use crate::ops::auth::{self, TokenError};

/// The `X-Amz-Target` prefix of CodePipeline's JSON protocol.
pub const TARGET_PREFIX: &str = "CodePipeline_20150709.";
/// The target prefix of the connection operations (CodeConnections' own).
pub const CONNECTIONS_TARGET_PREFIX: &str = "CodeConnections_20231201.";

/// Whether a request is for the API (it gets JSON errors, never HTML pages).
/// An upload into a bucket (`PUT /api/v1/buckets/{bucket}/objects/{key}`): its body has a limit
/// of its own.
pub fn is_upload(req: &actix_web::dev::ServiceRequest) -> bool {
    req.method() == actix_web::http::Method::PUT
        && (req.path().starts_with("/api/v1/buckets/") || req.path().starts_with("/buckets/"))
}

pub fn is_api_request(req: &actix_web::dev::ServiceRequest) -> bool {
    req.path().starts_with("/api/") || req.headers().contains_key("X-Amz-Target")
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/{operation}")
            .route(web::post().to(by_path))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/buckets/{bucket}/objects/{key:.+}")
            .route(web::put().to(buckets::put_object))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/pipelines/{name}/executions/{id}/artifacts/{artifact}")
            .route(web::get().to(download))
            .default_service(web::to(method_not_allowed)),
    );
}

/// `GET /api/v1/pipelines/{name}/executions/{id}/artifacts/{artifact}`: an execution's artifact
/// as a zip, for a token allowed `codepipeline:GetPipelineExecution` on the pipeline.
async fn download(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state).await?;
    let (name, id, artifact) = path.into_inner();
    let id = uuid::Uuid::parse_str(&id).map_err(|_| {
        ApiError::from(AppError::validation(
            "pipelineExecutionId",
            "is not a pipeline execution id",
        ))
    })?;
    let d =
        crate::ops::executions::artifact_download(&state.services, &caller, &name, id, &artifact)
            .await?;
    Ok(crate::web::download::send(d).await?)
}

/// `GET /artifact-links/{token}`: the artifact a signed link grants (a webhook endpoint reading
/// its action's inputs); the link is the authority, for 15 minutes.
pub async fn linked_artifact(
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match crate::ops::executions::linked_artifact(&state.services, &token).await {
        Ok(d) => Ok(crate::web::download::send(d).await?),
        // A plain 404 for whoever holds a bad link (an endpoint's HTTP client, not the API).
        Err(AppError::NotFound { code, message }) => Ok(HttpResponse::NotFound()
            .content_type("application/json")
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .body(serde_json::json!({"__type": code, "message": message}).to_string())),
        Err(e) => Err(e.into()),
    }
}

/// The guard of `POST /` for `X-Amz-Target` requests.
pub fn amz_target(ctx: &actix_web::guard::GuardContext<'_>) -> bool {
    ctx.head().headers().contains_key("X-Amz-Target")
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowedException",
        "The API takes POST requests with a JSON body.",
    ))
}

/// An API error: status, `__type` and message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    fn serialization(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "SerializationException", message)
    }

    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            "The request body is larger than this server accepts.",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .content_type("application/x-amz-json-1.1")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({"__type": self.kind, "message": self.message}))
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let (status, kind) = match &e {
            AppError::AccessDenied(_) => (StatusCode::BAD_REQUEST, "AccessDeniedException"),
            AppError::Validation { .. } => (StatusCode::BAD_REQUEST, "ValidationException"),
            AppError::Declaration(problems) => (StatusCode::BAD_REQUEST, problems.exception()),
            AppError::NoSuchEntity(_) => (StatusCode::BAD_REQUEST, "NoSuchEntityException"),
            AppError::NotFound { code, .. } => (StatusCode::BAD_REQUEST, *code),
            AppError::EntityAlreadyExists(_) => {
                (StatusCode::BAD_REQUEST, "EntityAlreadyExistsException")
            }
            AppError::DeleteConflict(_) => (StatusCode::BAD_REQUEST, "DeleteConflictException"),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "ConflictException"),
            AppError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
            AppError::Rejected { code, .. } => (StatusCode::BAD_REQUEST, *code),
            AppError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure")
            }
        };
        ApiError::new(status, kind, e.public_message())
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Missing => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "MissingAuthenticationTokenException",
                e.to_string(),
            ),
            TokenError::Unrecognized => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UnrecognizedClientException",
                e.to_string(),
            ),
            TokenError::Internal(inner) => inner.into(),
        }
    }
}

/// `POST /api/v1/{operation}`.
async fn by_path(
    req: HttpRequest,
    state: web::Data<AppState>,
    operation: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    dispatch(&req, &state, &operation, &body).await
}

/// `POST /` with `X-Amz-Target`.
pub async fn by_target(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let target = req
        .headers()
        .get("X-Amz-Target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Some(operation) = target
        .strip_prefix(TARGET_PREFIX)
        .or_else(|| target.strip_prefix(CONNECTIONS_TARGET_PREFIX))
    else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("X-Amz-Target must be {TARGET_PREFIX}<Operation>"),
        ));
    };
    dispatch(&req, &state, operation, &body).await
}

/// Authenticates the bearer token (console cookies are not accepted here).
async fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Caller, ApiError> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(TokenError::Missing)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(TokenError::Unrecognized)?
        .trim();
    Ok(auth::resolve_token(&state.services, token, actor(req, state)).await?)
}

async fn dispatch(
    req: &HttpRequest,
    state: &AppState,
    operation: &str,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    if !iam::OPERATIONS.contains(&operation)
        && !pipelines::OPERATIONS.contains(&operation)
        && !executions::OPERATIONS.contains(&operation)
        && !connections::OPERATIONS.contains(&operation)
        && !buckets::OPERATIONS.contains(&operation)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("{operation} is not an operation of this API"),
        ));
    }
    let caller = authenticate(req, state).await?;
    let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::serialization(format!("the body is not valid JSON: {e}")))?
    };
    if !input.is_object() {
        return Err(ApiError::serialization("the body must be a JSON object"));
    }
    let output = if pipelines::OPERATIONS.contains(&operation) {
        pipelines::call(&state.services, &caller, operation, input).await?
    } else if executions::OPERATIONS.contains(&operation) {
        executions::call(&state.services, &caller, operation, input).await?
    } else if connections::OPERATIONS.contains(&operation) {
        connections::call(&state.services, &caller, operation, input).await?
    } else if buckets::OPERATIONS.contains(&operation) {
        buckets::call(&state.services, &caller, operation, input).await?
    } else {
        iam::call(&state.services, &caller, operation, input).await?
    };
    Ok(HttpResponse::Ok()
        .content_type("application/x-amz-json-1.1")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(output))
}

/// Deserializes an operation's input, naming the field at fault.
fn parse<T: DeserializeOwned>(input: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(input).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            ApiError::serialization(inner)
        } else {
            ApiError::serialization(format!("{path}: {inner}"))
        }
    })
}

/// Epoch seconds, fractional, as CodePipeline's JSON protocol writes timestamps.
fn epoch(t: time::OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}
