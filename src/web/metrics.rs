//! `GET /metrics`: Prometheus' text format. Readable without credentials from the address ranges
//! of `--metrics-allow` (loopback by default), else with an API token whose user is allowed
//! `sluice:GetMetrics` (`Authorization: Bearer …`; a refusal is audited like any other).
//!
//! This process's histograms (`crate::metrics`) and, read from the database at each scrape, what
//! every process shares: the queue's depth and the worker pools with their heartbeats.

use std::fmt::Write;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::request::actor;
use crate::access::{Action, Resource};
use crate::db;
use crate::metrics::escape;

fn text(status: actix_web::http::StatusCode, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body.to_string())
}

/// Whether the request may read the metrics.
async fn allowed(req: &HttpRequest, state: &AppState) -> Result<(), HttpResponse> {
    let who = actor(req, state);
    let from_allowed = who
        .source_ip
        .as_deref()
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| state.info.metrics_allow.iter().any(|r| r.contains(ip)));
    if from_allowed {
        return Ok(());
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return Err(text(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "metrics need an API token allowed sluice:GetMetrics, or a request from --metrics-allow\n",
        ));
    };
    let caller = crate::ops::auth::resolve_token(&state.services, token, who)
        .await
        .map_err(|_| {
            text(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "the token is not valid\n",
            )
        })?;
    crate::ops::require(
        &state.services,
        &caller,
        Action::GetMetrics,
        &Resource::All,
        serde_json::json!({"path": "/metrics"}),
    )
    .await
    .map_err(|_| {
        text(
            actix_web::http::StatusCode::FORBIDDEN,
            "this token's user is not allowed sluice:GetMetrics\n",
        )
    })
}

pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(refused) = allowed(&req, &state).await {
        return refused;
    }
    let mut out = String::with_capacity(16 * 1024);
    crate::metrics::render(&mut out);
    let now = state.services.clock.now();
    let shared = async {
        let mut conn = state.services.pool.acquire().await?;
        let depth = db::jobs::depth(&mut conn, now).await?;
        let pools = db::workers::recent(&mut conn, now - time::Duration::minutes(10)).await?;
        let running = db::workers::running(&mut conn).await?;
        Ok::<_, sqlx::Error>((depth, pools, running))
    }
    .await;
    match shared {
        Ok(((runnable, scheduled, running_jobs), pools, running)) => {
            out.push_str("# HELP sluice_jobs Jobs in the queue by state (shared by every process).\n# TYPE sluice_jobs gauge\n");
            let _ = writeln!(out, "sluice_jobs{{state=\"runnable\"}} {runnable}");
            let _ = writeln!(out, "sluice_jobs{{state=\"scheduled\"}} {scheduled}");
            let _ = writeln!(out, "sluice_jobs{{state=\"running\"}} {running_jobs}");
            out.push_str("# HELP sluice_running_actions Actions running now on all workers.\n# TYPE sluice_running_actions gauge\n");
            let _ = writeln!(out, "sluice_running_actions {}", running.len());
            out.push_str("# HELP sluice_worker_pool_workers Workers of each pool that has not stopped.\n# TYPE sluice_worker_pool_workers gauge\n");
            let live: Vec<_> = pools.iter().filter(|p| p.stopped_at.is_none()).collect();
            let labels = |p: &db::workers::PoolRow| {
                format!(
                    "pool=\"{}\",host=\"{}\",command=\"{}\"",
                    p.id,
                    escape(&p.host),
                    escape(&p.kind)
                )
            };
            for p in &live {
                let _ = writeln!(
                    out,
                    "sluice_worker_pool_workers{{{}}} {}",
                    labels(p),
                    p.slots
                );
            }
            out.push_str("# HELP sluice_worker_pool_running Actions each pool runs now.\n# TYPE sluice_worker_pool_running gauge\n");
            for p in &live {
                let n = running.iter().filter(|r| r.pool == p.id).count();
                let _ = writeln!(out, "sluice_worker_pool_running{{{}}} {n}", labels(p));
            }
            out.push_str("# HELP sluice_worker_pool_heartbeat_age_seconds Seconds since each pool's last heartbeat (every 10 s while alive).\n# TYPE sluice_worker_pool_heartbeat_age_seconds gauge\n");
            for p in &live {
                let age = (now - p.heartbeat_at).as_seconds_f64().max(0.0);
                let _ = writeln!(
                    out,
                    "sluice_worker_pool_heartbeat_age_seconds{{{}}} {age:.3}",
                    labels(p)
                );
            }
            out.push_str("# HELP sluice_database_up Whether the database answered this scrape.\n# TYPE sluice_database_up gauge\nsluice_database_up 1\n");
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database did not answer");
            out.push_str("# HELP sluice_database_up Whether the database answered this scrape.\n# TYPE sluice_database_up gauge\nsluice_database_up 0\n");
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(out)
}
