//! `/admin/workers`: every worker pool sharing the database (`sluice:ListWorkers`).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;

use super::super::{
    ConsoleError, Layout, Section, console_page, display_time, render_with_status, segment,
};
use crate::ops::workers::{self, PoolState};
use crate::web::AppState;
use crate::web::auth::SignedIn;
use crate::web::htmx::HxRequest;

struct RunningRow {
    pipeline: String,
    pipeline_link: String,
    execution: String,
    what: String,
    log_link: String,
    since: String,
}

struct PoolRow {
    id: String,
    host: String,
    pid: i32,
    version: String,
    kind: String,
    slots: i32,
    /// The deployment groups its host is in.
    labels: Vec<String>,
    started: String,
    heartbeat: String,
    state: (&'static str, &'static str),
    running: Vec<RunningRow>,
}

#[derive(Template)]
#[template(path = "admin/workers.html", blocks = ["content"])]
struct WorkersPage {
    layout: Layout,
    pools: Vec<PoolRow>,
    slots: i32,
    busy: usize,
}
console_page!(WorkersPage);

pub async fn workers(
    state: web::Data<AppState>,
    user: SignedIn,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let pools = workers::list_workers(&state.services, &user.caller).await?;
    let live = pools.iter().filter(|p| p.state == PoolState::Running);
    let slots = live.clone().map(|p| p.slots).sum();
    let busy = live.map(|p| p.running.len()).sum();
    let page = WorkersPage {
        layout: Layout::signed_in(&user, Section::Admin),
        slots,
        busy,
        pools: pools
            .into_iter()
            .map(|p| PoolRow {
                id: p.id.simple().to_string()[..8].to_string(),
                host: p.host,
                pid: p.pid,
                version: p.version,
                kind: match p.kind.as_str() {
                    "worker" => "sluice worker",
                    _ => "sluice serve",
                }
                .to_string(),
                slots: p.slots,
                labels: p.labels.as_slice().to_vec(),
                started: display_time(p.started),
                heartbeat: display_time(p.heartbeat),
                state: match p.state {
                    PoolState::Running => ("status-succeeded", "Running"),
                    PoolState::Stopped => ("status-stopped", "Stopped"),
                    PoolState::Lost => ("status-failed", "Lost"),
                },
                running: p
                    .running
                    .into_iter()
                    .map(|r| {
                        let link = segment(&r.pipeline);
                        RunningRow {
                            execution: r.execution_id.to_string(),
                            what: format!("{} › {}", r.stage, r.action),
                            log_link: format!("/pipelines/{link}/actions/{}/log", r.attempt_id),
                            since: r.since.map(display_time).unwrap_or_default(),
                            pipeline_link: link,
                            pipeline: r.pipeline,
                        }
                    })
                    .collect(),
            })
            .collect(),
    };
    render_with_status(hx, &page, StatusCode::OK)
}
