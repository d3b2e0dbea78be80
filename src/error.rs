//! The error of the operations layer (`crate::ops`), shared by the console and the API, which each
//! map it to HTTP in one place (`web::console::ConsoleError`, `web::api::ApiError`).

use crate::access::Denied;
use crate::pipeline::Problems;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The caller may not do this (already audited).
    #[error("{}", .0.api_message())]
    AccessDenied(Box<Denied>),
    /// A field's value is invalid; `field` is its wire name (`userName`, `policyDocument`).
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    /// A pipeline declaration broke rules; every problem, with its path and exception name.
    #[error("{0}")]
    Declaration(Problems),
    #[error("{0}")]
    NoSuchEntity(String),
    /// A named thing that does not exist, with the service's exception name
    /// (`PipelineNotFoundException`, `PipelineVersionNotFoundException`, …).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// The entity is in use (a policy still attached, …).
    #[error("{0}")]
    DeleteConflict(String),
    /// Someone else changed it first (a compare-and-set on a version failed).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts (password guessing); try again after `retry_after_secs`.
    #[error("Too many failed attempts; try again in {retry_after_secs} seconds.")]
    Throttled { retry_after_secs: i64 },
    /// A refusal with a service-specific exception name (`PipelineNameInUseException`,
    /// `InvalidStructureException`, …).
    #[error("{message}")]
    Rejected { code: &'static str, message: String },
    /// Anything unexpected. Logged; never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        AppError::Validation {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The error code: the API's `__type` and the audit log's outcome.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::AccessDenied(_) => "AccessDenied",
            AppError::Validation { .. } => "ValidationException",
            AppError::Declaration(problems) => problems.exception(),
            AppError::NoSuchEntity(_) => "NoSuchEntityException",
            AppError::NotFound { code, .. } => code,
            AppError::EntityAlreadyExists(_) => "EntityAlreadyExistsException",
            AppError::DeleteConflict(_) => "DeleteConflictException",
            AppError::Conflict(_) => "ConflictException",
            AppError::Throttled { .. } => "ThrottlingException",
            AppError::Rejected { code, .. } => code,
            AppError::Internal(_) => "InternalFailure",
        }
    }

    /// The message safe to show (internal errors say nothing of their cause).
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => "An internal error occurred.".to_string(),
            other => other.to_string(),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        AppError::Internal(e)
    }
}
