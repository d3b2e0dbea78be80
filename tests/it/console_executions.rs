//! Executions in the console through plain form posts: Release change with variables, the
//! execution and its log, the history, Retry, transitions, Stop; and that each button shows only
//! to those allowed to press it.

use serde_json::json;

use crate::harness::{ADMIN_PASSWORD, TestApp, api_ok as ok};

async fn body(res: reqwest::Response) -> String {
    res.text().await.unwrap()
}

async fn page(app: &TestApp, client: &reqwest::Client, path: &str) -> String {
    let res = client.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    body(res).await
}

/// Waits until the pipeline's latest execution ends; its status.
async fn ended(app: &TestApp, t: &str, name: &str) -> String {
    for _ in 0..400 {
        let listed = ok(
            app,
            t,
            "ListPipelineExecutions",
            json!({"pipelineName": name, "maxResults": 1}),
        )
        .await;
        let status = listed["pipelineExecutionSummaries"][0]["status"]
            .as_str()
            .unwrap_or("InProgress")
            .to_string();
        if status != "InProgress" {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{name} never ended");
}

#[tokio::test]
async fn release_follow_retry_and_hold_an_execution_from_the_console() {
    let app = crate::harness::spawn_app_with_workers(2).await;
    app.setup_admin().await;
    let t = app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await;
    let repo = tempfile::tempdir().unwrap();
    let (path, commit) = crate::executions::repository(repo.path());
    let scratch = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let fail_flag = scratch.path().join("fail");
    let spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo \"greeting is $GREETING\"\n      - if [ -f {f} ]; then echo failing on purpose; exit 7; fi\n",
        f = fail_flag.display()
    );
    let decl = json!({"name": "site", "variables": [
            {"name": "Greeting", "description": "What the build says"},
            {"name": "Region", "defaultValue": "eu-west-1"}
        ],
        "stages": [
        crate::executions::source_stage(&path),
        {"name": "Build", "actions": [{"name": "Compile",
            "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
            "configuration": {"BuildSpec": spec,
                "EnvironmentVariables": "[{\"name\": \"GREETING\", \"value\": \"#{variables.Greeting} from #{variables.Region}\"}]"},
            "inputArtifacts": [{"name": "Src"}]}]}
    ]});
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;

    // Nothing ran (a variable has no default); the view offers Release change and History.
    let view = page(&app, &app.client, "/pipelines/site").await;
    assert!(view.contains(r#"href="/pipelines/site/release""#), "{view}");
    assert!(view.contains(r#"href="/pipelines/site/executions""#));
    assert_eq!(view.matches("status status-none").count(), 4, "{view}");
    let form = page(&app, &app.client, "/pipelines/site/release").await;
    assert!(form.contains(r#"name="var.Greeting""#) && form.contains("What the build says"));
    assert!(
        form.contains(r#"value="eu-west-1""#),
        "the default is offered"
    );

    // A required variable left empty: the form comes back, saying so, with what was typed.
    let res = app
        .post_form(
            &app.client,
            "/pipelines/site/release",
            &[("var.Greeting", ""), ("var.Region", "us-east-2")],
        )
        .await;
    assert_eq!(res.status(), 400);
    let again = body(res).await;
    assert!(again.contains("Greeting"), "{again}");
    assert!(again.contains(r#"value="us-east-2""#));

    let res = app
        .post_form(
            &app.client,
            "/pipelines/site/release",
            &[("var.Greeting", "<hello>"), ("var.Region", "")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/pipelines/site/executions/"));
    let detail = page(&app, &app.client, &location).await;
    assert!(detail.contains("The execution started."));
    assert!(
        detail.contains("&#60;hello&#62;") && !detail.contains("<hello>"),
        "variables are shown, escaped: {detail}"
    );
    assert_eq!(ended(&app, &t, "site").await, "Succeeded");

    // The view shows each stage's and action's latest status, with the log a click away.
    let view = page(&app, &app.client, "/pipelines/site").await;
    assert_eq!(view.matches("status-succeeded").count(), 4, "{view}");
    let log_link = view
        .split(r#"href="/pipelines/site/actions/"#)
        .nth(2)
        .and_then(|r| r.split('"').next())
        .map(|rest| format!("/pipelines/site/actions/{rest}"))
        .expect("a log link for the build");
    let log = page(&app, &app.client, &log_link).await;
    assert!(
        log.contains("greeting is &#60;hello&#62; from eu-west-1"),
        "{log}"
    );
    // (The navigation's approvals count has a trigger of its own on every page.)
    assert!(
        !log.contains(r#"class="log-more""#) && !log.contains("load delay:1s"),
        "a finished log is not polled"
    );

    let detail = page(&app, &app.client, &location).await;
    assert!(
        detail.contains(&commit),
        "the source revision is on the execution's page"
    );
    assert!(detail.contains("Compile") && detail.contains("Checkout"));
    assert!(!detail.contains("Stop this execution"), "it has ended");
    let history = page(&app, &app.client, "/pipelines/site/executions").await;
    assert!(history.contains(&commit[..8]) && history.contains("First commit"));
    assert!(history.contains("Released by admin"));

    // A failed build offers Retry; retried, it succeeds.
    std::fs::write(&fail_flag, "").unwrap();
    app.post_form(
        &app.client,
        "/pipelines/site/release",
        &[("var.Greeting", "hi"), ("var.Region", "")],
    )
    .await;
    assert_eq!(ended(&app, &t, "site").await, "Failed");
    let view = page(&app, &app.client, "/pipelines/site").await;
    assert!(view.contains("Retry failed actions"), "{view}");
    assert!(view.contains("failing on purpose") || view.contains("exited with 7"));
    let execution = view
        .split(r#"name="execution" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    std::fs::remove_file(&fail_flag).unwrap();
    let res = app
        .post_form(
            &app.client,
            "/pipelines/site/stages/Build/retry",
            &[("execution", &execution), ("mode", "failed")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        "/pipelines/site?done=retried"
    );
    assert_eq!(ended(&app, &t, "site").await, "Succeeded");

    // Hold the build stage; the reason shows; enable it again.
    let res = app
        .post_form(
            &app.client,
            "/pipelines/site/stages/Build/transition",
            &[("op", "disable"), ("reason", "Release freeze")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let view = page(&app, &app.client, "/pipelines/site").await;
    assert!(view.contains("disabled by admin: Release freeze"), "{view}");
    assert!(view.contains("Enable transition"));
    let res = app
        .post_form(
            &app.client,
            "/pipelines/site/stages/Build/transition",
            &[("op", "disable"), ("reason", "  ")],
        )
        .await;
    assert_eq!(res.status(), 400, "a reason is needed");
    app.post_form(
        &app.client,
        "/pipelines/site/stages/Build/transition",
        &[("op", "enable")],
    )
    .await;
    let view = page(&app, &app.client, "/pipelines/site").await;
    assert!(!view.contains("Release freeze") && view.contains("Disable transition"));

    // A read-only user sees the state and no button.
    ok(
        &app,
        &t,
        "CreateUser",
        json!({"userName": "viewer", "password": "a long and unusual passphrase 42"}),
    )
    .await;
    ok(
        &app,
        &t,
        "AttachUserPolicy",
        json!({"userName": "viewer", "policyName": "AWSCodePipeline_ReadOnlyAccess"}),
    )
    .await;
    let viewer = app
        .sign_in("viewer", "a long and unusual passphrase 42")
        .await;
    let view = page(&app, &viewer, "/pipelines/site").await;
    assert!(view.contains("status-succeeded"));
    for button in ["Release change", "Retry", "Disable transition"] {
        assert!(!view.contains(button), "{button} shown to a read-only user");
    }
    let detail = page(&app, &viewer, &location).await;
    assert!(!detail.contains("Stop this execution"));
    assert!(
        viewer
            .get(app.url("/pipelines/site/release"))
            .send()
            .await
            .unwrap()
            .status()
            == 403
    );
}

#[tokio::test]
async fn a_running_execution_is_stopped_from_its_page_and_its_log_is_polled_while_it_runs() {
    let app = crate::harness::spawn_app_with_workers(2).await;
    app.setup_admin().await;
    let t = app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = crate::executions::repository(repo.path());
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo started the long part\n      - sleep 622\n";
    let decl = json!({"name": "slow", "stages": [
        crate::executions::source_stage(&path),
        {"name": "Build", "actions": [{"name": "Compile",
            "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
            "configuration": {"BuildSpec": spec}, "inputArtifacts": [{"name": "Src"}]}]}
    ]});
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    let mut log_link = None;
    for _ in 0..200 {
        let attempts = ok(
            &app,
            &t,
            "ListActionExecutions",
            json!({"pipelineName": "slow"}),
        )
        .await;
        let build = &attempts["actionExecutionDetails"][0];
        if build["actionName"] == "Compile" {
            log_link = Some(format!(
                "/pipelines/slow/actions/{}/log",
                build["actionExecutionId"].as_str().unwrap()
            ));
            let log = page(&app, &app.client, log_link.as_ref().unwrap()).await;
            if log.contains("started the long part") {
                // The rest arrives on the page's live stream, from the next line on.
                assert!(log.contains("sse-connect=\"/live?view=log"), "{log}");
                assert!(!log.contains("hx-trigger"), "{log}");
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    log_link.expect("the build started");

    let execution = ok(
        &app,
        &t,
        "ListPipelineExecutions",
        json!({"pipelineName": "slow"}),
    )
    .await["pipelineExecutionSummaries"][0]["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    let detail = page(
        &app,
        &app.client,
        &format!("/pipelines/slow/executions/{execution}"),
    )
    .await;
    assert!(detail.contains("Stop this execution"));
    let res = app
        .post_form(
            &app.client,
            &format!("/pipelines/slow/executions/{execution}/stop"),
            &[("mode", "abandon"), ("reason", "taking too long")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(ended(&app, &t, "slow").await, "Stopped");
    let detail = page(
        &app,
        &app.client,
        &format!("/pipelines/slow/executions/{execution}"),
    )
    .await;
    assert!(detail.contains("Stopped: taking too long"));
    assert!(detail.contains("Abandoned"));
}

#[tokio::test]
async fn the_history_filters_by_status() {
    let (app, t) = crate::harness::admin_api().await;
    let mut decl = crate::pipelines::web_app("hist");
    decl["executionMode"] = serde_json::json!("SUPERSEDED");
    crate::harness::api_ok(
        &app,
        &t,
        "CreatePipeline",
        serde_json::json!({"pipeline": decl}),
    )
    .await;
    // No workers: the first stays in its source stage, the second waits and is superseded by
    // the third.
    for _ in 0..2 {
        crate::harness::api_ok(
            &app,
            &t,
            "StartPipelineExecution",
            serde_json::json!({"name": "hist"}),
        )
        .await;
    }
    let rows = |html: &str| html.matches(r#"class="mono" title="#).count();
    let all = page(&app, &app.client, "/pipelines/hist/executions").await;
    assert_eq!(rows(&all), 3);
    let superseded = page(
        &app,
        &app.client,
        "/pipelines/hist/executions?status=Superseded",
    )
    .await;
    assert_eq!(rows(&superseded), 1, "{superseded}");
    assert!(superseded.contains(r#"aria-current="page">Superseded"#));
    let running = page(
        &app,
        &app.client,
        "/pipelines/hist/executions?status=InProgress",
    )
    .await;
    assert_eq!(rows(&running), 2);
    let failed = page(
        &app,
        &app.client,
        "/pipelines/hist/executions?status=Failed",
    )
    .await;
    assert!(failed.contains("No execution has this status."));
    let res = app.get("/pipelines/hist/executions?status=Bogus").await;
    assert_eq!(res.status(), 400);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("must be InProgress, Succeeded")
    );
}

/// An execution's page draws its timeline (waiting and running per action, server-rendered
/// SVG) and its output variables; a log shows ANSI colours as classes, searches its lines, and
/// downloads as a text file.
#[tokio::test]
async fn the_timeline_and_a_coloured_log_that_searches_and_downloads() {
    let (app, t) = crate::executions::workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = crate::executions::repository(repo.path());
    let spec = "version: 0.2\nenv:\n  exported-variables: [SHADE]\nphases:\n  build:\n    commands:\n      - printf '\\033[1;31mred alert\\033[0m and plain\\n'\n      - for i in 1 2 3; do echo needle $i; echo hay $i; done\n      - export SHADE=teal\n";
    let decl = json!({"name": "colours", "stages": [
        crate::executions::source_stage(&path),
        {"name": "Build", "actions": [crate::executions::command("Paint", "Build", &["Src"], None, json!({"BuildSpec": spec}))]}
    ]});
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    assert_eq!(ended(&app, &t, "colours").await, "Succeeded");
    let id = crate::executions::first_execution(&app, &t, "colours").await;
    let detail = page(
        &app,
        &app.client,
        &format!("/pipelines/colours/executions/{id}"),
    )
    .await;
    assert!(detail.contains(r#"id="execution-timeline""#), "{detail}");
    // The view says when each stage's latest execution last changed there.
    let view = page(&app, &app.client, "/pipelines/colours").await;
    let stage_lines: Vec<&str> = view
        .lines()
        .filter(|l| l.contains(r#"class="stage-execution""#))
        .collect();
    assert_eq!(stage_lines.len(), 2, "{view}");
    assert!(
        stage_lines.iter().all(|l| l.contains(" UTC</span>")),
        "{stage_lines:?}"
    );
    assert_eq!(
        detail
            .matches(r#"<rect class="timeline-run status-succeeded""#)
            .count(),
        4,
        "two stages and two actions: {detail}"
    );
    assert!(detail.contains("waited ") && detail.contains(", ran "));
    assert!(!detail.contains("style="), "no inline styles");
    assert!(detail.contains(r#"href="/pipelines/colours?version=1""#));
    assert!(
        detail.contains("SHADE") && detail.contains("teal"),
        "outputs"
    );

    let attempts = ok(
        &app,
        &t,
        "ListActionExecutions",
        json!({"pipelineName": "colours", "filter": {"pipelineExecutionId": id}}),
    )
    .await;
    let paint = attempts["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["actionName"] == "Paint")
        .unwrap()["actionExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    let log = page(
        &app,
        &app.client,
        &format!("/pipelines/colours/actions/{paint}/log"),
    )
    .await;
    assert!(
        log.contains(r#"<span class="ansi-bold ansi-red">red alert</span> and plain"#),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'));
    let found = page(
        &app,
        &app.client,
        &format!("/pipelines/colours/actions/{paint}/log?q=NEEDLE"),
    )
    .await;
    // The three echoes and the command that printed them.
    assert!(found.contains("4 lines contain “NEEDLE”."), "{found}");
    assert!(found.contains("needle 2") && !found.contains("hay 2"));
    let nothing = page(
        &app,
        &app.client,
        &format!("/pipelines/colours/actions/{paint}/log?q=%3Cscript%3E"),
    )
    .await;
    assert!(
        nothing.contains("No line contains “&#60;script&#62;”."),
        "{nothing}"
    );
    let res = app
        .client
        .get(app.url(&format!("/pipelines/colours/actions/{paint}/log.txt")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"colours-Build-Paint-1.log\"")
    );
    let text = res.text().await.unwrap();
    assert!(text.contains("needle 3\nhay 3\n"), "{text}");
}
