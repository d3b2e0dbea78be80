//! The pipeline editor (`/pipelines/{name}/edit`): add, rename, move and remove stages; add, edit
//! and remove actions through forms generated from the action type registry. The working
//! declaration travels in the page (a hidden field), so edits need no server-side draft; saving
//! validates it and stores a new version (compare-and-set on the version it was loaded at).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::{ConsoleError, Layout, Section, console_page, render_with_status, see_other, segment};
use crate::ops::pipelines::{self, SecretDrafts};
use crate::pipeline::action_types::{self, BUILT_IN};
use crate::pipeline::wire::{
    ActionDeclaration, ActionTypeId, InputArtifact, OutputArtifact, PipelineDeclaration,
    StageDeclaration,
};
use crate::web::AppState;
use crate::web::auth::{CsrfForm, SignedIn};
use crate::web::htmx::HxRequest;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/pipelines/{name}/edit")
            .route(web::get().to(show))
            .route(web::post().to(apply))
            .default_service(web::to(super::method_not_allowed)),
    );
}

struct PropertyView {
    name: &'static str,
    required: bool,
    secret: bool,
    /// Shown in a textarea (a multi-line property, or any value that holds a newline, which a
    /// one-line input would drop).
    multi_line: bool,
    description: &'static str,
    /// The value to show; always empty for a secret.
    value: String,
    /// For a secret: one is stored (`****`).
    stored: bool,
    /// For a secret: a new value was typed and will be saved with the pipeline.
    typed: bool,
}

struct ActionView {
    index: usize,
    name: String,
    type_id: String,
    /// The type's name in the console ("Command build"); empty for a type Sluice does not know.
    title: &'static str,
    run_order: i64,
    namespace: String,
    inputs: String,
    outputs: String,
    properties: Vec<PropertyView>,
}

struct StageView {
    index: usize,
    name: String,
    last: bool,
    actions: Vec<ActionView>,
    /// The action types this stage may hold, for its "Add action" picker.
    choices: Vec<TypeChoice>,
}

struct TypeChoice {
    id: String,
    title: &'static str,
    summary: &'static str,
}

#[derive(Template)]
#[template(path = "pipelines/editor.html", blocks = ["content"])]
struct EditorPage {
    layout: Layout,
    name: String,
    link: String,
    next_version: i64,
    working: String,
    stages: Vec<StageView>,
    /// Where "Add stage" can put a new stage: (insert before index, label).
    positions: Vec<(usize, String)>,
    /// The working copy differs from the version it was opened at (edits not saved yet).
    changed: bool,
    /// The save found a newer version: offer to re-apply the changes onto it.
    offer_rebase: bool,
    /// After a re-apply: where both sides changed the same value (this editor's kept).
    conflicts: Vec<String>,
    notice: Option<String>,
    error: Option<String>,
    problems: Vec<(String, String)>,
}
console_page!(EditorPage);

fn page(user: &SignedIn, decl: &PipelineDeclaration) -> EditorPage {
    view_of(decl, Layout::signed_in(user, Section::Pipelines))
}

fn view_of(decl: &PipelineDeclaration, layout: Layout) -> EditorPage {
    let count = decl.stages.len();
    let stages = decl
        .stages
        .iter()
        .enumerate()
        .map(|(si, stage)| StageView {
            index: si,
            name: stage.name.clone(),
            last: si + 1 == count,
            choices: BUILT_IN
                .iter()
                .filter(|t| t.fits_stage(si == 0))
                .map(|t| TypeChoice {
                    id: t.id(),
                    title: t.title,
                    summary: t.summary,
                })
                .collect(),
            actions: stage
                .actions
                .iter()
                .enumerate()
                .map(|(ai, a)| {
                    let id = &a.action_type_id;
                    let config = a.configuration.clone().unwrap_or_default();
                    let known =
                        action_types::find(&id.category, &id.owner, &id.provider, &id.version);
                    let properties = known
                        .map(|t| {
                            t.properties
                                .iter()
                                .map(|p| {
                                    let value = config.get(p.name).cloned().unwrap_or_default();
                                    PropertyView {
                                        name: p.name,
                                        required: p.required,
                                        secret: p.secret(),
                                        multi_line: !p.secret()
                                            && (p.multi_line() || value.contains(['\n', '\r'])),
                                        description: p.description,
                                        stored: p.secret() && value == pipelines::MASK,
                                        typed: p.secret() && SecretDrafts::is_draft(&value),
                                        value: if p.secret() { String::new() } else { value },
                                    }
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    ActionView {
                        index: ai,
                        name: a.name.clone(),
                        type_id: format!(
                            "{}/{}/{}/{}",
                            id.category, id.owner, id.provider, id.version
                        ),
                        title: known.map_or("", |t| t.title),
                        run_order: a.run_order.unwrap_or(1),
                        namespace: a.namespace.clone().unwrap_or_default(),
                        inputs: a
                            .input_artifacts
                            .iter()
                            .flatten()
                            .map(|i| i.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        outputs: a
                            .output_artifacts
                            .iter()
                            .flatten()
                            .map(|o| o.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        properties,
                    }
                })
                .collect(),
        })
        .collect();
    EditorPage {
        layout,
        link: segment(&decl.name),
        name: decl.name.clone(),
        next_version: decl.version.unwrap_or(1) + 1,
        working: serde_json::to_string(decl).unwrap_or_default(),
        positions: std::iter::once((0, "At the start".to_string()))
            .chain(
                decl.stages
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (i + 1, format!("After {}", s.name))),
            )
            .collect(),
        stages,
        changed: false,
        offer_rebase: false,
        conflicts: Vec::new(),
        notice: None,
        error: None,
        problems: Vec::new(),
    }
}

async fn show(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    super::may_update_pipeline(&state, &user, &path).await?;
    let (decl, _) = pipelines::get_pipeline(&state.services, &user.caller, &path, None).await?;
    render_with_status(hx, &page(&user, &decl), StatusCode::OK)
}

fn field<'a>(form: &'a HashMap<String, String>, key: &str) -> &'a str {
    form.get(key).map_or("", String::as_str)
}

fn index(form: &HashMap<String, String>, key: &str, len: usize) -> Result<usize, String> {
    field(form, key)
        .parse::<usize>()
        .ok()
        .filter(|i| *i < len)
        .ok_or_else(|| "the page is out of date; reload it".to_string())
}

fn names(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// What a submitted field means for the value it was shown with. Browsers send a textarea's line
/// breaks as CRLF whatever they were; a value that differs from the stored one only in that is
/// the stored one, byte for byte. A changed value gets the line breaks the stored one used.
fn untouched_or(stored: Option<&str>, sent: &str) -> String {
    let lf = sent.replace("\r\n", "\n");
    match stored {
        Some(stored) if stored.replace("\r\n", "\n") == lf => stored.to_string(),
        Some(stored) if stored.contains("\r\n") => lf.replace('\n', "\r\n"),
        _ => lf,
    }
}

/// Applies one editing operation to the working declaration; returns what to tell the user.
fn edit(
    decl: &mut PipelineDeclaration,
    op: &str,
    form: &HashMap<String, String>,
    drafts: &SecretDrafts,
) -> Result<String, String> {
    let stages = decl.stages.len();
    match op {
        "add_stage" => {
            let name = field(form, "new_name").trim().to_string();
            if name.is_empty() {
                return Err("name the new stage".into());
            }
            // Before the stage at `position`; absent means at the end.
            let at = match form.get("position") {
                None => stages,
                Some(_) => index(form, "position", stages + 1)?,
            };
            decl.stages.insert(
                at,
                StageDeclaration {
                    name: name.clone(),
                    actions: Vec::new(),
                    blockers: None,
                    on_failure: None,
                    on_success: None,
                    before_entry: None,
                },
            );
            Ok(format!("Stage {name} added; give it an action."))
        }
        "rename_stage" => {
            let i = index(form, "stage", stages)?;
            let name = field(form, "new_name").trim().to_string();
            if name.is_empty() {
                return Err("a stage needs a name".into());
            }
            decl.stages[i].name = name.clone();
            Ok(format!("Stage renamed to {name}."))
        }
        "move_up" | "move_down" => {
            let i = index(form, "stage", stages)?;
            let j = if op == "move_up" {
                i.checked_sub(1)
            } else {
                Some(i + 1).filter(|j| *j < stages)
            };
            let j = j.ok_or_else(|| "the stage cannot move further".to_string())?;
            decl.stages.swap(i, j);
            Ok("Stage moved.".into())
        }
        "remove_stage" => {
            let i = index(form, "stage", stages)?;
            let removed = decl.stages.remove(i);
            Ok(format!("Stage {} removed.", removed.name))
        }
        "add_action" => {
            let i = index(form, "stage", stages)?;
            let name = field(form, "action_name").trim().to_string();
            if name.is_empty() {
                return Err("name the new action".into());
            }
            let t = BUILT_IN
                .iter()
                .find(|t| t.id() == field(form, "type_id"))
                .ok_or_else(|| "choose an action type".to_string())?;
            if !t.fits_stage(i == 0) {
                return Err(if i == 0 {
                    format!(
                        "the first stage holds only source actions, not a {}",
                        t.title
                    )
                } else {
                    format!("a {} goes in the first stage only", t.title)
                });
            }
            decl.stages[i].actions.push(ActionDeclaration {
                name: name.clone(),
                action_type_id: ActionTypeId {
                    category: t.category.into(),
                    owner: t.owner.into(),
                    provider: t.provider.into(),
                    version: t.version.into(),
                },
                run_order: Some(1),
                configuration: Some(Default::default()),
                input_artifacts: Some(Vec::new()),
                output_artifacts: Some(Vec::new()),
                namespace: None,
                region: None,
                role_arn: None,
                timeout_in_minutes: None,
                commands: None,
                output_variables: None,
                environment_variables: None,
            });
            Ok(format!(
                "Action {name} added; open it to set its configuration and artifacts."
            ))
        }
        "edit_action" | "remove_action" => {
            let si = index(form, "stage", stages)?;
            let ai = index(form, "action", decl.stages[si].actions.len())?;
            if op == "remove_action" {
                let removed = decl.stages[si].actions.remove(ai);
                return Ok(format!("Action {} removed.", removed.name));
            }
            let action = &mut decl.stages[si].actions[ai];
            action.name = field(form, "action_name").trim().to_string();
            action.run_order = Some(
                field(form, "run_order")
                    .trim()
                    .parse()
                    .map_err(|_| "the run order must be a number from 1 to 999".to_string())?,
            );
            let ns = field(form, "namespace").trim();
            action.namespace = (!ns.is_empty()).then(|| ns.to_string());
            action.input_artifacts = Some(
                names(field(form, "inputs"))
                    .into_iter()
                    .map(|name| InputArtifact { name })
                    .collect(),
            );
            action.output_artifacts = Some(
                names(field(form, "outputs"))
                    .into_iter()
                    .map(|name| OutputArtifact { name, files: None })
                    .collect(),
            );
            let id = &action.action_type_id;
            if let Some(t) = action_types::find(&id.category, &id.owner, &id.provider, &id.version)
            {
                let config = action.configuration.get_or_insert_with(Default::default);
                for p in t.properties {
                    let sent = field(form, &format!("config.{}", p.name));
                    if p.secret() {
                        // Empty keeps what is stored (or typed before); only the box removes it.
                        if form.contains_key(&format!("remove.{}", p.name)) {
                            config.remove(p.name);
                        } else if !sent.is_empty() {
                            config.insert(p.name.to_string(), drafts.seal(sent));
                        }
                        continue;
                    }
                    if sent.is_empty() {
                        config.remove(p.name);
                        continue;
                    }
                    let value = untouched_or(config.get(p.name).map(String::as_str), sent);
                    config.insert(p.name.to_string(), value);
                }
            }
            Ok(format!("Action {} updated.", action.name))
        }
        other => Err(format!("unknown editing operation {other:?}")),
    }
}

async fn apply(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: CsrfForm<HashMap<String, String>>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let CsrfForm { user, form } = form;
    // Refused (and audited) before the page's content is even read.
    super::may_update_pipeline(&state, &user, &path).await?;
    let mut decl: PipelineDeclaration = serde_json::from_str(field(&form, "working"))
        .map_err(|_| ConsoleError::BadRequest("the editor's page is damaged; reload it".into()))?;
    if decl.name != *path {
        return Err(ConsoleError::BadRequest(
            "the editor's page belongs to another pipeline; reload it".into(),
        ));
    }
    let op = field(&form, "op").to_string();
    let changed = form.contains_key("changed");
    let drafts = SecretDrafts::of(&state.services, &user.caller, &path);
    if op == "rebase" {
        return rebase(&state, &user, decl, hx).await;
    }
    if op != "save" {
        let outcome = edit(&mut decl, &op, &form, &drafts);
        let mut view = page(&user, &decl);
        view.changed = changed;
        let status = match outcome {
            Ok(message) => {
                view.notice = Some(message);
                view.changed = true;
                StatusCode::OK
            }
            Err(message) => {
                view.error = Some(message);
                StatusCode::BAD_REQUEST
            }
        };
        return render_with_status(hx, &view, status);
    }
    let working = decl.clone();
    if let Err(message) = drafts.open_all(&mut decl) {
        let mut view = page(&user, &working);
        view.changed = changed;
        view.error = Some(message);
        return render_with_status(hx, &view, StatusCode::BAD_REQUEST);
    }
    match pipelines::update_pipeline(&state.services, &user.caller, decl).await {
        Ok(pipelines::Saved::NewVersion(saved)) => Ok(see_other(&format!(
            "/pipelines/{}?done=saved",
            segment(&saved.name)
        ))),
        Ok(pipelines::Saved::Unchanged(current)) => {
            let mut view = page(&user, &current);
            view.notice = Some(format!(
                "No changes to save: version {} stays the latest.",
                current.version.unwrap_or(1)
            ));
            render_with_status(hx, &view, StatusCode::OK)
        }
        Err(crate::error::AppError::Conflict(message)) => {
            let mut view = page(&user, &working);
            view.changed = changed;
            view.offer_rebase = true;
            view.error = Some(message);
            render_with_status(hx, &view, StatusCode::CONFLICT)
        }
        Err(e) => {
            let refusal = super::Refusal::of(e)?;
            let mut view = page(&user, &working);
            view.changed = changed;
            view.problems = refusal.problems;
            view.error = refusal.message;
            render_with_status(hx, &view, refusal.status)
        }
    }
}

/// "Reload and re-apply my changes": the working copy's edits since the version it was opened
/// at, merged onto the latest version (`pipeline::rebase`), shown for review; nothing is saved.
async fn rebase(
    state: &AppState,
    user: &SignedIn,
    mine: PipelineDeclaration,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let opened_at = mine.version.unwrap_or(1);
    let (base, _) =
        pipelines::get_pipeline(&state.services, &user.caller, &mine.name, Some(opened_at)).await?;
    let (theirs, _) =
        pipelines::get_pipeline(&state.services, &user.caller, &mine.name, None).await?;
    let as_json = |d: &PipelineDeclaration| serde_json::to_value(d).unwrap_or_default();
    let rebased =
        crate::pipeline::rebase::rebase(&as_json(&base), &as_json(&mine), &as_json(&theirs));
    let mut merged: PipelineDeclaration = serde_json::from_value(rebased.merged).map_err(|e| {
        ConsoleError::Internal(anyhow::Error::new(e).context("merging two declarations"))
    })?;
    merged.version = theirs.version;
    let mut view = page(user, &merged);
    view.changed = true;
    view.notice = Some(format!(
        "Your changes were re-applied to version {}, the latest. Check them, then save.",
        theirs.version.unwrap_or(1)
    ));
    view.conflicts = rebased.conflicts;
    render_with_status(hx, &view, StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl() -> PipelineDeclaration {
        serde_json::from_value(serde_json::json!({
            "name": "p", "version": 3,
            "stages": [
                {"name": "Source", "actions": [{"name": "Src", "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
                    "configuration": {"RepositoryUrl": "https://git.example.com/p.git", "Branch": "main"}, "outputArtifacts": [{"name": "S"}]}]},
                {"name": "Build", "actions": [{"name": "B", "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
                    "inputArtifacts": [{"name": "S"}]}]}
            ]
        }))
        .unwrap()
    }

    fn drafts() -> SecretDrafts {
        SecretDrafts::new(
            crate::sealing::MasterKey::from_bytes([5u8; 32]),
            "alice",
            "p",
        )
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stages_are_added_renamed_moved_and_removed() {
        let mut d = decl();
        edit(
            &mut d,
            "add_stage",
            &form(&[("new_name", "Deploy")]),
            &drafts(),
        )
        .unwrap();
        edit(
            &mut d,
            "rename_stage",
            &form(&[("stage", "2"), ("new_name", "Staging")]),
            &drafts(),
        )
        .unwrap();
        edit(&mut d, "move_up", &form(&[("stage", "2")]), &drafts()).unwrap();
        let names: Vec<&str> = d.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["Source", "Staging", "Build"]);
        assert!(edit(&mut d, "move_up", &form(&[("stage", "0")]), &drafts()).is_err());
        edit(&mut d, "remove_stage", &form(&[("stage", "1")]), &drafts()).unwrap();
        assert_eq!(d.stages.len(), 2);
        assert!(edit(&mut d, "remove_stage", &form(&[("stage", "9")]), &drafts()).is_err());
    }

    #[test]
    fn a_stage_goes_at_the_position_asked_and_actions_only_where_they_fit() {
        let mut d = decl();
        for (name, at) in [("First", "0"), ("Middle", "2"), ("Last", "4")] {
            edit(
                &mut d,
                "add_stage",
                &form(&[("new_name", name), ("position", at)]),
                &drafts(),
            )
            .unwrap();
        }
        let names: Vec<&str> = d.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["First", "Source", "Middle", "Build", "Last"]);
        let past_the_end = form(&[("new_name", "X"), ("position", "6")]);
        assert!(edit(&mut d, "add_stage", &past_the_end, &drafts()).is_err());
        let source_later = form(&[
            ("stage", "1"),
            ("type_id", "Source/Sluice/Git/1"),
            ("action_name", "A"),
        ]);
        assert!(
            edit(&mut d, "add_action", &source_later, &drafts())
                .unwrap_err()
                .contains("first stage only")
        );
        let build_first = form(&[
            ("stage", "0"),
            ("type_id", "Build/Sluice/Command/1"),
            ("action_name", "A"),
        ]);
        assert!(
            edit(&mut d, "add_action", &build_first, &drafts())
                .unwrap_err()
                .contains("only source actions")
        );
    }

    #[test]
    fn actions_are_added_and_edited_through_the_registry() {
        let mut d = decl();
        edit(
            &mut d,
            "add_action",
            &form(&[
                ("stage", "1"),
                ("type_id", "Deploy/Sluice/Directory/1"),
                ("action_name", "Install"),
            ]),
            &drafts(),
        )
        .unwrap();
        edit(
            &mut d,
            "edit_action",
            &form(&[
                ("stage", "1"),
                ("action", "1"),
                ("action_name", "Install"),
                ("run_order", "2"),
                ("namespace", ""),
                ("inputs", "S"),
                ("outputs", ""),
                ("config.TargetDirectory", "/srv/p"),
                ("config.KeepReleases", ""),
            ]),
            &drafts(),
        )
        .unwrap();
        let pipeline = crate::pipeline::validate(d.clone()).unwrap();
        let install = &pipeline.declaration().stages[1].actions[1];
        assert_eq!(install.run_order, Some(2));
        assert_eq!(
            install
                .configuration
                .as_ref()
                .unwrap()
                .get("TargetDirectory")
                .map(String::as_str),
            Some("/srv/p")
        );
        assert!(
            install
                .configuration
                .as_ref()
                .unwrap()
                .get("KeepReleases")
                .is_none()
        );
        edit(
            &mut d,
            "remove_action",
            &form(&[("stage", "1"), ("action", "1")]),
            &drafts(),
        )
        .unwrap();
        assert_eq!(d.stages[1].actions.len(), 1);
        assert!(
            edit(
                &mut d,
                "add_action",
                &form(&[
                    ("stage", "1"),
                    ("type_id", "Nope/X/Y/1"),
                    ("action_name", "Z")
                ]),
                &drafts()
            )
            .is_err()
        );
    }

    const BUILDSPEC: &str =
        "version: 0.2\nphases:\n  build:\n    commands:\n      - make   \n      - make test\n";

    fn with_build_spec() -> PipelineDeclaration {
        let mut d = decl();
        let config = d.stages[1].actions[0]
            .configuration
            .get_or_insert_with(Default::default);
        config.insert("BuildSpec".into(), BUILDSPEC.into());
        config.insert(
            "EnvironmentVariables".into(),
            "[\n  {\"name\": \"A\", \"value\": \"1\"}\n]".into(),
        );
        d
    }

    /// What a browser sends back for the Build action's form, as the page showed it, with one field
    /// changed: textareas come back with CRLF line breaks.
    fn build_form(run_order: &str, d: &PipelineDeclaration) -> HashMap<String, String> {
        let config = d.stages[1].actions[0]
            .configuration
            .clone()
            .unwrap_or_default();
        let crlf = |k: &str| {
            config
                .get(k)
                .cloned()
                .unwrap_or_default()
                .replace('\n', "\r\n")
        };
        form(&[
            ("stage", "1"),
            ("action", "0"),
            ("action_name", "B"),
            ("run_order", run_order),
            ("namespace", ""),
            ("inputs", "S"),
            ("outputs", ""),
            ("config.BuildSpec", &crlf("BuildSpec")),
            ("config.EnvironmentVariables", &crlf("EnvironmentVariables")),
        ])
    }

    #[test]
    fn editing_one_field_keeps_every_other_value_byte_identical() {
        let before = with_build_spec();
        let mut after = before.clone();
        edit(
            &mut after,
            "edit_action",
            &build_form("2", &before),
            &drafts(),
        )
        .unwrap();
        let (b, a) = (&before.stages[1].actions[0], &after.stages[1].actions[0]);
        assert_eq!(a.run_order, Some(2));
        assert_eq!(
            a.configuration, b.configuration,
            "untouched values are byte-identical"
        );
        assert_eq!(a.configuration.as_ref().unwrap()["BuildSpec"], BUILDSPEC);
        assert_eq!(after.stages[0], before.stages[0]);
    }

    #[test]
    fn a_changed_multi_line_value_keeps_its_line_breaks() {
        let before = with_build_spec();
        let mut after = before.clone();
        let mut f = build_form("1", &before);
        f.insert(
            "config.BuildSpec".into(),
            "version: 0.2\r\nphases:\r\n  build:\r\n    commands: [make]\r\n".into(),
        );
        edit(&mut after, "edit_action", &f, &drafts()).unwrap();
        assert_eq!(
            after.stages[1].actions[0].configuration.as_ref().unwrap()["BuildSpec"],
            "version: 0.2\nphases:\n  build:\n    commands: [make]\n"
        );
        assert_eq!(
            untouched_or(Some("a\r\nb"), "a\r\nc"),
            "a\r\nc",
            "CRLF values stay CRLF"
        );
        assert_eq!(untouched_or(None, "x\r\ny"), "x\ny");
    }

    #[test]
    fn a_typed_secret_travels_sealed_and_an_empty_field_keeps_it() {
        let mut d = decl();
        edit(
            &mut d,
            "add_action",
            &form(&[
                ("stage", "1"),
                ("type_id", "Invoke/Sluice/Webhook/1"),
                ("action_name", "Hook"),
            ]),
            &drafts(),
        )
        .unwrap();
        let hook = |secret: &str, remove: bool| {
            let mut f = form(&[
                ("stage", "1"),
                ("action", "1"),
                ("action_name", "Hook"),
                ("run_order", "1"),
                ("config.Url", "https://hooks.example.com/x"),
                ("config.Secret", secret),
            ]);
            if remove {
                f.insert("remove.Secret".into(), "1".into());
            }
            f
        };
        edit(&mut d, "edit_action", &hook("hunter2", false), &drafts()).unwrap();
        let stored = |d: &PipelineDeclaration| {
            d.stages[1].actions[1]
                .configuration
                .as_ref()
                .unwrap()
                .get("Secret")
                .cloned()
        };
        let typed = stored(&d).unwrap();
        assert!(SecretDrafts::is_draft(&typed) && !typed.contains("hunter2"));
        let html = page_html(&d);
        assert!(
            !html.contains("hunter2"),
            "the page never holds the typed secret"
        );
        assert!(html.contains(r#"autocomplete="new-password""#));

        edit(&mut d, "edit_action", &hook("", false), &drafts()).unwrap();
        assert_eq!(
            stored(&d),
            Some(typed),
            "an empty secret field keeps the value"
        );

        let mut opened = d.clone();
        drafts().open_all(&mut opened).unwrap();
        assert_eq!(
            opened.stages[1].actions[1].configuration.as_ref().unwrap()["Secret"],
            "hunter2"
        );
        let other = SecretDrafts::new(
            crate::sealing::MasterKey::from_bytes([5u8; 32]),
            "mallory",
            "p",
        );
        assert!(
            other.open_all(&mut d.clone()).is_err(),
            "a draft opens only for its user"
        );

        edit(&mut d, "edit_action", &hook("", true), &drafts()).unwrap();
        assert_eq!(stored(&d), None, "the box removes it");
    }

    fn page_html(d: &PipelineDeclaration) -> String {
        view_of(d, Layout::public()).render().unwrap()
    }
}
