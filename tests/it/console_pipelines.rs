//! Pipelines in the console, through plain form posts (the browser tests drive the same pages
//! with htmx).

use crate::harness::{TestApp, admin_api, api_ok as ok, spawn_app};

async fn admin_app() -> TestApp {
    let app = spawn_app().await;
    app.setup_admin().await;
    app
}

async fn body(res: reqwest::Response) -> String {
    res.text().await.unwrap()
}

/// Posts one wizard step's form with all fields so far.
async fn wizard(app: &TestApp, step: &str, go: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let mut all = vec![("go", go)];
    all.extend_from_slice(fields);
    app.post_form(&app.client, &format!("/pipelines/new/{step}"), &all)
        .await
}

fn location(res: &reqwest::Response) -> String {
    assert_eq!(res.status(), 303, "a redirect");
    res.headers()["location"].to_str().unwrap().to_string()
}

const GIT: &[(&str, &str)] = &[
    ("name", "demo"),
    ("execution_mode", "SUPERSEDED"),
    ("variables", "Env=prod\r\nRegion="),
    ("source_provider", "Git"),
    ("git_url", "https://git.example.com/demo.git"),
    ("git_branch", "main"),
    ("build_provider", "Command"),
    ("build_spec_from", "path"),
    ("build_spec_path", "ci/buildspec.yml"),
    ("deploy_provider", "skip"),
];

#[tokio::test]
async fn the_wizard_walks_settings_source_build_deploy_review_and_creates() {
    let app = admin_app().await;
    assert_eq!(
        location(&app.get("/pipelines/new").await),
        "/pipelines/new/settings"
    );
    let html = body(app.get("/pipelines/new/settings").await).await;
    assert!(html.contains("Pipeline settings") && html.contains(r#"aria-current="step""#));
    // A new wizard offers a starter buildspec to edit.
    let html = body(app.get("/pipelines/new/build").await).await;
    assert!(
        html.contains("version: 0.2") && html.contains("Command build"),
        "{html}"
    );
    assert_eq!(app.get("/pipelines/new/launch").await.status(), 404);

    // Step 1 refuses a bad name, keeping what was typed.
    let res = wizard(
        &app,
        "settings",
        "next",
        &[("name", "bad name"), ("execution_mode", "SUPERSEDED")],
    )
    .await;
    assert_eq!(res.status(), 400);
    let html = body(res).await;
    assert!(
        html.contains(r#"id="name-error""#) && html.contains(r#"value="bad name""#),
        "{html}"
    );

    // Each step moves on to the next step's own URL, which carries the fields: reloading it
    // (or coming back to it) shows the same page.
    for (step, next, heading) in [
        ("settings", "source", "Source stage"),
        ("source", "build", "Build stage"),
        ("build", "deploy", "Deploy stage"),
        ("deploy", "review", "Review"),
    ] {
        let to = location(&wizard(&app, step, "next", GIT).await);
        assert!(to.starts_with(&format!("/pipelines/new/{next}?")), "{to}");
        let html = body(app.get(&to).await).await;
        assert!(html.contains(heading), "after {step}: {html}");
        assert!(html.contains(r#"value="https://git.example.com/demo.git""#));
        assert_eq!(
            body(app.get(&to).await).await,
            html,
            "a reload shows the same"
        );
    }
    // Back keeps everything too, even what this step had not checked yet.
    let mut half_typed = GIT.to_vec();
    half_typed.push(("target_directory", "not yet absolute"));
    let to = location(&wizard(&app, "deploy", "back", &half_typed).await);
    assert!(to.starts_with("/pipelines/new/build?"));
    let html = body(app.get(&to).await).await;
    assert!(html.contains("Build stage") && html.contains(r#"value="ci/buildspec.yml""#));
    assert!(html.contains(r#"value="not yet absolute""#));

    // The review lists the stages it will create, with their names, and the variables.
    let to = location(&wizard(&app, "deploy", "next", GIT).await);
    let html = body(app.get(&to).await).await;
    assert!(
        html.contains("<strong>Source</strong>") && html.contains("<strong>Build</strong>"),
        "{html}"
    );
    assert!(!html.contains("<strong>Staging</strong>"));
    assert!(html.contains("Command build: ci/buildspec.yml from the source"));
    assert!(html.contains("<code>Env</code>") && html.contains("<code>prod</code>"));
    assert!(html.contains("none: given at start"));
    let res = wizard(&app, "review", "create", GIT).await;
    assert_eq!(location(&res), "/pipelines/demo?done=created");

    let view = body(app.get("/pipelines/demo?done=created").await).await;
    assert!(view.contains("The pipeline was created."));
    assert!(
        view.contains(r#"<h2 id="stage-title-1">Source</h2>"#)
            && view.contains(r#"<h2 id="stage-title-2">Build</h2>"#),
        "{view}"
    );
    assert!(view.contains("Didn&#39;t run") || view.contains("Didn't run"));
    assert!(view.contains(r#"data-artifact="SourceArtifact""#));
    let stored = ok(
        &app,
        &app.console_token_as(&app.client, crate::harness::ADMIN_PASSWORD, &[])
            .await,
        "GetPipeline",
        serde_json::json!({"name": "demo"}),
    )
    .await;
    assert_eq!(
        stored["pipeline"]["stages"][1]["actions"][0]["configuration"],
        serde_json::json!({"BuildSpecPath": "ci/buildspec.yml"})
    );
    assert_eq!(
        stored["pipeline"]["variables"],
        serde_json::json!([{"name": "Env", "defaultValue": "prod"}, {"name": "Region"}])
    );

    // The same name again: the wizard says so on the first step.
    let res = wizard(&app, "review", "create", GIT).await;
    assert_eq!(res.status(), 400);
    assert!(body(res).await.contains("already exists"));
}

#[tokio::test]
async fn the_wizards_inline_buildspec_comes_back_byte_for_byte() {
    let app = admin_app().await;
    let spec = "version: 0.2\r\n# ünïcödé & <b>\r\nphases:\r\n  build:\r\n    commands:\r\n      - echo \"a+b=c%20\"\r\n";
    let mut fields: Vec<(&str, &str)> = GIT
        .iter()
        .copied()
        .filter(|(k, _)| *k != "build_spec_from")
        .collect();
    fields.push(("build_spec_from", "inline"));
    fields.push(("build_spec", spec));
    let to = location(&wizard(&app, "build", "next", &fields).await);
    let back = location(&wizard(&app, "deploy", "back", &fields).await);
    for url in [to, back] {
        let html = body(app.get(&url).await).await;
        assert!(
            html.contains("# ünïcödé &amp; &lt;b&gt;")
                || html.contains("# ünïcödé &#38; &#60;b&#62;"),
            "{html}"
        );
    }
    assert_eq!(
        location(&wizard(&app, "review", "create", &fields).await),
        "/pipelines/demo?done=created"
    );
    let stored = ok(
        &app,
        &app.console_token_as(&app.client, crate::harness::ADMIN_PASSWORD, &[])
            .await,
        "GetPipeline",
        serde_json::json!({"name": "demo"}),
    )
    .await;
    assert_eq!(
        stored["pipeline"]["stages"][1]["actions"][0]["configuration"]["BuildSpec"],
        spec
    );
    // Junk in the address is shown back as text, never taken as a step or an error.
    let res = app
        .get("/pipelines/new/settings?name=%ZZ%FF&step=9&<x>=1")
        .await;
    assert_eq!(res.status(), 200);
    let html = body(res).await;
    assert!(
        html.contains("value=\"%ZZ\u{FFFD}\"") && !html.contains("<x>"),
        "{html}"
    );
}

#[tokio::test]
async fn skipping_both_build_and_deploy_is_refused() {
    let app = admin_app().await;
    let mut fields = GIT.to_vec();
    fields.retain(|(k, _)| *k != "build_provider");
    fields.push(("build_provider", "skip"));
    let res = wizard(&app, "deploy", "next", &fields).await;
    assert_eq!(res.status(), 400);
    let html = body(res).await;
    assert!(
        html.contains("skipping both leaves nothing to run"),
        "{html}"
    );
    // Even a hand-made "create" post is checked step by step.
    let res = wizard(&app, "review", "create", &fields).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        body(app.get("/").await)
            .await
            .matches("/pipelines/demo\"")
            .count(),
        0
    );
}

fn declaration(name: &str) -> String {
    serde_json::json!({"pipeline": {
        "name": name,
        "stages": [
            {"name": "Source", "actions": [{"name": "Checkout",
                "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
                "configuration": {"RepositoryUrl": "https://git.example.com/x.git", "Branch": "main"},
                "outputArtifacts": [{"name": "Src"}]}]},
            {"name": "Build", "actions": [
                {"name": "Compile", "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
                 "inputArtifacts": [{"name": "Src"}], "outputArtifacts": [{"name": "Bin"}]},
                {"name": "Lint", "actionTypeId": {"category": "Test", "owner": "Sluice", "provider": "Command", "version": "1"},
                 "inputArtifacts": [{"name": "Src"}]},
                {"name": "Package", "runOrder": 2, "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
                 "inputArtifacts": [{"name": "Bin"}]}
            ]},
            {"name": "Approve", "actions": [{"name": "Gate", "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"}}]}
        ]
    }})
    .to_string()
}

#[tokio::test]
async fn import_view_edit_versions_diff_export_and_delete() {
    let app = admin_app().await;
    let res = app
        .post_form(
            &app.client,
            "/pipelines/import",
            &[("document", &declaration("imported"))],
        )
        .await;
    assert_eq!(res.status(), 303, "{}", body(res).await);

    // The view groups actions by runOrder: two side by side, then one.
    let view = body(app.get("/pipelines/imported").await).await;
    assert!(
        view.contains("Run order 1") && view.contains("Run order 2"),
        "{view}"
    );
    assert_eq!(
        view.matches(r#"class="transition""#).count(),
        2,
        "arrows between three stages"
    );

    // The list shows it with its latest execution (its first, waiting for a worker); search
    // narrows.
    let list = body(app.get("/").await).await;
    assert!(
        list.contains(r#"<a href="/pipelines/imported">imported</a>"#)
            && list.contains("In progress"),
        "{list}"
    );
    let none = body(app.get("/?q=zzz").await).await;
    assert!(none.contains("No pipeline matches."));

    // The JSON editor lists every problem with its path and keeps the text.
    let edit = body(app.get("/pipelines/imported/edit/json").await).await;
    assert!(
        edit.contains("&#34;version&#34;: 1") || edit.contains("&quot;version&quot;: 1"),
        "{edit}"
    );
    let broken = declaration("imported").replace(r#""name":"Bin""#, r#""name":"Src""#);
    let mut broken_value: serde_json::Value = serde_json::from_str(&broken).unwrap();
    broken_value["pipeline"]["version"] = serde_json::json!(1);
    let res = app
        .post_form(
            &app.client,
            "/pipelines/imported/edit/json",
            &[("document", &broken_value.to_string())],
        )
        .await;
    assert_eq!(res.status(), 400);
    let html = body(res).await;
    assert!(
        html.contains("stages[1].actions[0].outputArtifacts[0].name"),
        "{html}"
    );

    let mut good: serde_json::Value = serde_json::from_str(&declaration("imported")).unwrap();
    good["pipeline"]["version"] = serde_json::json!(1);
    good["pipeline"]["stages"][2]["actions"][0]["configuration"] =
        serde_json::json!({"CustomData": "Ship it?"});
    let res = app
        .post_form(
            &app.client,
            "/pipelines/imported/edit/json",
            &[("document", &good.to_string())],
        )
        .await;
    assert_eq!(res.status(), 303);
    // Saving version 1 again: someone else (we) saved first; the edit is kept.
    let res = app
        .post_form(
            &app.client,
            "/pipelines/imported/edit/json",
            &[("document", &good.to_string())],
        )
        .await;
    assert_eq!(res.status(), 409);
    let html = body(res).await;
    assert!(
        html.contains("Someone else saved version 2") && html.contains("Ship it?"),
        "{html}"
    );

    let versions = body(app.get("/pipelines/imported/versions").await).await;
    assert!(versions.contains(">admin<") && versions.contains("current"));
    let diff = body(app.get("/pipelines/imported/diff?from=1&to=2").await).await;
    assert!(
        diff.contains("Ship it?") && diff.contains("diff-"),
        "{diff}"
    );

    let export = app.get("/pipelines/imported/export").await;
    assert_eq!(
        export.headers()["content-disposition"],
        "attachment; filename=\"imported.json\""
    );
    let exported: serde_json::Value = export.json().await.unwrap();
    assert_eq!(exported["pipeline"]["version"], 2);

    // Clone opens the import form prefilled with a new name.
    let clone = body(app.get("/pipelines/imported/clone").await).await;
    assert!(clone.contains("imported-copy"));

    let res = app
        .post_form(&app.client, "/pipelines/imported/delete", &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        app.get("/pipelines/imported").await.status(),
        404,
        "a missing pipeline is a missing page"
    );
    assert_eq!(app.get("/pipelines/imported/versions").await.status(), 404);
}

#[tokio::test]
async fn a_read_only_user_sees_pipelines_but_no_buttons_to_change_them() {
    let app = admin_app().await;
    app.post_form(
        &app.client,
        "/pipelines/import",
        &[("document", &declaration("shared"))],
    )
    .await;
    let res = app
        .post_form(
            &app.client,
            "/admin/users",
            &[
                ("user_name", "viewer"),
                ("password", "a long and unusual passphrase 42"),
                ("policy", "AWSCodePipeline_ReadOnlyAccess"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let viewer = app
        .sign_in("viewer", "a long and unusual passphrase 42")
        .await;
    let list = body(viewer.get(app.url("/")).send().await.unwrap()).await;
    assert!(list.contains("shared") && !list.contains("Create pipeline"));
    let view = body(
        viewer
            .get(app.url("/pipelines/shared"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(!view.contains(">Edit<") && !view.contains(">Delete<") && view.contains("Export JSON"));
    assert_eq!(
        viewer
            .get(app.url("/pipelines/shared/edit"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        viewer
            .get(app.url("/pipelines/new/settings"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    // Someone without ListPipelines gets an explanation instead of a 403 on the home page.
    app.post_form(
        &app.client,
        "/admin/users",
        &[
            ("user_name", "nobody"),
            ("password", "a long and unusual passphrase 42"),
        ],
    )
    .await;
    let nobody = app
        .sign_in("nobody", "a long and unusual passphrase 42")
        .await;
    let res = nobody.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(body(res).await.contains("You may not list pipelines"));
}

#[tokio::test]
async fn the_form_editor_adds_a_stage_with_an_action_and_saves_a_new_version() {
    let app = admin_app().await;
    app.post_form(
        &app.client,
        "/pipelines/import",
        &[("document", &declaration("edited"))],
    )
    .await;
    let html = body(app.get("/pipelines/edited/edit").await).await;
    assert!(html.contains("Save as version 2"));
    let step = |html: String, fields: Vec<(&'static str, String)>| {
        editor_post(&app, "edited", fields, html)
    };
    let (status, html) = step(
        html,
        vec![("op", "add_stage".into()), ("new_name", "Staging".into())],
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("Stage Staging added"));
    let (_, html) = step(
        html,
        vec![
            ("op", "add_action".into()),
            ("stage", "3".into()),
            ("type_id", "Deploy/Sluice/Directory/1".into()),
            ("action_name", "Install".into()),
        ],
    )
    .await;
    assert!(html.contains("Action Install added"), "{html}");
    // Saving now reports what is missing, with paths, and keeps the working copy.
    let (status, html) = step(html, vec![("op", "save".into())]).await;
    assert_eq!(status, 400);
    assert!(
        html.contains("stages[3].actions[0].inputArtifacts") && html.contains("TargetDirectory"),
        "{html}"
    );
    let (_, html) = step(
        html,
        vec![
            ("op", "edit_action".into()),
            ("stage", "3".into()),
            ("action", "0".into()),
            ("action_name", "Install".into()),
            ("run_order", "1".into()),
            ("namespace", "".into()),
            ("inputs", "Bin".into()),
            ("outputs", "".into()),
            ("config.TargetDirectory", "/srv/edited".into()),
            ("config.KeepReleases", "3".into()),
        ],
    )
    .await;
    let (status, html) = step(html, vec![("op", "save".into())]).await;
    assert_eq!(status, 303, "{html}");
    let view = body(app.get("/pipelines/edited").await).await;
    assert!(
        view.contains("Version 2") && view.contains(r#"<h2 id="stage-title-4">Staging</h2>"#),
        "{view}"
    );
}

/// Adding a stage at a chosen position; the action picker offers only what a stage may hold,
/// by friendly names, and a hand-made post of the wrong kind is refused.
#[tokio::test]
async fn stages_go_where_asked_and_the_picker_offers_what_the_stage_may_hold() {
    let app = admin_app().await;
    app.post_form(
        &app.client,
        "/pipelines/import",
        &[("document", &declaration("placed"))],
    )
    .await;
    let html = body(app.get("/pipelines/placed/edit").await).await;
    // The first stage offers source actions only; the others everything but.
    let picker = |html: &str, stage: usize| -> String {
        let start = html.find(&format!(r#"id="add-type-{stage}""#)).unwrap();
        html[start..start + html[start..].find("</select>").unwrap()].to_string()
    };
    let first = picker(&html, 0);
    assert!(
        first.contains(">Git source<") && first.contains(">Upload source<"),
        "{first}"
    );
    assert!(!first.contains("Command build"));
    let second = picker(&html, 1);
    assert!(second.contains(">Command build<") && second.contains(">Manual approval<"));
    assert!(!second.contains("Git source"));
    assert!(html.contains("No changes yet.") && !html.contains("data-unsaved"));

    let (status, html) = editor_post(
        &app,
        "placed",
        vec![
            ("op", "add_stage".into()),
            ("new_name", "Lint".into()),
            ("position", "1".into()),
        ],
        html,
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("data-unsaved") && html.contains("Discard changes"));
    let (_, html) = editor_post(
        &app,
        "placed",
        vec![
            ("op", "add_stage".into()),
            ("new_name", "Smoke".into()),
            ("position", "5".into()),
        ],
        html,
    )
    .await;
    assert!(
        html.contains("the page is out of date"),
        "a position past the end"
    );
    let (_, html) = editor_post(
        &app,
        "placed",
        vec![
            ("op", "add_action".into()),
            ("stage", "1".into()),
            ("type_id", "Source/Sluice/Git/1".into()),
            ("action_name", "Again".into()),
        ],
        html,
    )
    .await;
    assert!(
        html.contains("a Git source goes in the first stage only"),
        "{html}"
    );
    let working: serde_json::Value = serde_json::from_str(&working_of(&html)).unwrap();
    let names: Vec<&str> = working["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Source", "Lint", "Build", "Approve"]);
}

/// Two people edit one pipeline: the second save finds a newer version, and "Reload and re-apply
/// my changes" puts the change onto it, keeping the other person's; then it saves.
#[tokio::test]
async fn a_save_conflict_reapplies_my_change_onto_the_latest_version() {
    let app = admin_app().await;
    app.post_form(
        &app.client,
        "/pipelines/import",
        &[("document", &declaration("shared"))],
    )
    .await;
    let token = app
        .console_token_as(&app.client, crate::harness::ADMIN_PASSWORD, &[])
        .await;
    let html = body(app.get("/pipelines/shared/edit").await).await;
    let (_, html) = editor_post(
        &app,
        "shared",
        vec![
            ("op", "rename_stage".into()),
            ("stage", "2".into()),
            ("new_name", "Gatekeeping".into()),
        ],
        html,
    )
    .await;
    // Meanwhile someone else sets the build's buildspec path and saves version 2.
    let mut other = ok(
        &app,
        &token,
        "GetPipeline",
        serde_json::json!({"name": "shared"}),
    )
    .await["pipeline"]
        .clone();
    other["stages"][1]["actions"][0]["configuration"] =
        serde_json::json!({"BuildSpecPath": "ci/build.yml"});
    ok(
        &app,
        &token,
        "UpdatePipeline",
        serde_json::json!({"pipeline": other}),
    )
    .await;

    let (status, html) = editor_post(&app, "shared", vec![("op", "save".into())], html).await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("Reload and re-apply my changes"), "{html}");
    let (status, html) = editor_post(&app, "shared", vec![("op", "rebase".into())], html).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("re-applied to version 2") && html.contains("Save as version 3"));
    assert!(
        !html.contains("both changed these"),
        "no conflict: different stages"
    );
    let (status, _) = editor_post(&app, "shared", vec![("op", "save".into())], html).await;
    assert_eq!(status, 303);
    let saved = ok(
        &app,
        &token,
        "GetPipeline",
        serde_json::json!({"name": "shared"}),
    )
    .await;
    assert_eq!(saved["pipeline"]["version"], 3);
    assert_eq!(saved["pipeline"]["stages"][2]["name"], "Gatekeeping");
    assert_eq!(
        saved["pipeline"]["stages"][1]["actions"][0]["configuration"]["BuildSpecPath"],
        "ci/build.yml"
    );

    // Both changing the same value: mine is kept, and the page says where.
    let html = body(app.get("/pipelines/shared/edit").await).await;
    let (_, html) = editor_post(
        &app,
        "shared",
        vec![
            ("op", "rename_stage".into()),
            ("stage", "2".into()),
            ("new_name", "Mine".into()),
        ],
        html,
    )
    .await;
    let mut other = saved["pipeline"].clone();
    other["stages"][2]["name"] = serde_json::json!("Theirs");
    other["stages"][2]["actions"][0]["configuration"] = serde_json::json!({"CustomData": "theirs"});
    ok(
        &app,
        &token,
        "UpdatePipeline",
        serde_json::json!({"pipeline": other}),
    )
    .await;
    let (status, html) = editor_post(&app, "shared", vec![("op", "save".into())], html).await;
    assert_eq!(status, 409);
    let (_, html) = editor_post(&app, "shared", vec![("op", "rebase".into())], html).await;
    assert!(html.contains("both changed these"), "{html}");
    let working: serde_json::Value = serde_json::from_str(&working_of(&html)).unwrap();
    assert_eq!(working["version"], 4);
    let names: Vec<&str> = working["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Mine"), "{names:?}");
}

/// Posts one form of the editor page `html` (its working copy with it), as a browser would.
pub async fn editor_post(
    app: &TestApp,
    pipeline: &str,
    fields: Vec<(&'static str, String)>,
    html: String,
) -> (u16, String) {
    let working = working_of(&html);
    let mut all: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("working", &working));
    let res = app
        .post_form(&app.client, &format!("/pipelines/{pipeline}/edit"), &all)
        .await;
    (res.status().as_u16(), body(res).await)
}

/// The editor's working copy, as the page holds it (unescaped).
fn working_of(html: &str) -> String {
    html.split(r#"name="working" value=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

const BUILDSPEC: &str = "version: 0.2\nphases:\n  build:\n    commands:\n      - make   # trailing spaces stay\n      - make test\n";
const ENVIRONMENT: &str = "[\n  {\"name\": \"PROFILE\", \"value\": \"release\"}\n]";

fn multi_line_declaration(name: &str) -> String {
    serde_json::json!({"pipeline": {
        "name": name,
        "stages": [
            {"name": "Source", "actions": [{"name": "Checkout",
                "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
                "configuration": {"RepositoryUrl": "https://git.example.com/x.git", "Branch": "main"},
                "outputArtifacts": [{"name": "Src"}]}]},
            {"name": "Build", "actions": [
                {"name": "Compile", "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
                 "configuration": {"BuildSpec": BUILDSPEC, "EnvironmentVariables": ENVIRONMENT},
                 "inputArtifacts": [{"name": "Src"}]},
                {"name": "Notify", "actionTypeId": {"category": "Invoke", "owner": "Sluice", "provider": "Webhook", "version": "1"},
                 "configuration": {"Url": "https://hooks.example.com/built", "Secret": "first-signing-secret"}}
            ]}
        ]
    }})
    .to_string()
}

#[tokio::test]
async fn editing_one_field_keeps_every_other_value_byte_identical_and_no_secret_is_echoed() {
    let (app, token) = admin_api().await;
    let res = app
        .post_form(
            &app.client,
            "/pipelines/import",
            &[("document", &multi_line_declaration("careful"))],
        )
        .await;
    assert_eq!(res.status(), 303);
    let get = |version: i64| {
        let (app, token) = (&app, &token);
        async move {
            ok(
                app,
                token,
                "GetPipeline",
                serde_json::json!({"name": "careful", "version": version}),
            )
            .await["pipeline"]
                .clone()
        }
    };
    let v1 = get(1).await;

    let html = body(app.get("/pipelines/careful/edit").await).await;
    assert!(
        html.contains(r#"name="config.BuildSpec" rows="8""#) && html.contains("<textarea"),
        "multi-line properties are textareas"
    );
    assert!(html.contains(r#"autocomplete="new-password""#));
    // Post the Compile form back as a browser would (textareas come back with CRLF), with only
    // the run order changed.
    let crlf = |s: &str| s.replace('\n', "\r\n");
    let post = |fields: Vec<(&'static str, String)>, html: String| {
        editor_post(&app, "careful", fields, html)
    };
    let (status, html) = post(
        vec![
            ("op", "edit_action".into()),
            ("stage", "1".into()),
            ("action", "0".into()),
            ("action_name", "Compile".into()),
            ("run_order", "2".into()),
            ("namespace", "".into()),
            ("inputs", "Src".into()),
            ("outputs", "".into()),
            ("config.BuildSpec", crlf(BUILDSPEC)),
            ("config.EnvironmentVariables", crlf(ENVIRONMENT)),
            ("config.BuildSpecPath", "".into()),
        ],
        html,
    )
    .await;
    assert_eq!(status, 200, "{html}");
    let (status, html) = post(vec![("op", "save".into())], html).await;
    assert_eq!(status, 303, "{html}");
    let v2 = get(2).await;
    let compile = |v: &serde_json::Value| v["stages"][1]["actions"][0].clone();
    assert_eq!(compile(&v2)["runOrder"], 2);
    assert_eq!(compile(&v2)["configuration"], compile(&v1)["configuration"]);
    assert_eq!(compile(&v2)["configuration"]["BuildSpec"], BUILDSPEC);
    assert_eq!(v2["stages"][0], v1["stages"][0]);
    assert_eq!(v2["stages"][1]["actions"][1], v1["stages"][1]["actions"][1]);

    // Saving again with no change makes no version.
    let html = body(app.get("/pipelines/careful/edit").await).await;
    let (status, html) = post(vec![("op", "save".into())], html).await;
    assert_eq!(status, 200);
    assert!(html.contains("No changes to save"), "{html}");
    let versions = ok(&app, &token, "ListPipelines", serde_json::json!({})).await;
    assert_eq!(versions["pipelines"][0]["version"], 2);

    // A newly typed secret never comes back in the page, and the diff says it changed.
    let (status, html) = post(
        vec![
            ("op", "edit_action".into()),
            ("stage", "1".into()),
            ("action", "1".into()),
            ("action_name", "Notify".into()),
            ("run_order", "1".into()),
            ("config.Url", "https://hooks.example.com/built".into()),
            ("config.Secret", "second-signing-secret".into()),
        ],
        html,
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        !html.contains("second-signing-secret"),
        "the typed secret is not echoed"
    );
    assert!(html.contains("new value typed"), "{html}");
    let (status, _) = post(vec![("op", "save".into())], html).await;
    assert_eq!(status, 303);
    let diff = body(app.get("/pipelines/careful/diff?from=2&to=3").await).await;
    assert!(diff.contains("secret changed"), "{diff}");
    assert!(!diff.contains("second-signing-secret"));
}

#[tokio::test]
async fn a_refused_import_shows_the_pasted_json_back() {
    let (app, admin) = admin_api().await;
    let token = crate::harness::user_with_policy(
        &app,
        &admin,
        "builder",
        Some(serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "codepipeline:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "codepipeline:CreatePipeline", "Resource": "arn:sluice:codepipeline:::prod-*"}
        ]})),
    )
    .await;
    let _ = token;
    let builder = app.sign_in("builder", crate::harness::USER_PASSWORD).await;
    let pasted = multi_line_declaration("prod-web");
    let res = app
        .post_form(&builder, "/pipelines/import", &[("document", &pasted)])
        .await;
    assert_eq!(res.status(), 403);
    let html = body(res).await;
    assert!(html.contains("codepipeline:CreatePipeline"), "{html}");
    assert!(
        html.contains("prod-web") && html.contains("first-signing-secret"),
        "what the user pasted comes back to them"
    );
}

/// The view shows each action's configuration (a secret as `****`, a buildspec as it was
/// written) and the pipeline's settings (variables, triggers, failure handling) without going
/// into Edit; so does the live stream's copy of a stage.
#[tokio::test]
async fn the_view_shows_configuration_masked_and_the_settings() {
    let (app, t) = crate::harness::admin_api().await;
    let secret = "hunter2-not-shown";
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - make\n";
    let decl = serde_json::json!({"name": "configured", "variables": [
        {"name": "Region", "defaultValue": "eu-west-1", "description": "where it goes"}],
    "triggers": [{"providerType": "CodeStarSourceConnection", "gitConfiguration": {
        "sourceActionName": "Checkout", "push": [{"branches": {"includes": ["main", "release/*"]}}]}}],
    "stages": [
        crate::executions::source_stage("https://example.com/app.git"),
        {"name": "Build", "onFailure": {"result": "RETRY", "retryConfiguration": {"retryMode": "FAILED_ACTIONS"}},
         "actions": [crate::executions::command("Compile", "Build", &["Src"], None,
            serde_json::json!({"BuildSpec": spec, "Secrets": format!("{{\"npm\": \"{secret}\"}}")}))]}
    ]});
    let (status, out) = crate::harness::api_call(
        &app,
        &t,
        "CreatePipeline",
        serde_json::json!({"pipeline": decl}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let view = body(app.get("/pipelines/configured").await).await;
    assert!(!view.contains(secret), "the secret never reaches the page");
    assert!(
        view.contains("<dt>Secrets</dt><dd><span class=\"mono\">****</span></dd>"),
        "{view}"
    );
    assert!(
        view.contains("<pre>version: 0.2\nphases:\n  build:\n    commands:\n      - make\n</pre>"),
        "{view}"
    );
    assert!(
        view.contains("#{variables.Region}")
            && view.contains("eu-west-1")
            && view.contains("where it goes")
    );
    assert!(
        view.contains("A push to Checkout: branches main, release/*"),
        "{view}"
    );
    assert!(view.contains("When Build fails") && view.contains("RETRY (retry FAILED_ACTIONS)"));
    // The live stream's stages come from the same masked declaration.
    let mut events =
        crate::live::Events::open(&app, &app.client, "/live?view=pipeline&name=configured").await;
    let parts = events
        .until(std::time::Duration::from_secs(30), |d| {
            d.contains("id=\"stage-2\"")
        })
        .await;
    assert!(parts.contains("****") && !parts.contains(secret), "{parts}");
}

fn unescape(text: &str) -> String {
    text.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&lt;", "<")
        .replace("&#62;", ">")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// What an import page's textarea holds, and the hints it carries, as the browser posts them.
fn import_form_of(html: &str) -> (String, Vec<(String, String)>) {
    let after = html.split(r#"id="document""#).nth(1).unwrap();
    let document = unescape(
        after
            .split_once('>')
            .unwrap()
            .1
            .split("</textarea>")
            .next()
            .unwrap(),
    );
    let hints = html
        .split(r#"name="hint."#)
        .skip(1)
        .map(|rest| {
            let (path, rest) = rest.split_once('"').unwrap();
            let value = rest
                .split(r#"value=""#)
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (format!("hint.{}", unescape(path)), unescape(value))
        })
        .collect();
    (document, hints)
}

async fn post_import(
    app: &TestApp,
    op: &str,
    document: &str,
    hints: &[(String, String)],
) -> reqwest::Response {
    let mut fields: Vec<(&str, &str)> = vec![("op", op), ("document", document)];
    fields.extend(hints.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    app.post_form(&app.client, "/pipelines/import", &fields)
        .await
}

fn aws_pipeline(name: &str) -> String {
    serde_json::json!({"pipeline": {
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/cp",
        "artifactStore": {"type": "S3", "location": "codepipeline-bucket"},
        "stages": [
            {"name": "Source", "actions": [{"name": "Src",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "CodeStarSourceConnection", "version": "1"},
                "configuration": {"ConnectionArn": "arn:aws:codeconnections:eu-west-1:1:connection/x", "FullRepositoryId": "acme/web", "BranchName": "main"},
                "outputArtifacts": [{"name": "SourceArtifact"}]}]},
            {"name": "Build", "actions": [{"name": "Compile",
                "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
                "configuration": {"ProjectName": "web-build"},
                "inputArtifacts": [{"name": "SourceArtifact"}], "outputArtifacts": [{"name": "BuildArtifact"}]}]},
            {"name": "Deploy", "actions": [
                {"name": "Ship",
                 "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeploy", "version": "1"},
                 "configuration": {"ApplicationName": "web", "DeploymentGroupName": "prod"},
                 "inputArtifacts": [{"name": "BuildArtifact"}]},
                {"name": "Notify", "runOrder": 2,
                 "actionTypeId": {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"},
                 "configuration": {"FunctionName": "notify"}}
            ]}
        ]
    }})
    .to_string()
}

/// An AWS pipeline pasted into the import: refused as it is, with a one-step mapping offered;
/// mapped, each remaining problem has its hint beside it, and the hints stay beside the problems
/// on the next try; filled in, it is created.
#[tokio::test]
async fn an_aws_pipeline_is_mapped_to_sluice_in_one_step_with_hints_beside_the_problems() {
    let app = admin_app().await;
    let res = post_import(&app, "create", &aws_pipeline("web"), &[]).await;
    assert_eq!(res.status(), 400);
    let html = body(res).await;
    assert!(html.contains("Map to Sluice"), "{html}");
    assert!(
        html.contains(
            "<code>Source/AWS/CodeStarSourceConnection/1</code> → <strong>Git source</strong>"
        ) && html.contains("<code>Invoke/AWS/Lambda/1</code> → <strong>Webhook call</strong>")
            && html.contains(
                "<code>Deploy/AWS/CodeDeploy/1</code> → <strong>Directory deploy</strong>"
            ),
        "{html}"
    );

    let (document, _) = import_form_of(&html);
    let res = post_import(&app, "map", &document, &[]).await;
    assert_eq!(res.status(), 200);
    let html = body(res).await;
    assert!(html.contains("4 actions mapped to Sluice"), "{html}");
    let (mapped, hints) = import_form_of(&html);
    let decl: serde_json::Value = serde_json::from_str(&mapped).unwrap();
    assert_eq!(
        decl["pipeline"]["stages"][0]["actions"][0]["actionTypeId"]["provider"],
        "Git"
    );
    assert_eq!(
        decl["pipeline"]["stages"][0]["actions"][0]["configuration"]["RepositoryUrl"],
        "https://github.com/acme/web.git"
    );
    // The two values Sluice cannot know are problems, each with its hint beside it.
    let problems = html
        .split(r#"id="document-errors""#)
        .nth(1)
        .unwrap()
        .split("</ul>")
        .next()
        .unwrap();
    assert!(
        problems.contains("stages[2].actions[0].configuration.TargetDirectory")
            && problems.contains("Hint: was CodeDeploy application web (group prod)"),
        "{problems}"
    );
    assert!(
        problems.contains("Hint: was Lambda function notify"),
        "{problems}"
    );
    assert!(
        app.get("/pipelines/web").await.status() == 404,
        "nothing created yet"
    );

    // One value filled in: the other's problem keeps its hint.
    let half = mapped.replacen(
        r#""TargetDirectory": """#,
        r#""TargetDirectory": "/srv/web""#,
        1,
    );
    assert_ne!(half, mapped);
    let res = post_import(&app, "create", &half, &hints).await;
    assert_eq!(res.status(), 400);
    let html = body(res).await;
    assert!(html.contains("Hint: was Lambda function notify"), "{html}");
    assert!(
        !html.contains("Hint: was CodeDeploy"),
        "no problem there any more"
    );
    let done = half.replacen(
        r#""Url": """#,
        r#""Url": "https://hooks.example.com/notify""#,
        1,
    );
    let res = post_import(&app, "create", &done, &hints).await;
    assert_eq!(res.headers()["location"], "/pipelines/web?done=created");
}

/// Importing under a name in use offers the first free one; mapping takes it.
#[tokio::test]
async fn an_import_under_a_taken_name_is_offered_a_free_one() {
    let app = admin_app().await;
    let document = declaration("twice");
    let res = post_import(&app, "create", &document, &[]).await;
    assert_eq!(res.headers()["location"], "/pipelines/twice?done=created");
    let res = post_import(&app, "create", &document, &[]).await;
    assert_eq!(res.status(), 400);
    let html = body(res).await;
    assert!(
        html.contains("already exists") && html.contains("<strong>twice-2</strong>"),
        "{html}"
    );
    let res = post_import(&app, "map", &document, &[]).await;
    let html = body(res).await;
    assert!(
        html.contains("this one is named twice-2") && html.contains("ready to create"),
        "{html}"
    );
    let (renamed, hints) = import_form_of(&html);
    let res = post_import(&app, "create", &renamed, &hints).await;
    assert_eq!(res.headers()["location"], "/pipelines/twice-2?done=created");
}

/// Fields too long together to travel in a step's URL stay on their step with a clear error,
/// everything typed shown back; over CodePipeline's 50 variables is refused beside the field.
#[tokio::test]
async fn a_wizard_too_long_to_carry_stays_on_its_step_with_everything_typed() {
    let app = admin_app().await;
    let long: String = (0..40)
        .map(|i| format!("V{i}={}\n", "€".repeat(900)))
        .collect();
    let res = wizard(
        &app,
        "settings",
        "next",
        &[
            ("name", "long"),
            ("execution_mode", "SUPERSEDED"),
            ("variables", &long),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);
    let html = body(res).await;
    assert!(html.contains("too long to carry"), "{}", &html[..2000]);
    assert!(
        html.contains(&"€".repeat(900)),
        "what was typed is shown back"
    );
    let too_many: String = (0..51).map(|i| format!("V{i}=x\n")).collect();
    let res = wizard(
        &app,
        "settings",
        "next",
        &[
            ("name", "many"),
            ("execution_mode", "SUPERSEDED"),
            ("variables", &too_many),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(body(res).await.contains("at most 50 variables"));
}
