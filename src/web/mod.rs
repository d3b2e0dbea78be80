//! The only module that knows HTTP: the route table, middleware, console pages, static files.
//!
//! Request path (outermost first): tracing span with a request id → security headers → access log
//! → response compression (gzip, when the client accepts it) → error pages (renders every console
//! error in the layout) → body limit → route handler.

mod api;
mod auth;
mod console;
mod download;
mod error;
mod health;
mod hooks;
mod htmx;
pub mod live;
mod metrics;
mod middleware;
mod request;
mod static_files;
mod upload;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use sqlx::PgPool;
use tracing_actix_web::TracingLogger;

use crate::config::{BodyLimit, PublicUrl, ServeSettings, WorkerCount};
use crate::ops::Services;

pub use static_files::asset_url;

/// Whether the database is Sluice's own private cluster or an external server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseMode {
    Embedded,
    External,
}

/// Facts about this server shown in the console and used by the web layer.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub database_mode: DatabaseMode,
    pub workers: WorkerCount,
    pub public_url: PublicUrl,
    pub trusted_proxies: crate::config::TrustedProxies,
    /// Who may read `/metrics` without a token.
    pub metrics_allow: Vec<crate::config::ProxyCidr>,
}

/// Shared state handed to every handler.
#[derive(Clone)]
pub struct AppState {
    services: Services,
    info: ServerInfo,
    /// This process's live updates.
    live: live::Hub,
}

impl AppState {
    pub fn new(services: Services, info: ServerInfo, live: live::Hub) -> Self {
        Self {
            services,
            info,
            live,
        }
    }

    fn pool(&self) -> &PgPool {
        &self.services.pool
    }
}

/// Builds the HTTP server on an already bound listener.
pub fn server(
    listener: TcpListener,
    state: AppState,
    settings: &ServeSettings,
) -> std::io::Result<Server> {
    let https = state.info.public_url.is_https();
    let state = web::Data::new(state);
    let limit = settings.body_limit;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(|cfg| body_limits(cfg, limit))
            .configure(routes)
            .wrap(actix_web::middleware::from_fn(middleware::limit_body))
            .wrap(actix_web::middleware::from_fn(
                middleware::render_error_pages,
            ))
            .wrap(actix_web::middleware::Compress::default())
            .wrap(actix_web::middleware::from_fn(middleware::access_log))
            .wrap(middleware::security_headers(https))
            .wrap(TracingLogger::default())
    })
    .shutdown_timeout(settings.shutdown_timeout_secs)
    // `startup` handles the signals: live streams must end before HTTP drains.
    .disable_signals()
    .client_request_timeout(Duration::from_secs(30))
    .listen(listener)?
    .run();
    Ok(server)
}

fn body_limits(cfg: &mut web::ServiceConfig, limit: BodyLimit) {
    cfg.app_data(web::Data::new(limit))
        .app_data(web::PayloadConfig::new(limit.bytes()))
        .app_data(web::FormConfig::default().limit(limit.bytes()))
        .app_data(web::JsonConfig::default().limit(limit.bytes()));
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .route(
                web::post()
                    .guard(actix_web::guard::fn_guard(api::amz_target))
                    .to(api::by_target),
            )
            .route(web::get().to(console::pipelines_list))
            .route(web::head().to(console::pipelines_list))
            .default_service(web::to(console::method_not_allowed)),
    )
    .configure(api::routes)
    .service(get_only("/healthz", health::healthz))
    .service(get_only("/readyz", health::readyz))
    .service(get_only("/metrics", metrics::metrics))
    .service(get_only("/static/{path:.*}", static_files::serve))
    .service(get_only("/artifact-links/{token}", api::linked_artifact))
    .service(
        web::resource("/hooks/{pipeline}/{action}")
            .route(web::post().to(hooks::receive))
            .default_service(web::to(console::method_not_allowed)),
    )
    .configure(console::routes)
    .default_service(web::to(console::not_found));
}

/// A resource answering GET and HEAD with `handler`, and any other method with the 405 page.
/// (Without its own default, a resource would fall through to the app's 404.)
fn get_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(console::method_not_allowed))
}
