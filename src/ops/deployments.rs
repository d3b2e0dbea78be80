//! Fleet deploys: a Directory deploy that names a `DeploymentGroup` deploys on every live worker
//! pool whose labels hold the group (CodeDeploy's deployment group; the worker is the agent).
//!
//! The action's own job is the rollout: whichever worker claims it fixes the group's hosts
//! (`deploy_hosts`), then queues one job per host of each wave, targeted at that host's pool
//! (claimed only by it, see `workers`), and decides the next wave from the hosts' states with
//! [`engine::rollout::next`]. Everything it knows is in the database, so a rollout whose worker
//! died is taken up where it stood by the next claim of its job. A host job deploys (or switches
//! back) on its host and records its host's new state in the transaction that finishes it.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::access::{Action, Resource};
use crate::db::{self, deployments::HostRow, jobs::Claimed};
use crate::engine::rollout::{self, DeploymentConfig, Host, MinimumHealthyHosts, Next, Outcome};
use crate::error::AppError;
use crate::ops::executions::ActionJob;
use crate::ops::{Caller, Kind, Op, Services};
use crate::providers::{self, log::Log};

/// The kind of a host's job.
pub const HOST_JOB: &str = "deploy_host";

/// A pool silent this long is gone: its host fails rather than hold the rollout forever.
const HOST_SILENCE: time::Duration = time::Duration::seconds(30);
/// How often the rollout looks at its hosts.
const POLL: StdDuration = StdDuration::from_millis(200);

/// A group deploy's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Canonical (lowercase), as worker labels are stored.
    pub label: String,
    pub config: DeploymentConfig,
    pub minimum: Option<MinimumHealthyHosts>,
    pub auto_rollback: bool,
}

impl Group {
    /// The group an action's resolved configuration names; `Ok(None)` without `DeploymentGroup`
    /// (the action deploys on whichever worker claims it).
    pub fn of(configuration: &BTreeMap<String, String>) -> Result<Option<Group>, String> {
        let Some(name) = configuration.get("DeploymentGroup") else {
            return Ok(None);
        };
        let label = crate::workers::labels::Labels::group(name)
            .map_err(|e| format!("DeploymentGroup: {e}"))?;
        let config = configuration
            .get("DeploymentConfig")
            .map(|c| DeploymentConfig::parse(c))
            .transpose()?
            .unwrap_or(DeploymentConfig::OneAtATime);
        let minimum = configuration
            .get("MinimumHealthyHosts")
            .map(|m| MinimumHealthyHosts::parse(m))
            .transpose()?;
        let auto_rollback = configuration
            .get("AutoRollback")
            .map(|f| crate::engine::approval::parse_flag(f.trim()))
            .transpose()
            .map_err(|e| format!("AutoRollback {e}"))?
            .unwrap_or(true);
        Ok(Some(Group {
            label,
            config,
            minimum,
            auto_rollback,
        }))
    }
}

/// What a host's job does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "camelCase")]
pub enum HostMode {
    Deploy,
    #[serde(rename_all = "camelCase")]
    RollBack {
        release: String,
        previous_release: Option<String>,
    },
}

/// A host job's payload: the action attempt, the host's place in the rollout, what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostJob {
    #[serde(flatten)]
    pub action: ActionJob,
    pub position: i32,
    #[serde(flatten)]
    pub mode: HostMode,
}

impl HostJob {
    pub fn of(payload: &serde_json::Value) -> Result<HostJob, AppError> {
        serde_json::from_value(payload.clone())
            .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("a host job's payload")))
    }
}

fn host_state(text: &str) -> Result<Host, AppError> {
    Ok(match text {
        "Pending" => Host::Pending,
        "Deploying" => Host::Deploying,
        "Deployed" => Host::Deployed,
        "Failed" => Host::Failed,
        "Skipped" => Host::Skipped,
        "RollingBack" => Host::RollingBack,
        "RolledBack" => Host::RolledBack,
        "RollbackFailed" => Host::RollbackFailed,
        other => {
            return Err(AppError::Internal(anyhow::anyhow!(
                "a deploy host in the unknown state {other}"
            )));
        }
    })
}

/// How each host is called in logs and summaries: its name, with its worker's process id where
/// several hosts share a name (several workers on one machine).
pub fn host_names(rows: &[HostRow]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            if rows.iter().filter(|o| o.host == r.host).count() > 1 {
                format!("{} (pid {})", r.host, r.pid)
            } else {
                r.host.clone()
            }
        })
        .collect()
}

/// Runs a group deploy as the job `job` (attempt `attempt_id`), to its end: the summary of a
/// rollout every host took, or why it failed and what each host serves now.
pub async fn roll_out(
    s: &Services,
    job: &Claimed,
    action: &ActionJob,
    attempt_id: Uuid,
    group: &Group,
    log: &Log,
) -> Result<providers::Output, String> {
    let internal = |e: AppError| {
        tracing::error!(error = %e, job = job.id, "a rollout failed to read or write its state");
        "Sluice could not keep track of this rollout; the problem has been logged".to_string()
    };
    let mut rows = hosts_of(s, attempt_id).await.map_err(internal)?;
    if rows.is_empty() {
        rows = fix_hosts(s, attempt_id, &group.label)
            .await
            .map_err(internal)??;
    }
    let names = host_names(&rows);
    let batch = rollout::batch_size(rows.len(), group.config, group.minimum)?;
    log.line(&format!(
        "[Sluice] deploying to {} host{} of the group {} ({:?}, {} at a time): {}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        group.label,
        group.config,
        batch,
        names.join(", ")
    ));
    let mut seen: Vec<String> = rows.iter().map(|r| r.state.clone()).collect();
    loop {
        rows = hosts_of(s, attempt_id).await.map_err(internal)?;
        if reconcile(s, attempt_id, &rows).await.map_err(internal)? {
            continue;
        }
        for (i, row) in rows.iter().enumerate() {
            if seen.get(i) != Some(&row.state) {
                let said = row
                    .summary
                    .as_deref()
                    .map(|s| format!(": {}", providers::log::without_tail(s)))
                    .unwrap_or_default();
                log.line(&format!("[Sluice] {}: {}{said}", names[i], row.state));
            }
        }
        seen = rows.iter().map(|r| r.state.clone()).collect();
        let states = rows
            .iter()
            .map(|r| host_state(&r.state))
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        match rollout::next(&states, batch, group.auto_rollback) {
            Next::Wait => tokio::time::sleep(POLL).await,
            Next::Deploy(positions) => {
                queue(s, job, action, attempt_id, &rows, &positions, &[], true)
                    .await
                    .map_err(internal)?;
            }
            Next::RollBack { hosts, skip } => {
                queue(s, job, action, attempt_id, &rows, &hosts, &skip, false)
                    .await
                    .map_err(internal)?;
            }
            Next::Skip(positions) => {
                queue(s, job, action, attempt_id, &rows, &[], &positions, false)
                    .await
                    .map_err(internal)?;
            }
            Next::Done(Outcome::Succeeded) => {
                let release = rows
                    .first()
                    .and_then(|r| r.release.clone())
                    .unwrap_or_default();
                return Ok(providers::Output {
                    summary: Some(format!(
                        "Deployed release {release} to {} host{} of the group {} ({:?})",
                        rows.len(),
                        if rows.len() == 1 { "" } else { "s" },
                        group.label,
                        group.config
                    )),
                    ..Default::default()
                });
            }
            Next::Done(Outcome::Failed) => return Err(failure_summary(&rows, &names)),
        }
    }
}

/// Why a rollout failed, host by host: the first failure's own words, then what the others serve.
fn failure_summary(rows: &[HostRow], names: &[String]) -> String {
    let mut out = String::new();
    if let Some((i, failed)) = rows.iter().enumerate().find(|(_, r)| r.state == "Failed") {
        out.push_str(&format!(
            "the deploy failed on {}: {}",
            names[i],
            providers::log::without_tail(failed.summary.as_deref().unwrap_or("it failed"))
        ));
    } else {
        out.push_str("the deploy failed");
    }
    for (state, said) in [
        ("Deployed", "serving the new release"),
        ("RolledBack", "switched back"),
        ("RollbackFailed", "could not be switched back"),
        ("Skipped", "not deployed"),
    ] {
        let these: Vec<&str> = rows
            .iter()
            .zip(names)
            .filter(|(r, _)| r.state == state)
            .map(|(_, n)| n.as_str())
            .collect();
        if !these.is_empty() {
            out.push_str(&format!("; {said}: {}", these.join(", ")));
        }
    }
    let others = rows.iter().filter(|r| r.state == "Failed").count();
    if others > 1 {
        out.push_str(&format!("; {} hosts failed in all", others));
    }
    out
}

async fn hosts_of(s: &Services, attempt_id: Uuid) -> Result<Vec<HostRow>, AppError> {
    let mut conn = s.pool.acquire().await?;
    Ok(db::deployments::hosts(&mut conn, attempt_id).await?)
}

/// Fixes the rollout's hosts: the group's live pools now. `Err` inside when the group has none.
async fn fix_hosts(
    s: &Services,
    attempt_id: Uuid,
    label: &str,
) -> Result<Result<Vec<HostRow>, String>, AppError> {
    let mut tx = s.pool.begin().await?;
    let pools =
        db::deployments::live_pools_in(&mut tx, label, s.clock.now() - HOST_SILENCE).await?;
    if pools.is_empty() {
        return Ok(Err(format!(
            "no live worker is in the deployment group {label}: start one on each of its hosts with `sluice worker --labels {label}`"
        )));
    }
    db::deployments::insert_hosts(&mut tx, attempt_id, &pools).await?;
    let rows = db::deployments::hosts(&mut tx, attempt_id).await?;
    tx.commit().await?;
    Ok(Ok(rows))
}

/// Ends the turn of hosts whose job can no longer report: it failed or was cancelled without
/// saying so (its worker died, or it was never claimed and its pool stopped). `true` when it
/// changed a host.
async fn reconcile(s: &Services, attempt_id: Uuid, rows: &[HostRow]) -> Result<bool, AppError> {
    let now = s.clock.now();
    let mut changed = false;
    for row in rows {
        let failed_state = match row.state.as_str() {
            "Deploying" => "Failed",
            "RollingBack" => "RollbackFailed",
            _ => continue,
        };
        let pool_gone = row.pool_stopped != Some(false)
            || row
                .pool_heartbeat_at
                .is_none_or(|at| at < now - HOST_SILENCE);
        let why =
            match row.job_state.as_deref() {
                None => Some("its job is gone".to_string()),
                Some("failed" | "cancelled") => Some(row.job_error.clone().unwrap_or_else(|| {
                    "its worker stopped answering before it finished".to_string()
                })),
                Some("available") if pool_gone => {
                    Some("its worker stopped before it took the job".to_string())
                }
                _ => None,
            };
        let Some(why) = why else { continue };
        let mut tx = s.pool.begin().await?;
        if let Some(job) = row.job_id {
            db::jobs::cancel(&mut tx, job, now).await?;
        }
        changed |= db::deployments::finish_host(
            &mut tx,
            attempt_id,
            row.position,
            row.job_id,
            failed_state,
            None,
            None,
            &why,
            now,
        )
        .await?;
        tx.commit().await?;
    }
    Ok(changed)
}

/// Queues the jobs of a wave (`deploy`: deploy to `hosts`; otherwise switch `hosts` back) and
/// skips `skip`, in one transaction.
#[allow(clippy::too_many_arguments)]
async fn queue(
    s: &Services,
    job: &Claimed,
    action: &ActionJob,
    attempt_id: Uuid,
    rows: &[HostRow],
    hosts: &[usize],
    skip: &[usize],
    deploy: bool,
) -> Result<(), AppError> {
    let now = s.clock.now();
    let mut tx = s.pool.begin().await?;
    let skip: Vec<i32> = skip.iter().map(|&i| rows[i].position).collect();
    db::deployments::skip_hosts(&mut tx, attempt_id, &skip, now).await?;
    for &i in hosts {
        let row = &rows[i];
        let mode = if deploy {
            HostMode::Deploy
        } else {
            HostMode::RollBack {
                release: row.release.clone().unwrap_or_default(),
                previous_release: row.previous_release.clone(),
            }
        };
        let payload = serde_json::to_value(HostJob {
            action: *action,
            position: row.position,
            mode,
        })
        .map_err(|e| AppError::Internal(e.into()))?;
        let id = db::jobs::enqueue_targeted(&mut tx, HOST_JOB, &payload, row.pool_id, job.id, now)
            .await?;
        let state = if deploy { "Deploying" } else { "RollingBack" };
        db::deployments::start_host(&mut tx, attempt_id, row.position, state, id, now).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// What a host job did on its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostResult {
    Deployed(providers::deploy::Deployed),
    DeployFailed(String),
    RolledBack(String),
    RollbackFailed(String),
}

/// Runs a host job's work on this host with `ctx` (prepared for the host's action attempt).
pub async fn run_host(ctx: &providers::Context, mode: &HostMode) -> HostResult {
    match mode {
        // The release it replaces is kept, so that a rollback has somewhere to switch back to.
        HostMode::Deploy => match providers::deploy::deploy_here(ctx, 1).await {
            Ok(d) => HostResult::Deployed(d),
            Err(why) => HostResult::DeployFailed(why),
        },
        HostMode::RollBack {
            release,
            previous_release,
        } => match providers::deploy::roll_back(ctx, release, previous_release.as_deref()).await {
            Ok(said) => HostResult::RolledBack(said),
            Err(why) => HostResult::RollbackFailed(why),
        },
    }
}

/// Records a host job's result: the job finished under its lease and the host's state, in one
/// transaction (`Ok(false)`: the lease was lost or the rollout gave up on the host; nothing
/// written).
pub async fn finish_host_job(
    s: &Services,
    claimed: &Claimed,
    host: &HostJob,
    attempt_id: Uuid,
    result: &HostResult,
) -> Result<bool, AppError> {
    let now = s.clock.now();
    let (outcome, state, release, previous, summary) = match result {
        HostResult::Deployed(d) => (
            db::jobs::Outcome::Succeeded,
            "Deployed",
            Some(d.release.as_str()),
            d.previous.as_deref(),
            d.summary.as_str(),
        ),
        HostResult::DeployFailed(why) => (
            db::jobs::Outcome::Failed,
            "Failed",
            None,
            None,
            why.as_str(),
        ),
        HostResult::RolledBack(said) => (
            db::jobs::Outcome::Succeeded,
            "RolledBack",
            None,
            None,
            said.as_str(),
        ),
        HostResult::RollbackFailed(why) => (
            db::jobs::Outcome::Failed,
            "RollbackFailed",
            None,
            None,
            why.as_str(),
        ),
    };
    let error = (outcome == db::jobs::Outcome::Failed).then_some(summary);
    let mut tx = s.pool.begin().await?;
    if !db::jobs::finish(&mut tx, claimed.id, claimed.lease, outcome, error, now).await? {
        return Ok(false);
    }
    let recorded = db::deployments::finish_host(
        &mut tx,
        attempt_id,
        host.position,
        Some(claimed.id),
        state,
        release,
        previous,
        summary,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(recorded)
}

/// The attempt a host job belongs to (the key of its host's log), or `None` when it is gone.
pub async fn attempt_of(s: &Services, host: &HostJob) -> Result<Option<Uuid>, AppError> {
    let mut conn = s.pool.acquire().await?;
    let attempt = i32::try_from(host.action.attempt)
        .map_err(|_| AppError::Internal(anyhow::anyhow!("a host job's attempt")))?;
    let index = |i: usize| i32::try_from(i).unwrap_or(i32::MAX);
    Ok(db::executions::action_id(
        &mut conn,
        host.action.execution_id,
        index(host.action.stage),
        index(host.action.action),
        attempt,
    )
    .await?)
}

/// A fleet deploy's hosts as the console shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    pub name: String,
    pub state: String,
    pub release: Option<String>,
    pub summary: Option<String>,
    /// "2.4 s" from its start to its last end.
    pub took: Option<String>,
    pub log: Vec<String>,
}

/// The hosts of a fleet deploy's attempt with their logs (the first 2,000 lines of each); empty
/// for an attempt that did not deploy to a group. Allowed like the attempt's log, with
/// `codepipeline:ListActionExecutions` on its pipeline.
pub async fn deploy_hosts(
    s: &Services,
    c: &Caller,
    name: &str,
    attempt_id: Uuid,
) -> Result<Vec<HostView>, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::ListActionExecutions,
        Resource::pipeline(name),
        json!({"pipelineName": name, "actionExecutionId": attempt_id}),
        async |op| {
            let pipeline =
                db::pipelines::find(op.conn(), super::pipelines::existing_name(name)?).await?;
            let attempt = match &pipeline {
                Some(p) => db::executions::attempt(op.conn(), attempt_id)
                    .await?
                    .filter(|a| a.pipeline_id == p.id),
                None => None,
            };
            if attempt.is_none() {
                return Err(AppError::NotFound {
                    code: "ActionExecutionNotFoundException",
                    message: format!("The pipeline '{name}' has no action execution {attempt_id}"),
                });
            }
            host_views(op.conn(), attempt_id).await
        },
    )
    .await
}

async fn host_views(
    conn: &mut sqlx::PgConnection,
    attempt_id: Uuid,
) -> Result<Vec<HostView>, AppError> {
    let rows = db::deployments::hosts(conn, attempt_id).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let logs = db::deployments::logs(conn, attempt_id, 2000).await?;
    let names = host_names(&rows);
    Ok(rows
        .iter()
        .zip(names)
        .map(|(r, name)| HostView {
            name,
            state: r.state.clone(),
            release: r.release.clone(),
            summary: r
                .summary
                .as_deref()
                .map(|s| providers::log::without_tail(s).to_string()),
            took: match (r.started_at, r.finished_at) {
                (Some(a), Some(b)) => Some(format!("{:.1} s", (b - a).as_seconds_f64())),
                _ => None,
            },
            log: logs
                .iter()
                .filter(|(p, _)| *p == r.position)
                .map(|(_, t)| t.clone())
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The payload a host job of `action` carries (for tests of the queue).
    fn host_payload(action: &ActionJob, position: i32) -> serde_json::Value {
        json!({
            "pipelineId": action.pipeline_id,
            "executionId": action.execution_id,
            "stage": action.stage,
            "action": action.action,
            "attempt": action.attempt,
            "position": position,
            "mode": "deploy",
        })
    }

    #[test]
    fn a_group_is_read_from_the_configuration_with_codedeploys_defaults() {
        assert_eq!(
            Group::of(&config(&[("TargetDirectory", "/srv")])).unwrap(),
            None
        );
        let g = Group::of(&config(&[("DeploymentGroup", " Web ")]))
            .unwrap()
            .unwrap();
        assert_eq!(g.label, "web");
        assert_eq!(g.config, DeploymentConfig::OneAtATime);
        assert!(g.auto_rollback);
        assert_eq!(g.minimum, None);
        let g = Group::of(&config(&[
            ("DeploymentGroup", "web"),
            ("DeploymentConfig", "CodeDeployDefault.AllAtOnce"),
            ("MinimumHealthyHosts", "50%"),
            ("AutoRollback", "false"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(g.config, DeploymentConfig::AllAtOnce);
        assert_eq!(g.minimum, Some(MinimumHealthyHosts::Percent(50)));
        assert!(!g.auto_rollback);
        for bad in ["web,eu", "", "bad label", "<b>"] {
            assert!(
                Group::of(&config(&[("DeploymentGroup", bad)])).is_err(),
                "{bad:?}"
            );
        }
        assert!(
            Group::of(&config(&[
                ("DeploymentGroup", "web"),
                ("DeploymentConfig", "Sometimes")
            ]))
            .is_err()
        );
    }

    #[test]
    fn a_host_jobs_payload_round_trips_and_reads_the_action_job_beside_it() {
        let action = ActionJob {
            pipeline_id: Uuid::new_v4(),
            execution_id: Uuid::new_v4(),
            stage: 1,
            action: 0,
            attempt: 2,
        };
        let back = HostJob {
            action,
            position: 3,
            mode: HostMode::RollBack {
                release: "r".into(),
                previous_release: None,
            },
        };
        let value = serde_json::to_value(&back).unwrap();
        assert_eq!(value["mode"], "rollBack");
        assert_eq!(value["attempt"], 2);
        assert_eq!(HostJob::of(&value).unwrap(), back);
        assert_eq!(ActionJob::of(&value).unwrap(), action);
        let deploy = HostJob::of(&host_payload(&action, 1)).unwrap();
        assert_eq!(deploy.mode, HostMode::Deploy);
        assert_eq!(deploy.position, 1);
    }
}
