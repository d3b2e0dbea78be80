//! The create-pipeline wizard, after CodePipeline's console wizard: settings, source, build (or
//! skip), deploy (or skip), review, each at its own URL (`/pipelines/new/settings` …).
//!
//! The wizard's state travels in the URL: every step's page is a GET whose query holds every
//! field so far, so Back, Forward and Reload show exactly what was typed, and nothing is kept on
//! the server for a wizard someone walks away from. A step's form posts every field (the other
//! steps' as hidden fields); the server checks that step and answers with the errors next to the
//! fields, or redirects to the next step's URL (post/redirect/get, so a reload never re-posts).
//! The review's "Create pipeline" checks every step again, since hidden fields can be edited.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde_json::json;

use super::{ConsoleError, Layout, Section, console_page, render_with_status, see_other, segment};
use crate::error::AppError;
use crate::ops::pipelines;
use crate::pipeline::action_types::Format;
use crate::pipeline::check_format;
use crate::pipeline::wire::PipelineDeclaration;
use crate::web::AppState;
use crate::web::auth::{CsrfForm, SignedIn};
use crate::web::htmx::HxRequest;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/pipelines/new")
            .route(web::get().to(start))
            .default_service(web::to(super::method_not_allowed)),
    );
    // Only the steps' names: a pipeline called "new" keeps its other pages.
    cfg.service(
        web::resource("/pipelines/new/{step:(settings|source|build|deploy|review)}")
            .route(web::get().to(show))
            .route(web::post().to(submit))
            .default_service(web::to(super::method_not_allowed)),
    );
}

/// The wizard's steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Settings = 1,
    Source,
    Build,
    Deploy,
    Review,
}

impl Step {
    const ALL: [Step; 5] = [
        Step::Settings,
        Step::Source,
        Step::Build,
        Step::Deploy,
        Step::Review,
    ];

    fn parse(slug: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.slug() == slug)
    }

    fn slug(self) -> &'static str {
        match self {
            Step::Settings => "settings",
            Step::Source => "source",
            Step::Build => "build",
            Step::Deploy => "deploy",
            Step::Review => "review",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Step::Settings => "Settings",
            Step::Source => "Source",
            Step::Build => "Build",
            Step::Deploy => "Deploy",
            Step::Review => "Review",
        }
    }

    fn number(self) -> u8 {
        self as u8
    }

    fn next(self) -> Step {
        Step::ALL[(self.number() as usize).min(4)]
    }

    fn previous(self) -> Step {
        Step::ALL[(self.number() as usize).saturating_sub(2)]
    }
}

/// A ready-to-edit buildspec for the build step: it runs, and shows where commands go.
const STARTER_BUILDSPEC: &str = "version: 0.2
phases:
  install:
    commands:
      - echo Installing what the build needs
  build:
    commands:
      - echo Building
      - ls -la
artifacts:
  files:
    - '**/*'
";

/// Every field of the wizard. All strings, so that whatever was typed comes back as typed.
#[derive(Debug, Clone, Default, PartialEq)]
struct Fields {
    name: String,
    execution_mode: String,
    variables: String,
    source_provider: String,
    git_url: String,
    git_branch: String,
    upload_bucket: String,
    upload_key: String,
    build_provider: String,
    build_spec_from: String,
    build_spec: String,
    build_spec_path: String,
    deploy_provider: String,
    target_directory: String,
    webhook_url: String,
}

impl Fields {
    /// A new wizard's fields: the defaults CodePipeline's wizard offers, and a starter buildspec.
    fn initial() -> Fields {
        Fields {
            execution_mode: "SUPERSEDED".into(),
            source_provider: "Git".into(),
            git_branch: "main".into(),
            build_provider: "Command".into(),
            build_spec_from: "inline".into(),
            build_spec: STARTER_BUILDSPEC.into(),
            deploy_provider: "Directory".into(),
            ..Default::default()
        }
    }

    /// The fields of a query or form: the given ones as given, the rest as a new wizard has them.
    /// Unknown keys are ignored.
    fn from_pairs(pairs: HashMap<String, String>) -> Fields {
        let mut fields = Fields::initial();
        for (key, value) in pairs {
            if let Some(slot) = fields.slot(&key) {
                *slot = value;
            }
        }
        fields
    }

    fn slot(&mut self, key: &str) -> Option<&mut String> {
        Some(match key {
            "name" => &mut self.name,
            "execution_mode" => &mut self.execution_mode,
            "variables" => &mut self.variables,
            "source_provider" => &mut self.source_provider,
            "git_url" => &mut self.git_url,
            "git_branch" => &mut self.git_branch,
            "upload_bucket" => &mut self.upload_bucket,
            "upload_key" => &mut self.upload_key,
            "build_provider" => &mut self.build_provider,
            "build_spec_from" => &mut self.build_spec_from,
            "build_spec" => &mut self.build_spec,
            "build_spec_path" => &mut self.build_spec_path,
            "deploy_provider" => &mut self.deploy_provider,
            "target_directory" => &mut self.target_directory,
            "webhook_url" => &mut self.webhook_url,
            _ => return None,
        })
    }

    fn all(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("name", &self.name),
            ("execution_mode", &self.execution_mode),
            ("variables", &self.variables),
            ("source_provider", &self.source_provider),
            ("git_url", &self.git_url),
            ("git_branch", &self.git_branch),
            ("upload_bucket", &self.upload_bucket),
            ("upload_key", &self.upload_key),
            ("build_provider", &self.build_provider),
            ("build_spec_from", &self.build_spec_from),
            ("build_spec", &self.build_spec),
            ("build_spec_path", &self.build_spec_path),
            ("deploy_provider", &self.deploy_provider),
            ("target_directory", &self.target_directory),
            ("webhook_url", &self.webhook_url),
        ]
    }

    /// The fields as a URL query, for the link to a step.
    fn query(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in self.all() {
            query.append_pair(key, value);
        }
        query.finish()
    }

    /// The fields a step shows (the rest are carried as hidden fields).
    fn shown_on(step: Step) -> &'static [&'static str] {
        match step {
            Step::Settings => &["name", "execution_mode", "variables"],
            Step::Source => &[
                "source_provider",
                "git_url",
                "git_branch",
                "upload_bucket",
                "upload_key",
            ],
            Step::Build => &[
                "build_provider",
                "build_spec_from",
                "build_spec",
                "build_spec_path",
            ],
            Step::Deploy => &["deploy_provider", "target_directory", "webhook_url"],
            Step::Review => &[],
        }
    }

    fn inline_spec(&self) -> bool {
        self.build_spec_from != "path"
    }
}

const MODES: [(&str, &str); 3] = [
    (
        "SUPERSEDED",
        "a newer execution overtakes an older one (the default)",
    ),
    ("QUEUED", "executions wait their turn"),
    ("PARALLEL", "executions run side by side"),
];

/// One step in the row of steps at the top: done steps link back to their page.
struct StepLink {
    number: u8,
    title: &'static str,
    href: Option<String>,
    current: bool,
}

#[derive(Template)]
#[template(path = "pipelines/wizard.html", blocks = ["content"])]
struct WizardPage {
    layout: Layout,
    step: u8,
    slug: &'static str,
    steps: Vec<StepLink>,
    modes: Vec<(&'static str, &'static str)>,
    f: Fields,
    hidden: Vec<(&'static str, String)>,
    errors: HashMap<&'static str, String>,
    error: Option<String>,
    problems: Vec<(String, String)>,
    /// The review: each stage the wizard creates, with what it does.
    stages: Vec<(&'static str, String)>,
    variables: Vec<(String, String)>,
    json: String,
}
console_page!(WizardPage);

fn page(
    user: &SignedIn,
    step: Step,
    f: Fields,
    errors: HashMap<&'static str, String>,
) -> WizardPage {
    let shown = Fields::shown_on(step);
    let hidden = f
        .all()
        .into_iter()
        .filter(|(k, _)| !shown.contains(k))
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    let query = f.query();
    let steps = Step::ALL
        .into_iter()
        .map(|s| StepLink {
            number: s.number(),
            title: s.title(),
            href: (s < step).then(|| format!("/pipelines/new/{}?{query}", s.slug())),
            current: s == step,
        })
        .collect();
    let (stages, variables, json) = if step == Step::Review {
        (
            stage_summaries(&f),
            variables(&f.variables).unwrap_or_default(),
            serde_json::to_string_pretty(&json!({ "pipeline": declaration(&f) }))
                .unwrap_or_default(),
        )
    } else {
        Default::default()
    };
    WizardPage {
        layout: Layout::signed_in(user, Section::Pipelines),
        step: step.number(),
        slug: step.slug(),
        steps,
        modes: MODES.to_vec(),
        hidden,
        errors,
        error: None,
        problems: Vec::new(),
        stages,
        variables,
        json,
        f,
    }
}

/// The stages the review lists: the names the wizard gives them, and what each runs.
fn stage_summaries(f: &Fields) -> Vec<(&'static str, String)> {
    let mut stages = vec![(
        "Source",
        match f.source_provider.as_str() {
            "Upload" => format!(
                "Upload source: {} / {}",
                f.upload_bucket.trim(),
                f.upload_key.trim()
            ),
            _ => format!("Git source: {} ({})", f.git_url.trim(), f.git_branch.trim()),
        },
    )];
    if f.build_provider != "skip" {
        stages.push((
            "Build",
            if f.inline_spec() {
                "Command build: the buildspec written here".to_string()
            } else {
                format!(
                    "Command build: {} from the source",
                    Some(f.build_spec_path.trim())
                        .filter(|p| !p.is_empty())
                        .unwrap_or("buildspec.yml")
                )
            },
        ));
    }
    match f.deploy_provider.as_str() {
        "skip" => {}
        "Webhook" => stages.push(("Staging", format!("Webhook: {}", f.webhook_url.trim()))),
        _ => stages.push((
            "Staging",
            format!("Directory deploy: {}", f.target_directory.trim()),
        )),
    }
    stages
}

/// The fields of the request's query; a query that is not a form's encoding is refused.
fn query_fields(req: &HttpRequest) -> Result<Fields, ConsoleError> {
    serde_urlencoded::from_str::<HashMap<String, String>>(req.query_string())
        .map(Fields::from_pairs)
        .map_err(|_| ConsoleError::BadRequest("the wizard's address is not valid".into()))
}

async fn start(state: web::Data<AppState>, user: SignedIn) -> Result<HttpResponse, ConsoleError> {
    super::may_create_pipelines(&state, &user).await?;
    Ok(see_other("/pipelines/new/settings"))
}

async fn show(
    state: web::Data<AppState>,
    user: SignedIn,
    req: HttpRequest,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    super::may_create_pipelines(&state, &user).await?;
    let step = Step::parse(req.match_info().query("step")).ok_or(ConsoleError::NotFound)?;
    let fields = query_fields(&req)?;
    render_with_status(
        hx,
        &page(&user, step, fields, HashMap::new()),
        StatusCode::OK,
    )
}

/// Redirects to step `to` with the fields in its URL; fields too long together to travel stay
/// on the `current` step, with everything typed and a clear error.
fn go_to(
    hx: HxRequest,
    user: &SignedIn,
    current: Step,
    to: Step,
    fields: Fields,
) -> Result<HttpResponse, ConsoleError> {
    let url = step_url(to, &fields);
    if url.len() <= MAX_STEP_URL {
        return Ok(see_other(&url));
    }
    let mut stay = page(user, current, fields, HashMap::new());
    stay.error = Some(
        "Together the fields are too long to carry to another step; shorten the variables, the buildspec or the addresses."
            .into(),
    );
    render_with_status(hx, &stay, StatusCode::BAD_REQUEST)
}

fn step_url(step: Step, fields: &Fields) -> String {
    format!("/pipelines/new/{}?{}", step.slug(), fields.query())
}

fn name_ok(s: &str) -> bool {
    (1..=100).contains(&s.chars().count())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_'))
}

/// CodePipeline's limits on pipeline-level variables.
const MAX_VARIABLES: usize = 50;
const MAX_DEFAULT_VALUE: usize = 1000;

/// The longest step URL the wizard redirects to: the fields travel in it, and a server's request
/// head (actix: 128 KiB) or a proxy's may be smaller than what pasting can produce.
const MAX_STEP_URL: usize = 32 * 1024;

/// The pipeline-level variables of the textarea: `NAME=default` lines.
fn variables(text: &str) -> Result<Vec<(String, String)>, String> {
    let count = text.lines().filter(|l| !l.trim().is_empty()).count();
    if count > MAX_VARIABLES {
        return Err(format!(
            "a pipeline has at most {MAX_VARIABLES} variables; these are {count}"
        ));
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: write NAME=default", i + 1))?;
            let name = name.trim();
            if !(1..=128).contains(&name.len())
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '-' | '_'))
            {
                return Err(format!(
                    "line {}: {name:?} is not a variable name (letters, digits, @ - _)",
                    i + 1
                ));
            }
            let value = value.trim();
            if value.chars().count() > MAX_DEFAULT_VALUE {
                return Err(format!(
                    "line {}: a default value has at most {MAX_DEFAULT_VALUE} characters",
                    i + 1
                ));
            }
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

/// Checks the fields of one step.
fn check(step: Step, f: &Fields) -> HashMap<&'static str, String> {
    let mut e = HashMap::new();
    let required =
        |e: &mut HashMap<&'static str, String>, key: &'static str, value: &str, what: &str| {
            if value.trim().is_empty() {
                e.insert(key, format!("{what} is required"));
            } else if value.chars().count() > 1000 {
                e.insert(key, format!("{what} must be at most 1000 characters"));
            }
        };
    // The same format rules the pipeline's validation applies, shown next to the field.
    let formatted = |e: &mut HashMap<&'static str, String>,
                     key: &'static str,
                     value: &str,
                     what: &str,
                     format: Format| {
        required(e, key, value, what);
        if !e.contains_key(key)
            && let Err(message) = check_format(format, value.trim())
        {
            e.insert(key, format!("{what} {message}"));
        }
    };
    match step {
        Step::Settings => {
            if !name_ok(f.name.trim()) {
                e.insert(
                    "name",
                    "the name must be 1-100 letters, digits and . @ - _".to_string(),
                );
            }
            if !MODES.iter().any(|(m, _)| *m == f.execution_mode) {
                e.insert("execution_mode", "choose an execution mode".to_string());
            }
            if let Err(message) = variables(&f.variables) {
                e.insert("variables", message);
            }
        }
        Step::Source => {
            if f.source_provider == "Upload" {
                required(&mut e, "upload_bucket", &f.upload_bucket, "the bucket");
                required(&mut e, "upload_key", &f.upload_key, "the object key");
            } else {
                formatted(
                    &mut e,
                    "git_url",
                    &f.git_url,
                    "the repository URL",
                    Format::RepositoryUrl,
                );
                required(&mut e, "git_branch", &f.git_branch, "the branch");
            }
        }
        Step::Build if f.build_provider == "skip" => {}
        Step::Build if f.inline_spec() => {
            if f.build_spec.trim().is_empty() {
                e.insert(
                    "build_spec",
                    "write the buildspec, or choose one from the source".to_string(),
                );
            } else if f.build_spec.chars().count() > 1000 {
                e.insert(
                    "build_spec",
                    "an inline buildspec must be at most 1000 characters".to_string(),
                );
            } else if let Err(message) = check_format(Format::BuildSpec, &f.build_spec) {
                e.insert("build_spec", format!("the buildspec {message}"));
            }
        }
        Step::Build if f.build_spec_path.chars().count() > 1000 => {
            e.insert(
                "build_spec_path",
                "the buildspec path must be at most 1000 characters".to_string(),
            );
        }
        Step::Deploy => match f.deploy_provider.as_str() {
            "skip" if f.build_provider == "skip" => {
                e.insert(
                    "deploy_provider",
                    "A pipeline needs a build or a deploy stage: skipping both leaves nothing to run. Choose a deploy provider, or go back and add a build."
                        .to_string(),
                );
            }
            "skip" => {}
            "Webhook" => formatted(
                &mut e,
                "webhook_url",
                &f.webhook_url,
                "the endpoint URL",
                Format::HttpUrl,
            ),
            _ => formatted(
                &mut e,
                "target_directory",
                &f.target_directory,
                "the target directory",
                Format::AbsolutePath,
            ),
        },
        _ => {}
    }
    e
}

/// The declaration the wizard's fields describe: stages Source, Build and Staging.
fn declaration(f: &Fields) -> serde_json::Value {
    let source = if f.source_provider == "Upload" {
        json!({
            "name": "Upload",
            "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Upload", "version": "1"},
            "namespace": "SourceVariables",
            "configuration": {"Bucket": f.upload_bucket.trim(), "ObjectKey": f.upload_key.trim()},
            "outputArtifacts": [{"name": "SourceArtifact"}]
        })
    } else {
        json!({
            "name": "Checkout",
            "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
            "namespace": "SourceVariables",
            "configuration": {"RepositoryUrl": f.git_url.trim(), "Branch": f.git_branch.trim()},
            "outputArtifacts": [{"name": "SourceArtifact"}]
        })
    };
    let mut stages = vec![json!({"name": "Source", "actions": [source]})];
    let mut deploy_input = "SourceArtifact";
    if f.build_provider != "skip" {
        let mut config = serde_json::Map::new();
        if f.inline_spec() {
            config.insert("BuildSpec".into(), json!(f.build_spec));
        } else if !f.build_spec_path.trim().is_empty() {
            config.insert("BuildSpecPath".into(), json!(f.build_spec_path.trim()));
        }
        stages.push(json!({"name": "Build", "actions": [{
            "name": "Build",
            "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
            "configuration": config,
            "inputArtifacts": [{"name": "SourceArtifact"}],
            "outputArtifacts": [{"name": "BuildArtifact"}]
        }]}));
        deploy_input = "BuildArtifact";
    }
    match f.deploy_provider.as_str() {
        "skip" => {}
        "Webhook" => stages.push(json!({"name": "Staging", "actions": [{
            "name": "Deploy",
            "actionTypeId": {"category": "Invoke", "owner": "Sluice", "provider": "Webhook", "version": "1"},
            "configuration": {"Url": f.webhook_url.trim()},
            "inputArtifacts": [{"name": deploy_input}]
        }]})),
        _ => stages.push(json!({"name": "Staging", "actions": [{
            "name": "Deploy",
            "actionTypeId": {"category": "Deploy", "owner": "Sluice", "provider": "Directory", "version": "1"},
            "configuration": {"TargetDirectory": f.target_directory.trim()},
            "inputArtifacts": [{"name": deploy_input}]
        }]})),
    }
    let mut decl = json!({
        "name": f.name.trim(),
        "pipelineType": "V2",
        "executionMode": f.execution_mode,
        "stages": stages,
    });
    if let Ok(vars) = variables(&f.variables)
        && !vars.is_empty()
    {
        decl["variables"] = vars
            .into_iter()
            .map(|(name, value)| {
                if value.is_empty() {
                    json!({"name": name})
                } else {
                    json!({"name": name, "defaultValue": value})
                }
            })
            .collect();
    }
    decl
}

async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: CsrfForm<HashMap<String, String>>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, mut form } = form;
    super::may_create_pipelines(&state, &user).await?;
    let current = Step::parse(req.match_info().query("step")).ok_or(ConsoleError::NotFound)?;
    let go = form.remove("go").unwrap_or_default();
    let fields = Fields::from_pairs(form);
    match go.as_str() {
        // Checked or not, what was typed travels back.
        "back" => go_to(hx, &user, current, current.previous(), fields),
        "create" => {
            for s in &Step::ALL[..4] {
                let errors = check(*s, &fields);
                if !errors.is_empty() {
                    return render_with_status(
                        hx,
                        &page(&user, *s, fields, errors),
                        StatusCode::BAD_REQUEST,
                    );
                }
            }
            let decl: PipelineDeclaration =
                serde_json::from_value(declaration(&fields)).map_err(|e| {
                    ConsoleError::Internal(
                        anyhow::Error::new(e).context("the wizard built an unreadable declaration"),
                    )
                })?;
            match pipelines::create_pipeline(&state.services, &user.caller, decl, Vec::new()).await
            {
                Ok(created) => Ok(see_other(&format!(
                    "/pipelines/{}?done=created",
                    segment(&created.name)
                ))),
                Err(AppError::Rejected {
                    code: pipelines::NAME_IN_USE,
                    message,
                }) => {
                    let mut errors = HashMap::new();
                    errors.insert("name", message);
                    render_with_status(
                        hx,
                        &page(&user, Step::Settings, fields, errors),
                        StatusCode::BAD_REQUEST,
                    )
                }
                Err(e) => {
                    let refusal = super::Refusal::of(e)?;
                    let mut review = page(&user, Step::Review, fields, HashMap::new());
                    review.problems = refusal.problems;
                    review.error = refusal.message;
                    render_with_status(hx, &review, refusal.status)
                }
            }
        }
        _ => {
            let errors = check(current, &fields);
            if !errors.is_empty() {
                return render_with_status(
                    hx,
                    &page(&user, current, fields, errors),
                    StatusCode::BAD_REQUEST,
                );
            }
            go_to(hx, &user, current, current.next(), fields)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete() -> Fields {
        Fields {
            name: "demo".into(),
            execution_mode: "SUPERSEDED".into(),
            source_provider: "Git".into(),
            git_url: "https://git.example.com/demo.git".into(),
            git_branch: "main".into(),
            build_provider: "Command".into(),
            deploy_provider: "skip".into(),
            ..Fields::initial()
        }
    }

    #[test]
    fn the_starter_buildspec_passes_the_build_step_and_lands_inline() {
        let f = complete();
        assert_eq!(f.build_spec, STARTER_BUILDSPEC);
        assert!(check(Step::Build, &f).is_empty());
        let decl = declaration(&f);
        assert_eq!(
            decl["stages"][1]["actions"][0]["configuration"]["BuildSpec"],
            STARTER_BUILDSPEC
        );
        let mut from_source = complete();
        from_source.build_spec_from = "path".into();
        from_source.build_spec_path = "ci/buildspec.yml".into();
        from_source.build_spec = "not even yaml: [".into();
        assert!(check(Step::Build, &from_source).is_empty());
        let config = &declaration(&from_source)["stages"][1]["actions"][0]["configuration"];
        assert_eq!(config, &json!({"BuildSpecPath": "ci/buildspec.yml"}));
        let mut emptied = complete();
        emptied.build_spec = " \n".into();
        assert!(check(Step::Build, &emptied)["build_spec"].contains("write the buildspec"));
    }

    #[test]
    fn a_steps_url_carries_every_field_byte_for_byte() {
        let mut f = complete();
        f.variables = "Env=prod\r\nRegion=eu & more=?#%".into();
        f.build_spec =
            "version: 0.2\n# ünïcödé 🚀\nphases: {build: {commands: [\"echo a+b\"]}}\n".into();
        f.git_branch = String::new();
        let url = step_url(Step::Build, &f);
        let query = url.split_once('?').unwrap().1;
        let back = Fields::from_pairs(serde_urlencoded::from_str(query).unwrap());
        assert_eq!(back, f, "a field left empty stays empty, not the default");
        assert!(url.starts_with("/pipelines/new/build?"));
        // A query without the wizard's fields starts a new wizard.
        assert_eq!(Fields::from_pairs(HashMap::new()), Fields::initial());
    }

    #[test]
    fn variables_keep_within_codepipelines_limits() {
        let fifty: String = (0..50).map(|i| format!("V{i}=x\n")).collect();
        assert_eq!(variables(&fifty).unwrap().len(), 50);
        let more = format!("{fifty}V50=x");
        assert!(variables(&more).unwrap_err().contains("at most 50"));
        let long = format!("V={}", "x".repeat(1001));
        assert!(variables(&long).unwrap_err().contains("at most 1000"));
        assert!(variables(&format!("V={}", "é".repeat(1000))).is_ok());
    }

    #[test]
    fn the_steps_go_forward_and_back_within_the_wizard() {
        assert_eq!(Step::Settings.previous(), Step::Settings);
        assert_eq!(Step::Settings.next(), Step::Source);
        assert_eq!(Step::Deploy.next(), Step::Review);
        assert_eq!(Step::Review.next(), Step::Review);
        assert_eq!(Step::Review.previous(), Step::Deploy);
        for s in Step::ALL {
            assert_eq!(Step::parse(s.slug()), Some(s));
        }
        assert_eq!(Step::parse("Settings"), None);
    }

    #[test]
    fn the_review_names_the_stages_the_wizard_creates() {
        let mut f = complete();
        f.deploy_provider = "Webhook".into();
        f.webhook_url = "https://deploy.example.com/hook".into();
        let names: Vec<&str> = stage_summaries(&f).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Source", "Build", "Staging"]);
        let decl: Vec<String> = declaration(&f)["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(decl, names, "the review says what is created");
    }

    #[test]
    fn the_wizard_builds_a_valid_pipeline_with_the_default_stage_names() {
        let decl: PipelineDeclaration = serde_json::from_value(declaration(&complete())).unwrap();
        let pipeline = crate::pipeline::validate(decl).unwrap();
        let names: Vec<&str> = pipeline
            .declaration()
            .stages
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["Source", "Build"]);

        let mut f = complete();
        f.build_provider = "skip".into();
        f.deploy_provider = "Directory".into();
        f.target_directory = "/srv/demo".into();
        f.variables = "Env=prod\nRegion=".into();
        let decl: PipelineDeclaration = serde_json::from_value(declaration(&f)).unwrap();
        let pipeline = crate::pipeline::validate(decl).unwrap();
        let names: Vec<&str> = pipeline
            .declaration()
            .stages
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["Source", "Staging"]);
        assert_eq!(pipeline.declaration().variables.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn skipping_both_build_and_deploy_is_refused_at_the_deploy_step() {
        let mut f = complete();
        f.build_provider = "skip".into();
        f.deploy_provider = "skip".into();
        assert!(check(Step::Deploy, &f)["deploy_provider"].contains("skipping both"));
    }

    #[test]
    fn each_step_names_its_missing_fields() {
        let f = Fields::default();
        assert!(check(Step::Settings, &f).contains_key("name"));
        let errors = check(Step::Source, &f);
        assert!(errors.contains_key("git_url") && errors.contains_key("git_branch"));
        let upload = Fields {
            source_provider: "Upload".into(),
            ..Default::default()
        };
        assert!(check(Step::Source, &upload).contains_key("upload_bucket"));
        let mut bad_vars = complete();
        bad_vars.variables = "no equals sign".into();
        assert!(check(Step::Settings, &bad_vars)["variables"].contains("NAME=default"));
    }

    #[test]
    fn each_field_is_checked_by_its_property_format_next_to_it() {
        let mut f = complete();
        f.git_url = "demo.git".into();
        assert!(check(Step::Source, &f)["git_url"].contains("https://"));
        f.git_url = "git@git.example.com:team/demo.git".into();
        assert!(check(Step::Source, &f).is_empty());
        f.build_spec = "phases: {build: {commands: [make]}}".into();
        assert!(check(Step::Build, &f)["build_spec"].contains("version: 0.2"));
        f.deploy_provider = "Directory".into();
        f.target_directory = "srv/demo".into();
        assert!(check(Step::Deploy, &f)["target_directory"].contains("absolute"));
        f.deploy_provider = "Webhook".into();
        f.webhook_url = "deploy.example.com/hook".into();
        assert!(check(Step::Deploy, &f)["webhook_url"].contains("http"));
    }
}
