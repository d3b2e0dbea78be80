//! Source triggers: push webhooks (`POST /hooks/<pipeline>/<source action>`) and polling
//! (`PollForSourceChanges`). Both end in an execution the engine starts (audited as the
//! engine's act) with the new commit pinned, when the pipeline's triggers say the change counts.
//!
//! A delivery is verified with the hook's secret by its host's scheme before anything in it is
//! read, accepted once per delivery id (the id's row is inserted in the transaction that starts
//! the execution: two copies of one delivery never both start), and answered at once.
//! Polling runs on the leader: every interval it asks each repository once (`git ls-remote`),
//! however many pipelines watch it, and starts the pipelines whose branch moved.

use std::collections::BTreeMap;

use serde_json::json;
use uuid::Uuid;

use super::executions::{self, SourceRevisionOverride, StartRequest, Trigger};
use super::{Caller, Kind, Op, Services};
use crate::access::{Action, Resource};
use crate::db::{self, hooks::Delivery};
use crate::error::AppError;
use crate::pipeline::push::{self, Said};
use crate::pipeline::triggers::{self, Change};
use crate::pipeline::wire::PipelineDeclaration;

fn secret_context(pipeline_id: Uuid, action: &str) -> String {
    format!("source-hook-secret:{pipeline_id}:{action}")
}

/// How a delivery was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Accepted: started this execution.
    Started(Uuid),
    /// Accepted; nothing to start (why).
    Ignored(String),
    /// This delivery id was accepted before.
    Duplicate,
    /// The signature is not the hook secret's.
    BadSignature,
    /// Not a delivery Sluice reads (why).
    Unreadable(String),
}

/// Finds the Git source action `action` of the pipeline's current version: its declaration.
async fn source_action(
    conn: &mut sqlx::PgConnection,
    name: &str,
    action: &str,
) -> Result<
    Option<(
        db::pipelines::PipelineRow,
        std::sync::Arc<PipelineDeclaration>,
    )>,
    AppError,
> {
    let Ok(name) = super::pipelines::existing_name(name) else {
        return Ok(None);
    };
    let Some(row) = db::pipelines::find(conn, name).await? else {
        return Ok(None);
    };
    let decl = executions::declaration(conn, row.id, row.current_version).await?;
    let is_git_source = decl
        .stages
        .first()
        .into_iter()
        .flat_map(|st| &st.actions)
        .any(|a| a.name == action && a.action_type_id.provider == "Git");
    Ok(is_git_source.then_some((row, decl)))
}

/// Receives a delivery for the hook of `pipeline`'s source action `action`. `NotFound` when
/// there is no such hook (no such pipeline, action, or no secret made yet): the same answer for
/// all, so the URL says nothing about what exists.
pub async fn receive(
    s: &Services,
    pipeline: &str,
    action: &str,
    headers: push::Headers<'_>,
    body: &[u8],
) -> Result<Reply, AppError> {
    crate::metrics::hook_delivery();
    let not_found = || AppError::NotFound {
        code: "WebhookNotFoundException",
        message: "No webhook is at this address".into(),
    };
    let now = s.clock.now();
    let mut conn = s.pool.acquire().await?;
    let (row, decl) = source_action(&mut conn, pipeline, action)
        .await?
        .ok_or_else(not_found)?;
    let sealed = db::hooks::secret(&mut conn, row.id, action)
        .await?
        .ok_or_else(not_found)?;
    let secret = s
        .root_key
        .open(&sealed, &secret_context(row.id, action))
        .ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "a hook secret does not open with the root key"
            ))
        })?;
    let refuse = async |conn: &mut sqlx::PgConnection, host: &str, outcome: &str| {
        db::hooks::record(
            conn,
            row.id,
            action,
            &Delivery {
                delivery_id: None,
                host: host.to_string(),
                event: String::new(),
                outcome: outcome.to_string(),
                execution_id: None,
                received_at: now,
            },
        )
        .await
    };
    let Some(host) = push::host_of(headers) else {
        let why = "not a GitHub, GitLab, Gitea/Forgejo or Bitbucket delivery";
        refuse(&mut conn, "unknown", &format!("refused: {why}")).await?;
        return Ok(Reply::Unreadable(why.into()));
    };
    if !push::verify(host, headers, body, &secret) {
        refuse(
            &mut conn,
            host.name(),
            "refused: the signature is not this hook's",
        )
        .await?;
        return Ok(Reply::BadSignature);
    }
    let said = match push::read(host, headers, body) {
        Ok(said) => said,
        Err(why) => {
            refuse(&mut conn, host.name(), &format!("refused: {why}")).await?;
            return Ok(Reply::Unreadable(why));
        }
    };
    drop(conn);
    // Without a delivery id, the body's hash stands in for one (the same body twice is a replay).
    let delivery_id = push::delivery_id(host, headers).unwrap_or_else(|| {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(body);
        format!(
            "sha256:{}",
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    });
    let event = match &said {
        Said::Ping => "ping".to_string(),
        Said::Other(e) => e.clone(),
        Said::Changes(changes) => match changes.first() {
            Some(Change::PullRequest { .. }) => "pull request".into(),
            _ => "push".into(),
        },
    };
    let commit = match &said {
        Said::Changes(changes) => changes
            .iter()
            .find_map(|c| triggers::start_for(&decl, action, c)),
        _ => None,
    };
    let by_trigger = decl
        .triggers
        .iter()
        .flatten()
        .any(|t| t.git_configuration.source_action_name == action);
    let outcome = match (&said, &commit) {
        (_, Some(_)) => "starting".to_string(),
        (Said::Ping, _) => "ping: the hook works".to_string(),
        (Said::Other(e), _) => format!("ignored: {e} events start nothing"),
        (Said::Changes(_), None) if by_trigger => {
            "ignored: no filter of the pipeline's trigger matches".to_string()
        }
        (Said::Changes(_), None) => "ignored: not a push to the action's branch".to_string(),
    };
    let delivery = Delivery {
        delivery_id: Some(delivery_id.clone()),
        host: host.name().to_string(),
        event,
        outcome,
        execution_id: None,
        received_at: now,
    };
    let Some(commit) = commit else {
        let mut conn = s.pool.acquire().await?;
        if !db::hooks::record(&mut conn, row.id, action, &delivery).await? {
            return Ok(Reply::Duplicate);
        }
        return Ok(Reply::Ignored(delivery.outcome));
    };
    // The delivery's row and the execution commit together: a copy of the delivery waits on the
    // row's unique index, then finds it.
    let engine = Caller::engine("webhook");
    let trigger = Trigger {
        trigger_type: if by_trigger { "WebhookV2" } else { "Webhook" },
        detail: format!("{} delivery {delivery_id}", host.name()),
    };
    let name = row.name.clone();
    let started = Op::run(
        s,
        &engine,
        Kind::Change,
        Action::StartPipelineExecution,
        Resource::pipeline(&name),
        json!({"name": name, "sourceActionName": action, "deliveryId": delivery_id, "commit": commit}),
        async |op| {
            if !db::hooks::record(op.conn(), row.id, action, &delivery).await? {
                return Ok(None);
            }
            let id = executions::start_in(
                op,
                &name,
                StartRequest {
                    source_revisions: vec![SourceRevisionOverride {
                        action_name: action.to_string(),
                        revision_type: "COMMIT_ID".into(),
                        revision_value: commit.clone(),
                    }],
                    ..StartRequest::default()
                },
                trigger,
            )
            .await?;
            db::hooks::set_outcome(
                op.conn(),
                row.id,
                action,
                &delivery_id,
                &format!("started an execution at {}", &commit[..commit.len().min(12)]),
                Some(id),
            )
            .await?;
            Ok(Some(id))
        },
    )
    .await?;
    s.wake.notify_waiters();
    Ok(started.map_or(Reply::Duplicate, Reply::Started))
}

/// A source action's hook as its pipeline's triggers page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HookView {
    pub action: String,
    /// The secret, for those allowed `codepipeline:PutWebhook` on the pipeline (`None`: not
    /// allowed, or none made yet; see `has_secret`).
    pub secret: Option<String>,
    pub has_secret: bool,
    pub may_put: bool,
    /// Polled for changes (PollForSourceChanges).
    pub polled: bool,
    /// Started by a trigger's filters rather than any push to the branch.
    pub filtered: bool,
    pub deliveries: Vec<Delivery>,
}

/// The hooks of a pipeline's Git source actions, with their last 20 deliveries; allowed with
/// `codepipeline:GetPipeline`.
pub async fn hooks_of(s: &Services, c: &Caller, name: &str) -> Result<Vec<HookView>, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::GetPipeline,
        Resource::pipeline(name),
        json!({"name": name}),
        async |op| {
            let row = db::pipelines::find(op.conn(), super::pipelines::existing_name(name)?)
                .await?
                .ok_or_else(|| executions::pipeline_not_found(name))?;
            let decl = executions::declaration(op.conn(), row.id, row.current_version).await?;
            let may_put = op
                .caller()
                .can(Action::PutWebhook, &Resource::pipeline(name));
            let mut views = Vec::new();
            for action in decl.stages.first().into_iter().flat_map(|st| &st.actions) {
                if action.action_type_id.provider != "Git" {
                    continue;
                }
                let sealed = db::hooks::secret(op.conn(), row.id, &action.name).await?;
                let secret = if may_put {
                    sealed.as_ref().and_then(|sealed| {
                        s.root_key
                            .open(sealed, &secret_context(row.id, &action.name))
                    })
                } else {
                    None
                };
                let deliveries = db::hooks::recent(op.conn(), row.id, &action.name, 20).await?;
                views.push(HookView {
                    action: action.name.clone(),
                    secret,
                    has_secret: sealed.is_some(),
                    may_put,
                    polled: polled(&decl, &action.name),
                    filtered: decl
                        .triggers
                        .iter()
                        .flatten()
                        .any(|t| t.git_configuration.source_action_name == action.name),
                    deliveries,
                });
            }
            Ok(views)
        },
    )
    .await
}

/// Makes the hook's secret (`replace`: a new one even if it has one, and the old one stops
/// working); allowed with `codepipeline:PutWebhook` on the pipeline. The secret is never in the
/// audit log.
pub async fn put_secret(
    s: &Services,
    c: &Caller,
    name: &str,
    action: &str,
    replace: bool,
) -> Result<String, AppError> {
    Op::run(
        s,
        c,
        Kind::Change,
        Action::PutWebhook,
        Resource::pipeline(name),
        json!({"name": name, "sourceActionName": action, "newSecret": replace}),
        async |op| {
            let (row, _) = source_action(op.conn(), name, action)
                .await?
                .ok_or_else(|| AppError::NotFound {
                    code: "ActionNotFoundException",
                    message: format!("The pipeline '{name}' has no Git source action '{action}'"),
                })?;
            let mut bytes = [0u8; 24];
            getrandom::fill(&mut bytes)
                .map_err(|e| AppError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
            use base64::Engine;
            let fresh = format!(
                "whsec_{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
            );
            let context = secret_context(row.id, action);
            let sealed = s.root_key.seal(&fresh, &context);
            let now = op.now();
            let kept =
                db::hooks::put_secret(op.conn(), row.id, action, &sealed, replace, now).await?;
            s.root_key
                .open(&kept, &context)
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a hook secret does not open")))
        },
    )
    .await
}

/// Whether a Git source action is polled: `PollForSourceChanges` when it says, otherwise on for
/// V1 pipelines (CodePipeline's default) and off for V2 ones; never with a trigger.
pub fn polled(decl: &PipelineDeclaration, action: &str) -> bool {
    let Some(a) = decl
        .stages
        .first()
        .into_iter()
        .flat_map(|st| &st.actions)
        .find(|a| a.name == action && a.action_type_id.provider == "Git")
    else {
        return false;
    };
    if decl
        .triggers
        .iter()
        .flatten()
        .any(|t| t.git_configuration.source_action_name == action)
    {
        return false;
    }
    match a
        .configuration
        .as_ref()
        .and_then(|c| c.get("PollForSourceChanges"))
    {
        Some(flag) => flag == "true",
        None => decl.pipeline_type.as_deref() == Some("V1"),
    }
}

/// One source action a poll looks at.
#[derive(Debug, Clone)]
struct Watched {
    pipeline_id: Uuid,
    pipeline: String,
    action: String,
    action_index: i32,
    branch: String,
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Polled {
    /// `git ls-remote` calls made (one per repository and connection).
    pub repositories: usize,
    /// Source actions looked at.
    pub actions: usize,
    pub started: Vec<Uuid>,
}

/// One round of polling: every polled Git source action, grouped by repository and connection,
/// one `git ls-remote` per group; an execution for each action whose branch moved since it last
/// looked (or since the commit its latest run built). The engine's own work, on the leader.
pub async fn poll_once(s: &Services) -> Result<Polled, AppError> {
    let mut conn = s.pool.acquire().await?;
    let pipelines = db::pipelines::current_declarations(&mut conn).await?;
    // (url, connection) → the actions watching it.
    let mut groups: BTreeMap<(String, Option<String>), Vec<Watched>> = BTreeMap::new();
    for (id, name, _version, text) in pipelines {
        let Ok(decl) = serde_json::from_str::<PipelineDeclaration>(&text) else {
            continue;
        };
        for (ai, a) in decl
            .stages
            .first()
            .into_iter()
            .flat_map(|st| &st.actions)
            .enumerate()
        {
            if !polled(&decl, &a.name) {
                continue;
            }
            let config = a.configuration.clone().unwrap_or_default();
            let (Some(url), Some(branch)) = (config.get("RepositoryUrl"), config.get("Branch"))
            else {
                continue;
            };
            // A reference is resolved only when an execution runs: nothing to poll.
            if url.contains("#{") || branch.contains("#{") {
                continue;
            }
            groups
                .entry((url.clone(), config.get("ConnectionName").cloned()))
                .or_default()
                .push(Watched {
                    pipeline_id: id,
                    pipeline: name.clone(),
                    action: a.name.clone(),
                    action_index: i32::try_from(ai).unwrap_or(i32::MAX),
                    branch: branch.clone(),
                });
        }
    }
    drop(conn);
    let mut done = Polled::default();
    for ((url, connection), watched) in groups {
        done.actions += watched.len();
        let credentials = match &connection {
            Some(name) => {
                let mut conn = s.pool.acquire().await?;
                match super::connections::credentials_for(s, &mut conn, name).await? {
                    Ok(c) => Some(c),
                    Err(why) => {
                        tracing::warn!(repository = %url, "polling skipped: {why}");
                        continue;
                    }
                }
            }
            None => None,
        };
        let runner = s.runner.clone().ok().flatten();
        done.repositories += 1;
        let heads = match crate::providers::git::ls_remote(&url, credentials.as_ref(), runner).await
        {
            Ok(heads) => heads,
            Err(why) => {
                tracing::warn!(repository = %url, "polling failed: {why}");
                continue;
            }
        };
        for w in watched {
            let Some(commit) = heads.get(&w.branch) else {
                continue;
            };
            if let Some(id) = poll_action(s, &w, commit).await? {
                done.started.push(id);
            }
        }
    }
    if !done.started.is_empty() {
        s.wake.notify_waiters();
    }
    crate::metrics::polled(done.repositories);
    Ok(done)
}

/// Starts the pipeline of `w` if `commit` is new to it.
async fn poll_action(s: &Services, w: &Watched, commit: &str) -> Result<Option<Uuid>, AppError> {
    let now = s.clock.now();
    let mut conn = s.pool.acquire().await?;
    let known = match db::hooks::last_polled(&mut conn, w.pipeline_id, &w.action).await? {
        Some(seen) => Some(seen),
        None => db::hooks::latest_commit(&mut conn, w.pipeline_id, 0, w.action_index).await?,
    };
    drop(conn);
    if known.as_deref() == Some(commit) {
        return Ok(None);
    }
    let first_look = known.is_none();
    // The engine's own work, in a transaction of its own (as an action's end is): recorded
    // first, so that of two pollers that saw the same commit, one starts.
    let started = async {
        let mut tx = s.pool.begin().await?;
        if !db::hooks::saw(&mut tx, w.pipeline_id, &w.action, commit, now).await? {
            return Ok(None);
        }
        // Never looked before and never ran: this is where it stands, not a change.
        if first_look {
            tx.commit().await?;
            return Ok(None);
        }
        let (id, _) = executions::start_on(
            &mut tx,
            now,
            &w.pipeline,
            StartRequest {
                source_revisions: vec![SourceRevisionOverride {
                    action_name: w.action.clone(),
                    revision_type: "COMMIT_ID".into(),
                    revision_value: commit.to_string(),
                }],
                ..StartRequest::default()
            },
            Trigger {
                trigger_type: "PollForSourceChanges",
                detail: format!("{} moved to {}", w.branch, &commit[..commit.len().min(12)]),
            },
        )
        .await?;
        tx.commit().await?;
        Ok::<_, AppError>(Some(id))
    }
    .await;
    match started {
        Ok(id) => Ok(id),
        // The pipeline was deleted or changed meanwhile: the next poll sees it as it is.
        Err(AppError::NotFound { .. } | AppError::Rejected { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
