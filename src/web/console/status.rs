//! `/`: the status page (until pipelines exist): version, database mode, PostgreSQL version,
//! migrations applied.

use actix_web::{HttpResponse, web};
use askama::Template;
use time::format_description::well_known::Rfc3339;

use super::{ConsoleError, Layout, Section, console_page, display_time, render};
use crate::access::{Action, Resource};
use crate::db::{self, NotReady};
use crate::web::auth::SignedIn;
use crate::web::htmx::HxRequest;
use crate::web::{AppState, DatabaseMode};

struct MigrationRow {
    version: i64,
    description: String,
    /// Machine-readable (RFC 3339), for `<time datetime>`.
    applied_at: String,
    /// For people: `2026-11-27 10:07:11 UTC`.
    applied_at_display: String,
}

#[derive(Template)]
#[template(path = "console/status.html", blocks = ["content"])]
struct StatusPage {
    layout: Layout,
    /// Versions, database and migrations: only for those allowed `sluice:GetServerStatus`.
    details: bool,
    ready: bool,
    not_ready_reason: Option<String>,
    version: &'static str,
    database_mode: &'static str,
    postgres_version: String,
    workers: u16,
    public_url: String,
    migrations: Vec<MigrationRow>,
    migrations_known: usize,
}
console_page!(StatusPage);

pub async fn show(
    state: web::Data<AppState>,
    user: SignedIn,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let details = user.caller.can(Action::GetServerStatus, &Resource::All);
    let readiness = db::readiness(state.pool()).await;
    if !details {
        let page = StatusPage {
            layout: Layout::signed_in(&user, Section::Status),
            details,
            ready: readiness.is_ok(),
            not_ready_reason: None,
            version: "",
            database_mode: "",
            postgres_version: String::new(),
            workers: 0,
            public_url: String::new(),
            migrations: Vec::new(),
            migrations_known: 0,
        };
        return render(hx, &page);
    }
    let postgres_version = db::status::server_version(state.pool()).await?;
    let migrations = db::status::applied_migrations(state.pool())
        .await?
        .into_iter()
        .map(|m| MigrationRow {
            version: m.version,
            description: m.description,
            applied_at: m.installed_on.format(&Rfc3339).unwrap_or_default(),
            applied_at_display: display_time(m.installed_on),
        })
        .collect();
    let page = StatusPage {
        layout: Layout::signed_in(&user, Section::Status),
        details,
        ready: readiness.is_ok(),
        not_ready_reason: readiness.err().as_ref().map(NotReady::reason),
        version: crate::VERSION,
        database_mode: match state.info.database_mode {
            DatabaseMode::Embedded => "Embedded (private cluster in the data directory)",
            DatabaseMode::External => "External (DATABASE_URL)",
        },
        postgres_version,
        workers: state.info.workers.get(),
        public_url: state.info.public_url.as_str().to_string(),
        migrations,
        migrations_known: db::MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .count(),
    };
    render(hx, &page)
}
