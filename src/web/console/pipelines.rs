//! Pipelines in the console: the list (`/`), the view, JSON editing, import, export, clone,
//! versions and their diff, delete. Everything goes through `ops::pipelines`.

use std::collections::HashMap;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::Value;

use super::{
    ConsoleError, Layout, Section, console_page, display_time, render_with_status, see_other,
    segment,
};
use crate::access::{Action, Resource};
use crate::error::AppError;
use crate::ops::Page;
use crate::ops::pipelines;
use crate::pipeline::import::{self, Mapped};
use crate::pipeline::wire::PipelineDeclaration;
use crate::web::AppState;
use crate::web::auth::{CsrfForm, SignedIn};
use crate::web::htmx::HxRequest;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/pipelines/import")
            .route(web::get().to(import_form))
            .route(web::post().to(import))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(crate::web::get_only("/pipelines/{name}", view))
    .service(crate::web::get_only("/pipelines/{name}/export", export))
    .service(crate::web::get_only("/pipelines/{name}/clone", clone_form))
    .service(crate::web::get_only("/pipelines/{name}/versions", versions))
    .service(crate::web::get_only("/pipelines/{name}/diff", diff))
    .service(
        web::resource("/pipelines/{name}/edit/json")
            .route(web::get().to(edit_form))
            .route(web::post().to(save))
            .default_service(web::to(super::method_not_allowed)),
    )
    .route("/pipelines/{name}/delete", web::post().to(delete));
}

// ---- List -------------------------------------------------------------------------------------

struct Row {
    name: String,
    link: String,
    version: i32,
    mode: String,
    updated: String,
    latest: super::executions::LatestCell,
}

#[derive(Template)]
#[template(path = "pipelines/list.html", blocks = ["content"])]
struct ListPage {
    layout: Layout,
    notice: Option<String>,
    query: String,
    pipelines: Vec<Row>,
    next_link: Option<String>,
    can_create: bool,
}
console_page!(ListPage);

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    next: Option<String>,
    done: Option<String>,
}

/// `GET /`: the pipelines the user may see.
pub async fn list(
    state: web::Data<AppState>,
    user: SignedIn,
    query: web::Query<ListQuery>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let q = query.q.trim().chars().take(100).collect::<String>();
    if let Err(AppError::AccessDenied(_)) = crate::ops::require(
        &state.services,
        &user.caller,
        Action::ListPipelines,
        &Resource::All,
        serde_json::json!({"page": "/"}),
    )
    .await
    {
        // The home page of someone who may not list pipelines: say so instead of a 403 (the
        // refusal is audited all the same).
        let page = ListPage {
            layout: Layout::signed_in(&user, Section::Pipelines),
            notice: Some("You may not list pipelines (codepipeline:ListPipelines). Ask an administrator for access.".into()),
            query: q,
            pipelines: Vec::new(),
            next_link: None,
            can_create: user.caller.can(Action::CreatePipeline, &Resource::pipeline("*")),
        };
        return render_with_status(hx, &page, StatusCode::OK);
    }
    let page = pipelines::search_pipelines(
        &state.services,
        &user.caller,
        Some(q.as_str()).filter(|q| !q.is_empty()),
        &Page {
            next: query.next.clone(),
            max: Some(100),
        },
    )
    .await?;
    let next_link = page.next.map(|n| {
        let qs = serde_urlencoded::to_string([("q", q.as_str()), ("next", n.as_str())])
            .unwrap_or_default();
        format!("/?{qs}")
    });
    let names: Vec<String> = page.items.iter().map(|p| p.name.clone()).collect();
    let latest =
        crate::ops::executions::latest_executions(&state.services, &user.caller, &names).await?;
    let mut live = format!("/live?view=list&q={}", segment(&q));
    if let Some(next) = &query.next {
        live.push_str(&format!("&next={}", segment(next)));
    }
    let page = ListPage {
        layout: Layout::signed_in(&user, Section::Pipelines).live(live),
        notice: (query.done.as_deref() == Some("deleted"))
            .then(|| "The pipeline was deleted.".to_string()),
        pipelines: page
            .items
            .into_iter()
            .map(|p| Row {
                link: segment(&p.name),
                latest: super::executions::latest_cell(
                    &user.caller,
                    &p.name,
                    latest.get(&p.name),
                    false,
                ),
                name: p.name,
                version: p.version,
                mode: p.execution_mode,
                updated: display_time(p.updated),
            })
            .collect(),
        query: q,
        next_link,
        can_create: user
            .caller
            .can(Action::CreatePipeline, &Resource::pipeline("*")),
    };
    render_with_status(hx, &page, StatusCode::OK)
}

// ---- View -------------------------------------------------------------------------------------

pub(super) struct ActionView {
    pub name: String,
    pub category: String,
    pub provider: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Its configuration as it may be shown (secrets masked): (key, value, spans lines).
    pub config: Vec<(String, String, bool)>,
    /// Run order, namespace and timeout, in words, where set.
    pub details: Vec<(String, String)>,
    /// Its latest attempt (the current version's view, for those who may read the state).
    pub state: Option<super::executions::ActionState>,
}

pub(super) struct Group {
    pub run_order: i64,
    pub actions: Vec<ActionView>,
}

pub(super) struct StageView {
    /// Its place, from 1: the ids of its parts on the page (`stage-N`, `transition-N`).
    pub index: usize,
    pub name: String,
    pub link: String,
    pub groups: Vec<Group>,
    pub state: Option<super::executions::StageState>,
    /// Rendered for a live stream: swapped in by id (`hx-swap-oob`).
    pub oob: bool,
}

#[derive(Template)]
#[template(path = "pipelines/view.html", blocks = ["content"])]
struct ViewPage {
    layout: Layout,
    name: String,
    link: String,
    version: i64,
    latest: i32,
    is_current: bool,
    mode: String,
    pipeline_type: String,
    notice: Option<String>,
    stages: Vec<StageView>,
    can_edit: bool,
    can_clone: bool,
    can_delete: bool,
    can_release: bool,
    can_history: bool,
    /// Release change needs a form (the pipeline declares variables).
    has_variables: bool,
    /// The state is shown (the latest version, for someone who may read it).
    shows_state: bool,
    /// The pipeline's settings in words: (what, how).
    settings: Vec<(String, String)>,
    /// Its variables: (name, default, description).
    variables: Vec<(String, String, String)>,
}
console_page!(ViewPage);

/// A declaration's settings as the view lists them: triggers, failure handling, and what the
/// pipeline runs as (each only when set).
fn settings_of(decl: &PipelineDeclaration) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let patterns = |p: &Option<crate::pipeline::wire::PatternFilter>| -> String {
        let Some(p) = p else { return String::new() };
        let mut words = Vec::new();
        if let Some(i) = p.includes.as_ref().filter(|i| !i.is_empty()) {
            words.push(i.join(", "));
        }
        if let Some(e) = p.excludes.as_ref().filter(|e| !e.is_empty()) {
            words.push(format!("not {}", e.join(", ")));
        }
        words.join("; ")
    };
    for t in decl.triggers.iter().flatten() {
        let g = &t.git_configuration;
        for push in g.push.iter().flatten() {
            let mut on = Vec::new();
            let branches = patterns(&push.branches);
            if !branches.is_empty() {
                on.push(format!("branches {branches}"));
            }
            let tags = patterns(&push.tags);
            if !tags.is_empty() {
                on.push(format!("tags {tags}"));
            }
            let paths = patterns(&push.file_paths);
            if !paths.is_empty() {
                on.push(format!("files {paths}"));
            }
            out.push((
                "Trigger".to_string(),
                format!(
                    "A push to {}{}",
                    g.source_action_name,
                    if on.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", on.join("; "))
                    }
                ),
            ));
        }
        for pr in g.pull_request.iter().flatten() {
            let events = pr.events.as_ref().map(|e| e.join(", ")).unwrap_or_default();
            let branches = patterns(&pr.branches);
            out.push((
                "Trigger".to_string(),
                format!(
                    "A pull request to {}{}{}",
                    g.source_action_name,
                    if events.is_empty() {
                        String::new()
                    } else {
                        format!(" ({events})")
                    },
                    if branches.is_empty() {
                        String::new()
                    } else {
                        format!(": branches {branches}")
                    }
                ),
            ));
        }
    }
    for stage in &decl.stages {
        if let Some(f) = &stage.on_failure {
            let mut how = f.result.clone().unwrap_or_else(|| "FAIL".into());
            if let Some(mode) = f
                .retry_configuration
                .as_ref()
                .and_then(|r| r.retry_mode.clone())
            {
                how.push_str(&format!(" (retry {mode})"));
            }
            out.push((format!("When {} fails", stage.name), how));
        }
    }
    if let Some(role) = &decl.role_arn {
        out.push(("Role".to_string(), role.clone()));
    }
    out
}

/// Stages with their actions grouped by runOrder (parallel actions side by side), with the
/// latest execution state merged in when the viewer may read it (`states`).
pub(super) fn stage_views(
    decl: &PipelineDeclaration,
    states: Option<Vec<(String, super::executions::StageState)>>,
) -> Vec<StageView> {
    let mut stages = structure(decl);
    for (stage_name, mut st) in states.into_iter().flatten() {
        let Some(view) = stages.iter_mut().find(|v| v.name == stage_name) else {
            continue;
        };
        for group in &mut view.groups {
            for action in &mut group.actions {
                if let Some(i) = st.actions.iter().position(|(n, _)| *n == action.name) {
                    action.state = Some(st.actions.swap_remove(i).1);
                }
            }
        }
        view.state = Some(st);
    }
    stages
}

fn structure(decl: &PipelineDeclaration) -> Vec<StageView> {
    decl.stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let mut groups: Vec<Group> = Vec::new();
            let mut actions: Vec<_> = stage.actions.iter().collect();
            actions.sort_by_key(|a| a.run_order.unwrap_or(1));
            for a in actions {
                let run_order = a.run_order.unwrap_or(1);
                let view = ActionView {
                    name: a.name.clone(),
                    category: a.action_type_id.category.clone(),
                    provider: a.action_type_id.provider.clone(),
                    inputs: a
                        .input_artifacts
                        .iter()
                        .flatten()
                        .map(|i| i.name.clone())
                        .collect(),
                    outputs: a
                        .output_artifacts
                        .iter()
                        .flatten()
                        .map(|o| o.name.clone())
                        .collect(),
                    config: a
                        .configuration
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.clone(), v.contains('\n')))
                        .collect(),
                    details: [
                        a.run_order
                            .map(|r| ("Run order".to_string(), r.to_string())),
                        a.namespace
                            .clone()
                            .map(|n| ("Variables namespace".to_string(), n)),
                        a.timeout_in_minutes
                            .map(|t| ("Timeout".to_string(), format!("{t} minutes"))),
                    ]
                    .into_iter()
                    .flatten()
                    .collect(),
                    state: None,
                };
                match groups.last_mut() {
                    Some(g) if g.run_order == run_order => g.actions.push(view),
                    _ => groups.push(Group {
                        run_order,
                        actions: vec![view],
                    }),
                }
            }
            StageView {
                index: i + 1,
                name: stage.name.clone(),
                link: segment(&stage.name),
                groups,
                state: None,
                oob: false,
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct ViewQuery {
    version: Option<i64>,
    done: Option<String>,
    /// What an answer to an approval did.
    approval: Option<String>,
}

async fn view(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    query: web::Query<ViewQuery>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let s = &state.services;
    let (decl, _) = pipelines::get_pipeline_shared(s, &user.caller, &path, query.version).await?;
    let latest = if query.version.is_some() {
        pipelines::get_pipeline_shared(s, &user.caller, &path, None)
            .await?
            .0
            .version
            .unwrap_or(1) as i32
    } else {
        decl.version.unwrap_or(1) as i32
    };
    let name = decl.name.clone();
    let me = Resource::pipeline(&name);
    let c = &user.caller;
    let version = decl.version.unwrap_or(1);
    let is_current = version == i64::from(latest);
    let states = if is_current {
        super::executions::pipeline_state(&state, c, &name).await?
    } else {
        None
    };
    let shows_state = states.is_some();
    let stages = stage_views(&decl, states);
    let settings = settings_of(&decl);
    let variables = decl
        .variables
        .iter()
        .flatten()
        .map(|v| {
            (
                v.name.clone(),
                v.default_value.clone().unwrap_or_default(),
                v.description.clone().unwrap_or_default(),
            )
        })
        .collect();
    let layout = Layout::signed_in(&user, Section::Pipelines);
    let page = ViewPage {
        // Only the latest version changes while shown.
        layout: if shows_state {
            layout.live(format!("/live?view=pipeline&name={}", segment(&name)))
        } else {
            layout
        },
        link: segment(&name),
        version,
        latest,
        is_current,
        mode: decl.execution_mode.clone().unwrap_or_default(),
        pipeline_type: decl.pipeline_type.clone().unwrap_or_default(),
        notice: match query.done.as_deref() {
            Some("created") => Some("The pipeline was created.".to_string()),
            Some("saved") => Some(format!("Saved as version {version}.")),
            Some("unchanged") => Some(format!(
                "No changes to save: version {version} stays the latest."
            )),
            Some("retried") => Some("The stage is running again.".to_string()),
            Some("enabled") => Some("The transition is enabled.".to_string()),
            Some("disabled") => Some("The transition is disabled.".to_string()),
            _ => match query.approval.as_deref() {
                Some("Approved") => Some("Approved: the stage goes on.".to_string()),
                Some("Rejected") => Some("Rejected: the stage fails.".to_string()),
                Some("Counted") => Some("Your approval is recorded; more are needed.".to_string()),
                _ => None,
            },
        },
        stages,
        can_release: c.can(Action::StartPipelineExecution, &me),
        can_history: c.can(Action::ListPipelineExecutions, &me),
        has_variables: decl.variables.as_ref().is_some_and(|v| !v.is_empty()),
        shows_state,
        can_edit: c.can(Action::UpdatePipeline, &me),
        can_clone: c.can(Action::CreatePipeline, &Resource::pipeline("*")),
        can_delete: c.can(Action::DeletePipeline, &me),
        settings,
        variables,
        name,
    };
    render_with_status(hx, &page, StatusCode::OK)
}

// ---- Export, import, clone, edit --------------------------------------------------------------

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<i64>,
}

async fn export(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    query: web::Query<VersionQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let (decl, metadata) =
        pipelines::get_pipeline(&state.services, &user.caller, &path, query.version).await?;
    // As `aws codepipeline get-pipeline` prints it; CreatePipeline and import ignore `metadata`.
    let body = serde_json::to_string_pretty(&serde_json::json!({
        "pipeline": decl,
        "metadata": metadata.wire(),
    }))
    .unwrap_or_default();
    let filename: String = decl
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}.json\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

#[derive(Template)]
#[template(path = "pipelines/edit.html", blocks = ["content"])]
struct EditPage {
    layout: Layout,
    title: String,
    lede: String,
    name: String,
    link: Option<String>,
    action: String,
    submit: &'static str,
    allow_file: bool,
    document: String,
    error: Option<String>,
    /// (path, message) per problem.
    problems: Vec<(String, String)>,
    /// An import's hints, by path: shown beside the problem at that path (and carried in the
    /// form, so they stay beside it on the next try).
    hints: Mapped,
    notice: Option<String>,
    /// After a refused import that looks like an AWS pipeline: what mapping it would do.
    offer: Option<ImportOffer>,
}
console_page!(EditPage);

impl EditPage {
    fn hint(&self, path: &str) -> Option<&str> {
        self.hints.hint_for(path)
    }
}

/// The one-step mapping an import offers: each action's Sluice counterpart, and a free name when
/// the pipeline's is taken.
struct ImportOffer {
    mappings: Vec<import::Mapping>,
    rename_to: Option<String>,
}

fn import_page(user: &SignedIn, document: String) -> EditPage {
    EditPage {
        layout: Layout::signed_in(user, Section::Pipelines),
        title: "Import a pipeline".into(),
        lede: "Create a pipeline from CodePipeline JSON, such as what aws codepipeline get-pipeline prints.".into(),
        name: String::new(),
        link: None,
        action: "/pipelines/import".into(),
        submit: "Create pipeline",
        allow_file: true,
        document,
        error: None,
        problems: Vec::new(),
        hints: Mapped::default(),
        notice: None,
        offer: None,
    }
}

async fn import_form(
    state: web::Data<AppState>,
    user: SignedIn,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    super::may_create_pipelines(&state, &user).await?;
    render_with_status(hx, &import_page(&user, String::new()), StatusCode::OK)
}

/// A pipeline's JSON, pretty, as `{"pipeline": …}`.
fn pretty(decl: &PipelineDeclaration) -> String {
    serde_json::to_string_pretty(&serde_json::json!({ "pipeline": decl })).unwrap_or_default()
}

async fn clone_form(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let (mut decl, _) = pipelines::get_pipeline(&state.services, &user.caller, &path, None).await?;
    super::may_create_pipelines(&state, &user).await?;
    decl.name = format!("{}-copy", decl.name).chars().take(100).collect();
    decl.version = None;
    let mut page = import_page(&user, pretty(&decl));
    page.title = format!("Clone {}", path.as_str());
    page.lede =
        "Rename the copy and adjust it; secret values show as **** and must be entered again."
            .into();
    render_with_status(hx, &page, StatusCode::OK)
}

/// Reads pasted JSON: `{"pipeline": …}` (with optional `metadata`) or a bare declaration.
fn parse_document(text: &str) -> Result<PipelineDeclaration, (String, String)> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| (String::new(), format!("not valid JSON: {e}")))?;
    let declaration = match value.get("pipeline") {
        Some(inner) => inner.clone(),
        None => value,
    };
    serde_path_to_error::deserialize(declaration).map_err(|e| {
        let path = e.path().to_string();
        (
            if path == "." { String::new() } else { path },
            e.into_inner().to_string(),
        )
    })
}

/// Shows the form again, with what the user sent, and why the save was refused.
fn with_problems(mut page: EditPage, error: AppError) -> Result<HttpResponse, ConsoleError> {
    let refusal = super::Refusal::of(error)?;
    page.problems = refusal.problems;
    page.error = refusal.message;
    render_with_status(HxRequest(false), &page, refusal.status)
}

#[derive(Deserialize)]
struct DocumentForm {
    #[serde(default)]
    document: String,
}

/// The hints an import page carried in its form (`hint.<path>` fields), at most one per action
/// property a pipeline can have.
fn carried_hints(form: &HashMap<String, String>) -> Mapped {
    let mut hints: Vec<import::Hint> = form
        .iter()
        .filter_map(|(key, message)| {
            Some(import::Hint {
                path: key.strip_prefix("hint.")?.to_string(),
                message: message.chars().take(500).collect(),
            })
        })
        .take(1000)
        .collect();
    hints.sort_by(|a, b| a.path.cmp(&b.path));
    Mapped {
        hints,
        ..Mapped::default()
    }
}

async fn import(
    state: web::Data<AppState>,
    form: CsrfForm<HashMap<String, String>>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, form } = form;
    super::may_create_pipelines(&state, &user).await?;
    let document = form.get("document").cloned().unwrap_or_default();
    let mut page = import_page(&user, document.clone());
    page.hints = carried_hints(&form);
    let mut decl = match parse_document(&document) {
        Ok(d) => d,
        Err(problem) => {
            page.problems = vec![problem];
            return render_with_status(hx, &page, StatusCode::BAD_REQUEST);
        }
    };
    if form.get("op").map(String::as_str) == Some("map") {
        return map_import(&state, &user, page, decl, hx).await;
    }
    match pipelines::create_pipeline(&state.services, &user.caller, decl.clone(), Vec::new()).await
    {
        Ok(created) => Ok(see_other(&format!(
            "/pipelines/{}?done=created",
            segment(&created.name)
        ))),
        Err(e) => {
            let name_taken = matches!(
                e,
                AppError::Rejected {
                    code: pipelines::NAME_IN_USE,
                    ..
                }
            );
            let mapped = import::map_aws(&mut decl);
            if mapped.changes_anything() || name_taken {
                let rename_to = if name_taken {
                    pipelines::free_name(&state.services, &user.caller, &decl.name).await?
                } else {
                    None
                };
                page.offer = Some(ImportOffer {
                    mappings: mapped.mappings,
                    rename_to,
                });
            }
            with_problems(page, e)
        }
    }
}

/// The import's "Map to Sluice": every AWS action replaced by its Sluice counterpart, a taken
/// name replaced by a free one, then checked; shown for review with a hint beside each problem.
/// Nothing is created until the user presses Create.
async fn map_import(
    state: &AppState,
    user: &SignedIn,
    mut page: EditPage,
    mut decl: PipelineDeclaration,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let mapped = import::map_aws(&mut decl);
    let changed = mapped
        .mappings
        .iter()
        .filter(|m| !m.unchanged && m.to.is_some())
        .count();
    let mut notes = vec![format!(
        "{changed} action{} mapped to Sluice's counterparts.",
        if changed == 1 { "" } else { "s" }
    )];
    match pipelines::free_name(&state.services, &user.caller, &decl.name).await? {
        Some(free) if free != decl.name => {
            notes.push(format!(
                "A pipeline named {} exists, so this one is named {free}.",
                decl.name
            ));
            decl.name = free;
        }
        _ => {}
    }
    page.document = pretty(&decl);
    page.hints = mapped;
    page.problems = match crate::pipeline::validate(decl) {
        Ok(_) => {
            notes.push("It is ready to create.".into());
            Vec::new()
        }
        Err(problems) => {
            let left = problems.all().len();
            notes.push(format!(
                "{left} thing{} to fill in, listed under the JSON with a hint beside each; then create it.",
                if left == 1 { " is left" } else { "s are left" }
            ));
            problems
                .all()
                .iter()
                .map(|p| (p.path.clone(), p.message.clone()))
                .collect()
        }
    };
    page.notice = Some(notes.join(" "));
    render_with_status(hx, &page, StatusCode::OK)
}

fn edit_page(user: &SignedIn, name: &str, document: String) -> EditPage {
    EditPage {
        layout: Layout::signed_in(user, Section::Pipelines),
        title: format!("Edit {name}"),
        lede:
            "The whole declaration as JSON. Saving stores a new version; keep \"version\" as it is."
                .into(),
        name: name.to_string(),
        link: Some(segment(name)),
        action: format!("/pipelines/{}/edit/json", segment(name)),
        submit: "Save as a new version",
        allow_file: false,
        document,
        error: None,
        problems: Vec::new(),
        hints: Mapped::default(),
        notice: None,
        offer: None,
    }
}

async fn edit_form(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    super::may_update_pipeline(&state, &user, &path).await?;
    let (decl, _) = pipelines::get_pipeline(&state.services, &user.caller, &path, None).await?;
    render_with_status(hx, &edit_page(&user, &path, pretty(&decl)), StatusCode::OK)
}

async fn save(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<DocumentForm>,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, form } = form;
    super::may_update_pipeline(&state, &user, &path).await?;
    let mut page = edit_page(&user, &path, form.document.clone());
    let mut decl = match parse_document(&form.document) {
        Ok(d) => d,
        Err(problem) => {
            page.problems = vec![problem];
            return render_with_status(HxRequest(false), &page, StatusCode::BAD_REQUEST);
        }
    };
    if decl.name != *path {
        page.problems = vec![(
            "name".into(),
            format!(
                "a pipeline cannot be renamed; keep \"{}\" (clone it to make a copy with another name)",
                path.as_str()
            ),
        )];
        return render_with_status(HxRequest(false), &page, StatusCode::BAD_REQUEST);
    }
    decl.name = path.to_string();
    match pipelines::update_pipeline(&state.services, &user.caller, decl).await {
        Ok(pipelines::Saved::NewVersion(saved)) => Ok(see_other(&format!(
            "/pipelines/{}?done=saved",
            segment(&saved.name)
        ))),
        Ok(pipelines::Saved::Unchanged(current)) => Ok(see_other(&format!(
            "/pipelines/{}?done=unchanged",
            segment(&current.name)
        ))),
        Err(e) => with_problems(page, e),
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn delete(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<Empty>,
) -> Result<HttpResponse, ConsoleError> {
    pipelines::delete_pipeline(&state.services, &form.user.caller, &path).await?;
    Ok(see_other("/?done=deleted"))
}

// ---- Versions and diff ------------------------------------------------------------------------

struct VersionRow {
    version: i32,
    author: String,
    created: String,
}

#[derive(Template)]
#[template(path = "pipelines/versions.html", blocks = ["content"])]
struct VersionsPage {
    layout: Layout,
    name: String,
    link: String,
    versions: Vec<VersionRow>,
}
console_page!(VersionsPage);

async fn versions(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let list = pipelines::list_versions(&state.services, &user.caller, &path).await?;
    let page = VersionsPage {
        layout: Layout::signed_in(&user, Section::Pipelines),
        link: segment(&path),
        name: path.into_inner(),
        versions: list
            .into_iter()
            .map(|v| VersionRow {
                version: v.version,
                author: v.author,
                created: display_time(v.created),
            })
            .collect(),
    };
    render_with_status(hx, &page, StatusCode::OK)
}

struct DiffRow {
    kind: &'static str,
    left_no: String,
    left: String,
    right_no: String,
    right: String,
}

#[derive(Template)]
#[template(path = "pipelines/diff.html", blocks = ["content"])]
struct DiffPage {
    layout: Layout,
    name: String,
    link: String,
    from: i64,
    to: i64,
    changes: usize,
    rows: Vec<DiffRow>,
}
console_page!(DiffPage);

#[derive(Deserialize)]
struct DiffQuery {
    from: i64,
    to: i64,
}

/// Side-by-side rows of a line diff: equal lines on both sides, changed lines paired up.
fn side_by_side(old: &str, new: &str) -> (Vec<DiffRow>, usize) {
    use similar::{ChangeTag, TextDiff};
    let diff = TextDiff::from_lines(old, new);
    let mut rows = Vec::new();
    let mut changes = 0;
    for op in diff.ops() {
        let mut deleted = Vec::new();
        let mut inserted = Vec::new();
        for change in diff.iter_changes(op) {
            let line = change.value().trim_end_matches('\n').to_string();
            match change.tag() {
                ChangeTag::Equal => rows.push(DiffRow {
                    kind: "equal",
                    left_no: change
                        .old_index()
                        .map(|i| (i + 1).to_string())
                        .unwrap_or_default(),
                    left: line.clone(),
                    right_no: change
                        .new_index()
                        .map(|i| (i + 1).to_string())
                        .unwrap_or_default(),
                    right: line,
                }),
                ChangeTag::Delete => {
                    deleted.push((change.old_index().unwrap_or_default() + 1, line))
                }
                ChangeTag::Insert => {
                    inserted.push((change.new_index().unwrap_or_default() + 1, line))
                }
            }
        }
        let n = deleted.len().max(inserted.len());
        changes += n;
        for i in 0..n {
            let (left_no, left) = deleted
                .get(i)
                .map_or((String::new(), String::new()), |(no, l)| {
                    (no.to_string(), l.clone())
                });
            let (right_no, right) = inserted
                .get(i)
                .map_or((String::new(), String::new()), |(no, l)| {
                    (no.to_string(), l.clone())
                });
            let kind = match (deleted.get(i).is_some(), inserted.get(i).is_some()) {
                (true, true) => "change",
                (true, false) => "delete",
                _ => "insert",
            };
            rows.push(DiffRow {
                kind,
                left_no,
                left,
                right_no,
                right,
            });
        }
    }
    (rows, changes)
}

async fn diff(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    query: web::Query<DiffQuery>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let s = &state.services;
    let (old, new) =
        pipelines::compare_versions(s, &user.caller, &path, query.from, query.to).await?;
    let without_version = |mut d: PipelineDeclaration| {
        d.version = None;
        pretty(&d)
    };
    let (rows, changes) = side_by_side(&without_version(old), &without_version(new));
    let page = DiffPage {
        layout: Layout::signed_in(&user, Section::Pipelines),
        link: segment(&path),
        name: path.into_inner(),
        from: query.from,
        to: query.to,
        changes,
        rows,
    };
    render_with_status(hx, &page, StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_pair_changed_lines_and_count_them() {
        let (rows, changes) = side_by_side("a\nb\nc\n", "a\nB\nc\nd\n");
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, ["equal", "change", "equal", "insert"]);
        assert_eq!(changes, 2);
        assert_eq!((rows[1].left.as_str(), rows[1].right.as_str()), ("b", "B"));
    }

    #[test]
    fn pasted_json_may_be_wrapped_or_bare() {
        let bare = r#"{"name": "p", "stages": []}"#;
        assert_eq!(parse_document(bare).unwrap().name, "p");
        let wrapped =
            r#"{"pipeline": {"name": "q", "stages": []}, "metadata": {"pipelineArn": "x"}}"#;
        assert_eq!(parse_document(wrapped).unwrap().name, "q");
        let (path, message) =
            parse_document(r#"{"name": "p", "stages": [{"name": 1}]}"#).unwrap_err();
        assert_eq!(path, "stages[0].name");
        assert!(message.contains("invalid type"), "{message}");
    }
}
