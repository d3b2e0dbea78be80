//! The create-pipeline wizard (`/pipelines/new`), after CodePipeline's console wizard: settings,
//! source, build (or skip), deploy (or skip), review. Each step posts every field so far (the
//! others travel as hidden fields), is validated on the server with errors next to the fields,
//! and works as a plain form post; with htmx it swaps only the page's content.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
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
            .route(web::post().to(step))
            .default_service(web::to(super::method_not_allowed)),
    );
}

/// Every field of the wizard. All strings, so that whatever was typed comes back as typed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
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
    build_spec: String,
    build_spec_path: String,
    deploy_provider: String,
    target_directory: String,
    webhook_url: String,
}

impl Fields {
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
            ("build_spec", &self.build_spec),
            ("build_spec_path", &self.build_spec_path),
            ("deploy_provider", &self.deploy_provider),
            ("target_directory", &self.target_directory),
            ("webhook_url", &self.webhook_url),
        ]
    }

    /// The fields a step shows (the rest are carried as hidden fields).
    fn shown_on(step: u8) -> &'static [&'static str] {
        match step {
            1 => &["name", "execution_mode", "variables"],
            2 => &[
                "source_provider",
                "git_url",
                "git_branch",
                "upload_bucket",
                "upload_key",
            ],
            3 => &["build_provider", "build_spec", "build_spec_path"],
            4 => &["deploy_provider", "target_directory", "webhook_url"],
            _ => &[],
        }
    }
}

#[derive(Deserialize)]
struct StepForm {
    #[serde(default)]
    step: String,
    #[serde(default)]
    go: String,
    #[serde(flatten)]
    fields: Fields,
}

const STEPS: [(u8, &str); 5] = [
    (1, "Settings"),
    (2, "Source"),
    (3, "Build"),
    (4, "Deploy"),
    (5, "Review"),
];
const MODES: [(&str, &str); 3] = [
    (
        "SUPERSEDED",
        "a newer execution overtakes an older one (the default)",
    ),
    ("QUEUED", "executions wait their turn"),
    ("PARALLEL", "executions run side by side"),
];

#[derive(Template)]
#[template(path = "pipelines/wizard.html", blocks = ["content"])]
struct WizardPage {
    layout: Layout,
    step: u8,
    steps: Vec<(u8, &'static str)>,
    modes: Vec<(&'static str, &'static str)>,
    f: Fields,
    hidden: Vec<(&'static str, String)>,
    errors: HashMap<&'static str, String>,
    error: Option<String>,
    problems: Vec<(String, String)>,
    summary_source: String,
    summary_build: String,
    summary_deploy: String,
    json: String,
}
console_page!(WizardPage);

fn page(user: &SignedIn, step: u8, f: Fields, errors: HashMap<&'static str, String>) -> WizardPage {
    let shown = Fields::shown_on(step);
    let hidden = f
        .all()
        .into_iter()
        .filter(|(k, _)| !shown.contains(k))
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    let summary_source = match f.source_provider.as_str() {
        "Upload" => format!("Upload: {} / {}", f.upload_bucket, f.upload_key),
        _ => format!("Git: {} ({})", f.git_url, f.git_branch),
    };
    let summary_build = if f.build_provider == "skip" {
        "Skipped".to_string()
    } else if !f.build_spec.trim().is_empty() {
        "Command: inline buildspec".to_string()
    } else {
        format!(
            "Command: {}",
            Some(f.build_spec_path.trim())
                .filter(|p| !p.is_empty())
                .unwrap_or("buildspec.yml")
        )
    };
    let summary_deploy = match f.deploy_provider.as_str() {
        "skip" => "Skipped".to_string(),
        "Webhook" => format!("Webhook: {}", f.webhook_url),
        _ => format!("Directory: {}", f.target_directory),
    };
    let json = if step == 5 {
        serde_json::to_string_pretty(&json!({ "pipeline": declaration(&f) })).unwrap_or_default()
    } else {
        String::new()
    };
    WizardPage {
        layout: Layout::signed_in(user, Section::Pipelines),
        step,
        steps: STEPS.to_vec(),
        modes: MODES.to_vec(),
        hidden,
        errors,
        error: None,
        problems: Vec::new(),
        summary_source,
        summary_build,
        summary_deploy,
        json,
        f,
    }
}

async fn start(
    state: web::Data<AppState>,
    user: SignedIn,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    super::may_create_pipelines(&state, &user).await?;
    let fields = Fields {
        execution_mode: "SUPERSEDED".into(),
        source_provider: "Git".into(),
        git_branch: "main".into(),
        build_provider: "Command".into(),
        deploy_provider: "Directory".into(),
        ..Default::default()
    };
    render_with_status(hx, &page(&user, 1, fields, HashMap::new()), StatusCode::OK)
}

fn name_ok(s: &str) -> bool {
    (1..=100).contains(&s.chars().count())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_'))
}

/// The pipeline-level variables of the textarea: `NAME=default` lines.
fn variables(text: &str) -> Result<Vec<(String, String)>, String> {
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
            Ok((name.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// Checks the fields of one step.
fn check(step: u8, f: &Fields) -> HashMap<&'static str, String> {
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
        1 => {
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
        2 => {
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
        3 if f.build_spec.chars().count() > 1000 => {
            e.insert(
                "build_spec",
                "an inline buildspec must be at most 1000 characters".to_string(),
            );
        }
        3 if f.build_provider != "skip" && !f.build_spec.trim().is_empty() => {
            if let Err(message) = check_format(Format::BuildSpec, &f.build_spec) {
                e.insert("build_spec", format!("the buildspec {message}"));
            }
        }
        4 => match f.deploy_provider.as_str() {
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
        if !f.build_spec.trim().is_empty() {
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

async fn step(
    state: web::Data<AppState>,
    form: CsrfForm<StepForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, form } = form;
    super::may_create_pipelines(&state, &user).await?;
    let current: u8 = form.step.parse().unwrap_or(1).clamp(1, 5);
    let fields = form.fields;
    match form.go.as_str() {
        "back" => {
            let previous = current.saturating_sub(1).max(1);
            render_with_status(
                hx,
                &page(&user, previous, fields, HashMap::new()),
                StatusCode::OK,
            )
        }
        "create" => {
            // Every step again: hidden fields can be edited by hand.
            for s in 1..=4 {
                let errors = check(s, &fields);
                if !errors.is_empty() {
                    return render_with_status(
                        hx,
                        &page(&user, s, fields, errors),
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
                    render_with_status(hx, &page(&user, 1, fields, errors), StatusCode::BAD_REQUEST)
                }
                Err(e) => {
                    let refusal = super::Refusal::of(e)?;
                    let mut review = page(&user, 5, fields, HashMap::new());
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
            render_with_status(
                hx,
                &page(&user, (current + 1).min(5), fields, HashMap::new()),
                StatusCode::OK,
            )
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
            ..Default::default()
        }
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
        assert!(check(4, &f)["deploy_provider"].contains("skipping both"));
    }

    #[test]
    fn each_step_names_its_missing_fields() {
        let f = Fields::default();
        assert!(check(1, &f).contains_key("name"));
        let errors = check(2, &f);
        assert!(errors.contains_key("git_url") && errors.contains_key("git_branch"));
        let upload = Fields {
            source_provider: "Upload".into(),
            ..Default::default()
        };
        assert!(check(2, &upload).contains_key("upload_bucket"));
        let mut bad_vars = complete();
        bad_vars.variables = "no equals sign".into();
        assert!(check(1, &bad_vars)["variables"].contains("NAME=default"));
    }

    #[test]
    fn each_field_is_checked_by_its_property_format_next_to_it() {
        let mut f = complete();
        f.git_url = "demo.git".into();
        assert!(check(2, &f)["git_url"].contains("https://"));
        f.git_url = "git@git.example.com:team/demo.git".into();
        assert!(check(2, &f).is_empty());
        f.build_spec = "phases: {build: {commands: [make]}}".into();
        assert!(check(3, &f)["build_spec"].contains("version: 0.2"));
        f.deploy_provider = "Directory".into();
        f.target_directory = "srv/demo".into();
        assert!(check(4, &f)["target_directory"].contains("absolute"));
        f.deploy_provider = "Webhook".into();
        f.webhook_url = "deploy.example.com/hook".into();
        assert!(check(4, &f)["webhook_url"].contains("http"));
    }
}
