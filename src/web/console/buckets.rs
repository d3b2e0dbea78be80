//! Upload buckets in the console: `/buckets` (the list, a new bucket, deleting an empty one) and
//! `/buckets/{name}` (its versions, newest first, and an upload: a file dropped or chosen, sent
//! by the page's script as one streamed PUT with its progress shown). Everything goes through
//! `ops::buckets`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{
    ConsoleError, Layout, Section, console_page, display_time, render_with_status, see_other,
    segment,
};
use crate::access::{Action, Resource};
use crate::error::AppError;
use crate::ops::buckets::{self, BucketName};
use crate::web::AppState;
use crate::web::auth::{CsrfForm, SignedIn, constant_time_eq};
use crate::web::htmx::HxRequest;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/buckets")
            .route(web::get().to(list))
            .route(web::head().to(list))
            .route(web::post().to(create))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(crate::web::get_only("/buckets/{name}", show))
    .route("/buckets/{name}/delete", web::post().to(delete))
    .route("/buckets/{name}/objects/{key:.+}", web::put().to(upload));
}

fn size_text(bytes: i64) -> String {
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1_048_576 {
        format!("{:.1} KiB", b / 1024.0)
    } else if bytes < 1_073_741_824 {
        format!("{:.1} MiB", b / 1_048_576.0)
    } else {
        format!("{:.2} GiB", b / 1_073_741_824.0)
    }
}

struct BucketRow {
    name: String,
    link: String,
    versions: i64,
    size: String,
    created: String,
    may_delete: bool,
}

#[derive(Template)]
#[template(path = "buckets/list.html", blocks = ["content"])]
struct ListPage {
    layout: Layout,
    rows: Vec<BucketRow>,
    can_create: bool,
    name: String,
    error: Option<String>,
    notice: Option<&'static str>,
}
console_page!(ListPage);

#[derive(Deserialize, Default)]
struct Shown {
    done: Option<String>,
}

async fn list_page(
    state: &AppState,
    user: &SignedIn,
    name: String,
    error: Option<String>,
    notice: Option<&'static str>,
) -> Result<ListPage, ConsoleError> {
    let c = &user.caller;
    let listed = buckets::list_buckets(&state.services, c).await?;
    Ok(ListPage {
        layout: Layout::signed_in(user, Section::Pipelines),
        rows: listed
            .into_iter()
            .map(|b| BucketRow {
                link: segment(&b.name),
                may_delete: c.can(Action::DeleteBucket, &Resource::bucket(&b.name)),
                versions: b.versions,
                size: size_text(b.bytes),
                created: display_time(b.created_at),
                name: b.name,
            })
            .collect(),
        can_create: c.can(Action::CreateBucket, &Resource::bucket("*")),
        name,
        error,
        notice,
    })
}

async fn list(
    state: web::Data<AppState>,
    user: SignedIn,
    shown: web::Query<Shown>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let notice = match shown.done.as_deref() {
        Some("deleted") => Some("The bucket is deleted."),
        _ => None,
    };
    let page = list_page(&state, &user, String::new(), None, notice).await?;
    render_with_status(hx, &page, StatusCode::OK)
}

#[derive(Deserialize)]
struct NewBucket {
    #[serde(default)]
    name: String,
}

async fn create(
    state: web::Data<AppState>,
    form: CsrfForm<NewBucket>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, form } = form;
    let result = async {
        let name = BucketName::parse(form.name.trim())?;
        buckets::create_bucket(&state.services, &user.caller, &name).await?;
        Ok::<_, AppError>(name)
    }
    .await;
    match result {
        Ok(name) => Ok(see_other(&format!(
            "/buckets/{}?done=created",
            segment(name.as_str())
        ))),
        Err(e @ (AppError::Validation { .. } | AppError::Rejected { .. })) => {
            let page = list_page(
                &state,
                &user,
                form.name.clone(),
                Some(e.public_message()),
                None,
            )
            .await?;
            render_with_status(hx, &page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

async fn delete(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<serde_json::Value>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, .. } = form;
    let result = async {
        let name = BucketName::parse(&path)?;
        buckets::delete_bucket(&state.services, &user.caller, &name).await
    }
    .await;
    match result {
        Ok(()) => Ok(see_other("/buckets?done=deleted")),
        Err(e @ (AppError::Validation { .. } | AppError::Rejected { .. })) => {
            let page =
                list_page(&state, &user, String::new(), Some(e.public_message()), None).await?;
            render_with_status(hx, &page, StatusCode::CONFLICT)
        }
        Err(e) => Err(e.into()),
    }
}

struct VersionRow {
    key: String,
    version: String,
    size: String,
    etag: String,
    by: String,
    when: String,
}

#[derive(Template)]
#[template(path = "buckets/show.html", blocks = ["content"])]
struct ShowPage {
    layout: Layout,
    name: String,
    link: String,
    versions: Vec<VersionRow>,
    may_upload: bool,
    limit: String,
    notice: Option<&'static str>,
}
console_page!(ShowPage);

async fn show(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    shown: web::Query<Shown>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let name = BucketName::parse(&path).map_err(|_| ConsoleError::NotFound)?;
    let versions = buckets::list_versions(&state.services, &user.caller, &name, None).await?;
    let page = ShowPage {
        layout: Layout::signed_in(&user, Section::Pipelines),
        link: segment(name.as_str()),
        name: name.as_str().to_string(),
        may_upload: user
            .caller
            .can(Action::PutObject, &Resource::bucket(name.as_str())),
        limit: size_text(i64::try_from(state.services.artifact_limit).unwrap_or(i64::MAX)),
        versions: versions
            .into_iter()
            .map(|v| VersionRow {
                key: v.object_key,
                version: v.version_id.to_string(),
                size: size_text(v.size),
                etag: v.etag.chars().take(12).collect(),
                by: v.uploaded_by,
                when: display_time(v.uploaded_at),
            })
            .collect(),
        notice: match shown.done.as_deref() {
            Some("created") => Some("The bucket is made: upload a first version."),
            Some("uploaded") => {
                Some("The new version is stored; pipelines watching its key have started.")
            }
            _ => None,
        },
    };
    render_with_status(hx, &page, StatusCode::OK)
}

/// The page's upload: a PUT of the file's bytes, signed in, with the session's CSRF token in
/// `X-CSRF-Token` (a cross-site page cannot set it). Answered in JSON for the script.
async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<(String, String)>,
    body: web::Payload,
) -> HttpResponse {
    let json = |status: StatusCode, value: serde_json::Value| {
        HttpResponse::build(status)
            .content_type("application/json")
            .body(value.to_string())
    };
    let presented = req
        .headers()
        .get("X-CSRF-Token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !constant_time_eq(presented.as_bytes(), user.csrf_token.as_bytes()) {
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"message": "This page is out of date: reload it and upload again."}),
        );
    }
    let (bucket, key) = path.into_inner();
    let s = &state.services;
    let checked = async {
        let name = BucketName::parse(&bucket)?;
        buckets::check_key(&key)?;
        crate::ops::require(
            s,
            &user.caller,
            Action::PutObject,
            &Resource::bucket(name.as_str()),
            serde_json::json!({"bucketName": name.as_str(), "key": key}),
        )
        .await?;
        Ok::<_, AppError>(name)
    }
    .await;
    let name = match checked {
        Ok(name) => name,
        Err(e) => {
            let status = match e {
                AppError::AccessDenied(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            return json(status, serde_json::json!({"message": e.public_message()}));
        }
    };
    let limit = s.artifact_limit;
    let too_large = || {
        json(
            StatusCode::PAYLOAD_TOO_LARGE,
            serde_json::json!({"message": format!("A file is at most {} here.", size_text(i64::try_from(limit).unwrap_or(i64::MAX)))}),
        )
    };
    if crate::web::upload::declares_too_much(&req, limit) {
        return too_large();
    }
    let received = match crate::web::upload::receive(s, body).await {
        Ok(upload) => upload,
        Err(crate::web::upload::Refused::TooLarge) => return too_large(),
        Err(crate::web::upload::Refused::CutOff) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"message": "The upload was cut off; nothing was stored."}),
            );
        }
        Err(crate::web::upload::Refused::Internal(e)) => {
            tracing::error!(error = %e, "an upload failed");
            return json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"message": "Sluice could not store the file; the problem has been logged."}),
            );
        }
    };
    match buckets::put_object(s, &user.caller, &name, &key, received).await {
        Ok(v) => json(
            StatusCode::OK,
            serde_json::json!({"versionId": v.version_id, "next": format!("/buckets/{}?done=uploaded", segment(name.as_str()))}),
        ),
        Err(e) => json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"message": e.public_message()}),
        ),
    }
}
