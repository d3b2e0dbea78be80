//! A pipeline's triggers page: each Git source action's push webhook (the URL and secret to paste
//! into the repository host, made and replaced here), whether it is polled, and its last
//! deliveries with what each did.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{
    ConsoleError, Layout, Section, console_page, display_time, render_with_status, see_other,
    segment,
};
use crate::ops::hooks;
use crate::web::AppState;
use crate::web::auth::{CsrfForm, SignedIn};
use crate::web::htmx::HxRequest;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::web::get_only("/pipelines/{name}/triggers", show))
        .route(
            "/pipelines/{name}/triggers/secret",
            web::post().to(put_secret),
        );
}

struct DeliveryRow {
    received: String,
    host: String,
    event: String,
    outcome: String,
    execution: Option<String>,
}

struct HookRow {
    action: String,
    path: String,
    secret: Option<String>,
    has_secret: bool,
    may_put: bool,
    polled: bool,
    filtered: bool,
    deliveries: Vec<DeliveryRow>,
}

#[derive(Template)]
#[template(path = "pipelines/triggers.html", blocks = ["content"])]
struct TriggersPage {
    layout: Layout,
    name: String,
    link: String,
    /// The server's URL, before each hook's path.
    base: String,
    poll_every: String,
    csrf: String,
    done: Option<&'static str>,
    hooks: Vec<HookRow>,
}
console_page!(TriggersPage);

#[derive(Deserialize)]
struct Shown {
    done: Option<String>,
}

async fn show(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    query: web::Query<Shown>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let name = path.into_inner();
    let views = hooks::hooks_of(&state.services, &user.caller, &name).await?;
    let layout = Layout::signed_in(&user, Section::Pipelines);
    let secs = state.services.poll_interval.as_secs();
    let page = TriggersPage {
        csrf: layout.csrf().to_string(),
        layout,
        link: segment(&name),
        base: state
            .info
            .public_url
            .as_str()
            .trim_end_matches('/')
            .to_string(),
        poll_every: if secs.is_multiple_of(60) {
            format!("{} min", secs / 60)
        } else {
            format!("{secs} s")
        },
        done: match query.done.as_deref() {
            Some("made") => {
                Some("The webhook has its secret: paste it into the repository's webhook settings.")
            }
            Some("replaced") => Some("The webhook has a new secret; the old one no longer works."),
            _ => None,
        },
        hooks: views
            .into_iter()
            .map(|h| HookRow {
                path: format!("/hooks/{}/{}", segment(&name), segment(&h.action)),
                action: h.action,
                secret: h.secret,
                has_secret: h.has_secret,
                may_put: h.may_put,
                polled: h.polled,
                filtered: h.filtered,
                deliveries: h
                    .deliveries
                    .into_iter()
                    .map(|d| DeliveryRow {
                        received: display_time(d.received_at),
                        host: d.host,
                        event: if d.event.is_empty() {
                            "—".into()
                        } else {
                            d.event
                        },
                        outcome: d.outcome,
                        execution: d.execution_id.map(|e| e.to_string()),
                    })
                    .collect(),
            })
            .collect(),
        name,
    };
    render_with_status(hx, &page, StatusCode::OK)
}

#[derive(Deserialize)]
struct SecretForm {
    action: String,
    replace: Option<String>,
}

async fn put_secret(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<SecretForm>,
) -> Result<HttpResponse, ConsoleError> {
    let name = path.into_inner();
    let replace = form.form.replace.as_deref() == Some("true");
    hooks::put_secret(
        &state.services,
        &form.user.caller,
        &name,
        &form.form.action,
        replace,
    )
    .await?;
    Ok(see_other(&format!(
        "/pipelines/{}/triggers?done={}",
        segment(&name),
        if replace { "replaced" } else { "made" }
    )))
}
