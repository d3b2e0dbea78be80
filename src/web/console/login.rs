//! First-run set-up, sign-in and sign-out.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{ConsoleError, Layout, console_page, render_with_status, see_other};
use crate::ops::auth::{self, SignInError};
use crate::web::AppState;
use crate::web::auth::{CsrfForm, removal_cookie, safe_next, same_origin, session_cookie};
use crate::web::htmx::HxRequest;
use crate::web::request::actor;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/login")
            .route(web::get().to(show_login))
            .route(web::post().to(sign_in))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/setup")
            .route(web::get().to(show_setup))
            .route(web::post().to(setup))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/logout")
            .route(web::post().to(sign_out))
            .default_service(web::to(super::method_not_allowed)),
    );
}

#[derive(Template)]
#[template(path = "auth/login.html", blocks = ["content"])]
struct LoginPage {
    layout: Layout,
    username: String,
    next: String,
    error: Option<String>,
}
console_page!(LoginPage);

#[derive(Template)]
#[template(path = "auth/setup.html", blocks = ["content"])]
struct SetupPage {
    layout: Layout,
    username: String,
    error: Option<String>,
}
console_page!(SetupPage);

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn show_login(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<NextQuery>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    if auth::setup_open(&state.services).await? {
        return Ok(see_other("/setup"));
    }
    if req.cookie(crate::web::auth::cookie_name(&state)).is_some()
        && <crate::web::auth::SignedIn as actix_web::FromRequest>::extract(&req)
            .await
            .is_ok()
    {
        return Ok(see_other(safe_next(query.next.as_deref().unwrap_or("/"))));
    }
    let page = LoginPage {
        layout: Layout::public(),
        username: String::new(),
        next: safe_next(query.next.as_deref().unwrap_or("/")).to_string(),
        error: None,
    };
    render_with_status(hx, &page, StatusCode::OK)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    // No session exists yet, so the origin check is the CSRF defence here (login CSRF).
    if !same_origin(&req, &state) {
        return Err(ConsoleError::CsrfRejected);
    }
    let form = form.into_inner();
    let next = safe_next(&form.next).to_string();
    let page = |error: &str| LoginPage {
        layout: Layout::public(),
        username: form.username.chars().take(64).collect(),
        next: next.clone(),
        error: Some(error.to_string()),
    };
    match auth::sign_in(
        &state.services,
        &form.username,
        &form.password,
        &actor(&req, &state),
    )
    .await
    {
        Ok(session) => Ok(HttpResponse::SeeOther()
            .cookie(session_cookie(&state, session.token.expose()))
            .insert_header((header::LOCATION, next.clone()))
            .finish()),
        Err(SignInError::Invalid) => render_with_status(
            hx,
            &page("The user name or password is not correct."),
            StatusCode::UNAUTHORIZED,
        ),
        Err(SignInError::Throttled { retry_after }) => {
            let seconds = retry_after.whole_seconds().max(1);
            let minutes = (seconds + 59) / 60;
            let mut response = render_with_status(
                hx,
                &page(&format!(
                    "Too many failed sign-ins. Try again in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                )),
                StatusCode::TOO_MANY_REQUESTS,
            )?;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
            Ok(response)
        }
        Err(SignInError::Internal(e)) => Err(e.into()),
    }
}

async fn show_setup(
    state: web::Data<AppState>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    if !auth::setup_open(&state.services).await? {
        return Err(ConsoleError::NotFound);
    }
    let page = SetupPage {
        layout: Layout::public(),
        username: String::new(),
        error: None,
    };
    render_with_status(hx, &page, StatusCode::OK)
}

#[derive(Deserialize)]
struct SetupForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

async fn setup(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<SetupForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    if !same_origin(&req, &state) {
        return Err(ConsoleError::CsrfRejected);
    }
    if !auth::setup_open(&state.services).await? {
        return Err(ConsoleError::NotFound);
    }
    let form = form.into_inner();
    let again = |error: String| SetupPage {
        layout: Layout::public(),
        username: form.username.chars().take(64).collect(),
        error: Some(error),
    };
    if form.password != form.password_confirm {
        return render_with_status(
            hx,
            &again("The two passwords differ.".into()),
            StatusCode::BAD_REQUEST,
        );
    }
    match auth::setup(
        &state.services,
        &form.username,
        &form.password,
        &actor(&req, &state),
    )
    .await
    {
        Ok(Some(session)) => Ok(HttpResponse::SeeOther()
            .cookie(session_cookie(&state, session.token.expose()))
            .insert_header((header::LOCATION, "/"))
            .finish()),
        Ok(None) => Err(ConsoleError::NotFound),
        Err(crate::error::AppError::Validation { field, message }) => {
            let label = if field == "username" {
                "User name"
            } else {
                "Password"
            };
            render_with_status(
                hx,
                &again(format!("{label}: {message}")),
                StatusCode::BAD_REQUEST,
            )
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn sign_out(
    state: web::Data<AppState>,
    form: CsrfForm<Empty>,
) -> Result<HttpResponse, ConsoleError> {
    auth::sign_out(&state.services, &form.user.caller).await?;
    Ok(HttpResponse::SeeOther()
        .cookie(removal_cookie(&state))
        .insert_header((header::LOCATION, "/login"))
        .finish())
}
