//! `/account`: the signed-in user's password, sessions and API tokens (self-service).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::{
    ConsoleError, Layout, Section, console_page, display_time, render_with_status, see_other,
};
use crate::error::AppError;
use crate::ops::iam;
use crate::web::AppState;
use crate::web::auth::{CsrfForm, SignedIn};
use crate::web::htmx::HxRequest;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::web::get_only("/account", show))
        .route("/account/password", web::post().to(change_password))
        .route(
            "/account/sessions/{id}/revoke",
            web::post().to(revoke_session),
        )
        .route("/account/tokens", web::post().to(create_token))
        .service(crate::web::get_only(
            "/account/tokens/{id}/created",
            token_created,
        ))
        .route("/account/tokens/{id}/revoke", web::post().to(revoke_token));
}

struct SessionView {
    id: Uuid,
    created_at: String,
    last_seen_at: String,
    source_ip: String,
    user_agent: String,
    current: bool,
}

struct TokenView {
    token_id: Uuid,
    name: String,
    created_at: String,
    expires_at: String,
    last_used_at: String,
    narrowed: bool,
}

#[derive(Default)]
struct PasswordErrors {
    current: Option<String>,
    new: Option<String>,
}

#[derive(Default)]
struct TokenForm {
    name: String,
    /// `default`, `days` or `never` (empty: default).
    expiry: String,
    expires_in_days: String,
    policy_document: String,
    name_error: Option<String>,
    expires_error: Option<String>,
    policy_error: Option<String>,
    password_error: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html", blocks = ["content"])]
struct AccountPage {
    layout: Layout,
    default_expiry_days: Option<i64>,
    user_name: String,
    notice: Option<String>,
    new_token: Option<String>,
    password_errors: PasswordErrors,
    sessions: Vec<SessionView>,
    tokens: Vec<TokenView>,
    token_form: TokenForm,
}
console_page!(AccountPage);

/// The page's variable parts.
#[derive(Default)]
struct Extras {
    notice: Option<String>,
    new_token: Option<String>,
    password_errors: PasswordErrors,
    token_form: TokenForm,
}

async fn page(
    state: &AppState,
    user: &SignedIn,
    extras: Extras,
) -> Result<AccountPage, ConsoleError> {
    let s = &state.services;
    let sessions = iam::list_sessions(s, &user.caller, None).await?;
    let tokens = iam::list_access_keys(s, &user.caller, None).await?;
    let never = || "—".to_string();
    Ok(AccountPage {
        layout: Layout::signed_in(user, Section::Account),
        default_expiry_days: s.token_default_expiry_days,
        user_name: user.caller.user_name().to_string(),
        notice: extras.notice,
        new_token: extras.new_token,
        password_errors: extras.password_errors,
        sessions: sessions
            .into_iter()
            .map(|s| SessionView {
                id: s.id,
                created_at: display_time(s.created_at),
                last_seen_at: display_time(s.last_seen_at),
                source_ip: s.source_ip.unwrap_or_else(never),
                user_agent: s.user_agent.unwrap_or_else(never),
                current: s.current,
            })
            .collect(),
        tokens: tokens
            .into_iter()
            .map(|t| TokenView {
                token_id: t.token_id,
                name: if t.name.is_empty() {
                    "(unnamed)".into()
                } else {
                    t.name
                },
                created_at: display_time(t.created_at),
                expires_at: t.expires_at.map_or_else(|| "Never".into(), display_time),
                last_used_at: t.last_used_at.map_or_else(never, display_time),
                narrowed: t.narrowed,
            })
            .collect(),
        token_form: extras.token_form,
    })
}

#[derive(Deserialize)]
struct Flash {
    done: Option<String>,
}

async fn show(
    state: web::Data<AppState>,
    user: SignedIn,
    query: web::Query<Flash>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let notice = match query.done.as_deref() {
        Some("password") => {
            Some("Your password was changed. Your other sessions have ended.".to_string())
        }
        Some("session") => Some("The session was ended.".to_string()),
        Some("token-revoked") => Some("The token was revoked.".to_string()),
        _ => None,
    };
    let page = page(
        &state,
        &user,
        Extras {
            notice,
            ..Default::default()
        },
    )
    .await?;
    render_with_status(hx, &page, StatusCode::OK)
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_confirm: String,
}

async fn change_password(
    state: web::Data<AppState>,
    form: CsrfForm<PasswordForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, form } = form;
    let result = if form.new_password != form.new_password_confirm {
        Err(AppError::validation(
            "newPassword",
            "the two new passwords differ",
        ))
    } else {
        iam::change_password(
            &state.services,
            &user.caller,
            &form.current_password,
            &form.new_password,
        )
        .await
    };
    match result {
        Ok(()) => Ok(see_other("/account?done=password")),
        Err(AppError::Validation { field, message }) => {
            let password_errors = if field == "currentPassword" {
                PasswordErrors {
                    current: Some(message),
                    new: None,
                }
            } else {
                PasswordErrors {
                    current: None,
                    new: Some(message),
                }
            };
            let page = page(
                &state,
                &user,
                Extras {
                    password_errors,
                    ..Default::default()
                },
            )
            .await?;
            render_with_status(hx, &page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct Empty {}

fn uuid_param(raw: &str) -> Result<Uuid, ConsoleError> {
    Uuid::parse_str(raw).map_err(|_| ConsoleError::NotFound)
}

async fn revoke_session(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<Empty>,
) -> Result<HttpResponse, ConsoleError> {
    let id = uuid_param(&path)?;
    iam::delete_sessions(&state.services, &form.user.caller, None, Some(id)).await?;
    Ok(see_other("/account?done=session"))
}

#[derive(Deserialize)]
struct TokenRequest {
    #[serde(default)]
    name: String,
    /// `default`, `days` or `never`.
    #[serde(default)]
    expiry: String,
    #[serde(default)]
    expires_in_days: String,
    #[serde(default)]
    policy_document: String,
    #[serde(default)]
    password: String,
}

/// Creates a token (after the password is confirmed again) and redirects to the page that shows
/// it once, so a reload can never mint a second one.
async fn create_token(
    state: web::Data<AppState>,
    form: CsrfForm<TokenRequest>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, form } = form;
    let mut token_form = TokenForm {
        name: form.name.clone(),
        expiry: form.expiry.clone(),
        expires_in_days: form.expires_in_days.trim().to_string(),
        policy_document: form.policy_document.clone(),
        ..Default::default()
    };
    let expiry = match form.expiry.as_str() {
        "never" => Ok(iam::TokenExpiry::Never),
        "days" => token_form
            .expires_in_days
            .parse::<i64>()
            .map(iam::TokenExpiry::Days)
            .map_err(|_| "must be a whole number of days".to_string()),
        _ => Ok(iam::TokenExpiry::Default),
    };
    let policy = Some(form.policy_document.trim()).filter(|p| !p.is_empty());
    let result = match expiry {
        Err(message) => Err(AppError::validation("expiresInDays", message)),
        Ok(expiry) => {
            iam::create_access_key(
                &state.services,
                &user.caller,
                None,
                &form.name,
                expiry,
                policy,
                Some(&form.password),
            )
            .await
        }
    };
    match result {
        Ok(created) => Ok(see_other(&format!(
            "/account/tokens/{}/created",
            created.key.token_id
        ))),
        Err(AppError::Validation { field, message }) => {
            match field.as_str() {
                "expiresInDays" => token_form.expires_error = Some(message),
                "password" => token_form.password_error = Some(message),
                "name" => token_form.name_error = Some(message),
                _ => token_form.policy_error = Some(message),
            }
            let page = page(
                &state,
                &user,
                Extras {
                    token_form,
                    ..Default::default()
                },
            )
            .await?;
            render_with_status(hx, &page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

/// The page after creating a token: shows it once. A reload finds it already shown.
async fn token_created(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let id = uuid_param(&path)?;
    let token = iam::reveal_new_access_key(&state.services, &user.caller, id).await?;
    let notice = token.is_none().then(|| {
        "That token was shown once, when it was created, and cannot be shown again. Revoke it and create another if you did not keep it.".to_string()
    });
    let page = page(
        &state,
        &user,
        Extras {
            notice,
            new_token: token,
            ..Default::default()
        },
    )
    .await?;
    let mut response = render_with_status(hx, &page, StatusCode::OK)?;
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

async fn revoke_token(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<Empty>,
) -> Result<HttpResponse, ConsoleError> {
    iam::delete_access_key(&state.services, &form.user.caller, None, &path).await?;
    Ok(see_other("/account?done=token-revoked"))
}
