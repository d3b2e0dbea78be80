//! Directory deploys on the worker's host, through the front door: a Git source whose revision
//! carries an `appspec.yml`, deployed into a target directory by a real worker, its hooks real
//! scripts run as the runner user.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::executions::{commit, first_execution, repository, start, wait_for_end, workers_app};
use crate::harness::{TestApp, api_ok as ok};

/// A directory anyone may write to (hooks run as the unprivileged runner user when the tests run
/// as root), holding the log every hook appends its event and release to.
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// Writes the revision's AppSpec and a script per hook that logs `<event> <release>` to
/// `events`; ValidateService exits with `validate_exit`.
fn write_app(repo: &Path, events: &Path, validate_exit: i32) {
    let scripts = repo.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    let log = events.join("hooks.log");
    for (name, exit) in [
        ("stop", 0),
        ("before", 0),
        ("after", 0),
        ("start", 0),
        ("check", validate_exit),
    ] {
        std::fs::write(
            scripts.join(format!("{name}.sh")),
            format!(
                "echo \"$LIFECYCLE_EVENT $SLUICE_RELEASE $(pwd -P)\" >> {}\nexit {exit}\n",
                log.display()
            ),
        )
        .unwrap();
    }
    std::fs::write(
        repo.join("appspec.yml"),
        "version: 0.0\nos: linux\nfiles:\n  - source: /\n    destination: /srv/ignored\nhooks:\n\
         \x20 ApplicationStop:\n    - location: scripts/stop.sh\n\
         \x20 BeforeInstall:\n    - location: scripts/before.sh\n      timeout: 60\n\
         \x20 AfterInstall:\n    - location: scripts/after.sh\n\
         \x20 ApplicationStart:\n    - location: scripts/start.sh\n\
         \x20 ValidateService:\n    - location: scripts/check.sh\n      timeout: 30\n",
    )
    .unwrap();
}

fn deploy_pipeline(name: &str, repo: &str, target: &Path, keep: u32) -> Value {
    json!({"name": name, "stages": [
        crate::executions::source_stage(repo),
        {"name": "Deploy", "actions": [{"name": "ToHost",
            "actionTypeId": {"category": "Deploy", "owner": "Sluice", "provider": "Directory", "version": "1"},
            "configuration": {"TargetDirectory": target.display().to_string(), "KeepReleases": keep.to_string()},
            "inputArtifacts": [{"name": "Src"}]}]}]})
}

/// The deploy action's last attempt: status and summary.
async fn deploy_result(app: &TestApp, execution: &str) -> (String, String) {
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let (status, summary): (String, Option<String>) = sqlx::query_as(
        "SELECT status, summary FROM action_executions WHERE execution_id = $1::uuid \
         AND stage_index = 1 ORDER BY attempt DESC LIMIT 1",
    )
    .bind(execution)
    .fetch_one(&mut c)
    .await
    .unwrap();
    (status, summary.unwrap_or_default())
}

fn current(target: &Path) -> PathBuf {
    std::fs::read_link(target.join("current")).unwrap()
}

fn releases(target: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(target.join("releases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn hook_log(events: &Path) -> Vec<String> {
    std::fs::read_to_string(events.join("hooks.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `<event> <release>` of each hook run since `from`, checking each ran in its release.
fn hooks_since(events: &Path, target: &Path, from: usize) -> Vec<String> {
    hook_log(events)[from..]
        .iter()
        .map(|line| {
            let mut parts = line.split(' ');
            let (event, release, dir) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let real = target
                .canonicalize()
                .unwrap()
                .join("releases")
                .join(release);
            assert_eq!(Path::new(dir), real, "{line}: a hook runs in its release");
            format!("{event} {release}")
        })
        .collect()
}

#[tokio::test]
async fn a_directory_deploy_runs_its_hooks_around_the_switch_keeps_releases_and_puts_back_a_failed_one()
 {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let events = shared_dir();
    let hosts = tempfile::tempdir().unwrap();
    std::fs::set_permissions(hosts.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = hosts.path().join("srv/app");
    repository(repo.path());
    write_app(repo.path(), events.path(), 0);
    commit(repo.path(), "app.txt", "release one");
    let path = repo.path().display().to_string();
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": deploy_pipeline("site", &path, &target, 1)}),
    )
    .await;

    // The first release: no release to stop; the link made; every hook in order, in the release.
    let e1 = first_execution(&app, &t, "site").await;
    assert_eq!(
        wait_for_end(&app, &t, "site", &e1).await["status"],
        "Succeeded"
    );
    let (_, summary) = deploy_result(&app, &e1).await;
    assert!(
        summary.starts_with(&format!("Deployed release {e1} to {}", target.display())),
        "{summary}"
    );
    assert!(summary.contains("ValidateService"), "{summary}");
    assert_eq!(current(&target), Path::new("releases").join(&e1));
    assert_eq!(
        std::fs::read_to_string(target.join("current/app.txt")).unwrap(),
        "release one"
    );
    assert_eq!(
        hooks_since(events.path(), &target, 0),
        [
            "BeforeInstall",
            "AfterInstall",
            "ApplicationStart",
            "ValidateService"
        ]
        .map(|h| format!("{h} {e1}"))
    );

    // The second: the first is stopped with its own AppSpec, then the new one goes in.
    commit(repo.path(), "app.txt", "release two");
    let seen = hook_log(events.path()).len();
    let e2 = start(&app, &t, "site").await;
    assert_eq!(
        wait_for_end(&app, &t, "site", &e2).await["status"],
        "Succeeded"
    );
    assert_eq!(current(&target), Path::new("releases").join(&e2));
    assert_eq!(
        hooks_since(events.path(), &target, seen),
        [
            format!("ApplicationStop {e1}"),
            format!("BeforeInstall {e2}"),
            format!("AfterInstall {e2}"),
            format!("ApplicationStart {e2}"),
            format!("ValidateService {e2}"),
        ]
    );
    let mut both = vec![e1.clone(), e2.clone()];
    both.sort();
    assert_eq!(releases(&target), both, "one earlier release is kept");

    // The third: KeepReleases 1 removes the first; the list Sluice keeps says so too.
    commit(repo.path(), "app.txt", "release three");
    let e3 = start(&app, &t, "site").await;
    assert_eq!(
        wait_for_end(&app, &t, "site", &e3).await["status"],
        "Succeeded"
    );
    let mut kept = vec![e2.clone(), e3.clone()];
    kept.sort();
    assert_eq!(releases(&target), kept);
    assert_eq!(
        std::fs::read_to_string(target.join(".sluice-releases")).unwrap(),
        format!("{e2}\n{e3}\n")
    );

    // The fourth fails its ValidateService: the host is put back as it was, and says so.
    write_app(repo.path(), events.path(), 3);
    commit(repo.path(), "app.txt", "release four");
    let seen = hook_log(events.path()).len();
    let e4 = start(&app, &t, "site").await;
    assert_eq!(
        wait_for_end(&app, &t, "site", &e4).await["status"],
        "Failed"
    );
    let (status, summary) = deploy_result(&app, &e4).await;
    assert_eq!(status, "Failed");
    assert!(
        summary.starts_with(&format!(
            "ValidateService: scripts/check.sh exited with 3; switched back to release {e3} and started it again"
        )),
        "{summary}"
    );
    assert_eq!(current(&target), Path::new("releases").join(&e3));
    assert_eq!(
        std::fs::read_to_string(target.join("current/app.txt")).unwrap(),
        "release three"
    );
    assert_eq!(releases(&target), kept, "the failed release is removed");
    // The log's page says why above the log, without quoting the log's tail a second time.
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let attempt: uuid::Uuid = sqlx::query_scalar(
        "SELECT id FROM action_executions WHERE execution_id = $1::uuid AND stage_index = 1",
    )
    .bind(&e4)
    .fetch_one(&mut c)
    .await
    .unwrap();
    let page = app
        .page(&format!("/pipelines/site/actions/{attempt}/log"))
        .await;
    let lede = &page[page.find(r#"id="log-status""#).unwrap()..];
    let lede = &lede[..lede.find("</p>").unwrap()];
    assert!(lede.contains("and started it again"), "{lede}");
    assert!(!lede.contains("last lines of the log"), "{lede}");
    // So does the action's card on the pipeline's view.
    let view = app.page("/pipelines/site").await;
    assert!(view.contains("switched back to release"), "{view}");
    assert!(!view.contains("last lines of the log"), "{view}");
    // ValidateService ran in the new release, which is gone now: compare the events only.
    let events_since: Vec<String> = hook_log(events.path())[seen..]
        .iter()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        events_since,
        [
            format!("ApplicationStop {e3}"),
            format!("BeforeInstall {e4}"),
            format!("AfterInstall {e4}"),
            format!("ApplicationStart {e4}"),
            format!("ValidateService {e4}"),
            format!("ApplicationStart {e3}"),
        ]
    );
}

#[tokio::test]
async fn a_malformed_appspec_or_a_foreign_runas_deploys_nothing() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let hosts = tempfile::tempdir().unwrap();
    std::fs::set_permissions(hosts.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = hosts.path().join("app");
    repository(repo.path());
    std::fs::write(
        repo.path().join("appspec.yml"),
        "version: 0.0\nos: linux\nhooks:\n  Install:\n    - location: x.sh\n",
    )
    .unwrap();
    commit(repo.path(), "app.txt", "one");
    let path = repo.path().display().to_string();
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": deploy_pipeline("bad", &path, &target, 5)}),
    )
    .await;
    let e1 = first_execution(&app, &t, "bad").await;
    assert_eq!(wait_for_end(&app, &t, "bad", &e1).await["status"], "Failed");
    let (_, summary) = deploy_result(&app, &e1).await;
    assert!(
        summary.starts_with("appspec.yml: unknown hook \"Install\"; the hooks are ApplicationStop"),
        "{summary}"
    );
    assert!(!target.join("current").exists());
    assert!(releases(&target).is_empty());

    // A script that asks to run as someone the worker does not run hooks as.
    let me = if unsafe { libc::geteuid() } == 0 {
        "root"
    } else {
        "nobody"
    };
    std::fs::write(repo.path().join("x.sh"), "exit 0\n").unwrap();
    std::fs::write(
        repo.path().join("appspec.yml"),
        format!(
            "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n    - location: x.sh\n      runas: {me}\n"
        ),
    )
    .unwrap();
    commit(repo.path(), "app.txt", "two");
    let e2 = start(&app, &t, "bad").await;
    assert_eq!(wait_for_end(&app, &t, "bad", &e2).await["status"], "Failed");
    let (_, summary) = deploy_result(&app, &e2).await;
    assert!(
        summary.starts_with(&format!("BeforeInstall: x.sh: runas {me}: hooks run as this worker's runner user; start the worker with --runner-user {me}")),
        "{summary}"
    );
    assert!(!target.join("current").exists());
    assert!(releases(&target).is_empty());
}

/// Waits (up to two minutes) for an execution to end; its status.
async fn ended(app: &TestApp, t: &str, name: &str, id: &str) -> String {
    for _ in 0..1200 {
        let e = ok(
            app,
            t,
            "GetPipelineExecution",
            json!({"pipelineName": name, "pipelineExecutionId": id}),
        )
        .await;
        let status = e["pipelineExecution"]["status"]
            .as_str()
            .unwrap()
            .to_string();
        if status != "InProgress" {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the execution {id} of {name} never ended");
}

fn group_pipeline(name: &str, repo: &str, group: &str, config: &str) -> Value {
    json!({"name": name, "stages": [
        crate::executions::source_stage(repo),
        {"name": "Deploy", "actions": [{"name": "ToFleet",
            "actionTypeId": {"category": "Deploy", "owner": "Sluice", "provider": "Directory", "version": "1"},
            "configuration": {"TargetDirectory": "/srv/app", "DeploymentGroup": group,
                              "DeploymentConfig": config},
            "inputArtifacts": [{"name": "Src"}]}]}]})
}

/// The hosts of the execution's deploy: (state, release) in rollout order.
async fn host_states(app: &TestApp, execution: &str) -> Vec<(String, Option<String>)> {
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    sqlx::query_as(
        "SELECT h.state, h.release FROM deploy_hosts h JOIN action_executions a ON a.id = h.action_execution_id \
         WHERE a.execution_id = $1::uuid ORDER BY h.position",
    )
    .bind(execution)
    .fetch_all(&mut c)
    .await
    .unwrap()
}

/// The hook events a host ran (its lines of the shared hook log), from line `from` of that log.
fn host_events(events: &Path, host: &Path, from: usize) -> Vec<String> {
    let host = host.display().to_string();
    hook_log(events)[from..]
        .iter()
        .filter(|l| {
            l.split(' ')
                .nth(2)
                .is_some_and(|dir| dir.starts_with(&host))
        })
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

#[tokio::test]
async fn a_fleet_deploy_rolls_out_to_its_group_and_a_failing_host_switches_the_others_back() {
    let (app, t) = workers_app().await;
    let events = shared_dir();
    let roots = tempfile::tempdir().unwrap();
    std::fs::set_permissions(roots.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Three hosts of the group `web` (three worker processes, each deploying into a root of its
    // own), registered one after another so that the rollout's order is theirs.
    let hosts: Vec<PathBuf> = (1..=3)
        .map(|i| roots.path().join(format!("h{i}")))
        .collect();
    let mut workers = Vec::new();
    for (i, root) in hosts.iter().enumerate() {
        let root_arg = root.display().to_string();
        workers.push(crate::workers::worker_with(
            &app,
            1,
            30,
            &["--labels", "Web,eu", "--deploy-root", &root_arg],
        ));
        let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
        for _ in 0..600 {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM worker_pools WHERE 'web' = ANY (labels) AND stopped_at IS NULL",
            )
            .fetch_one(&mut c)
            .await
            .unwrap();
            if n == i64::try_from(i + 1).unwrap() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    // AllAtOnce: every host takes the release, each with its own hooks, in its own root.
    let repo = tempfile::tempdir().unwrap();
    repository(repo.path());
    write_app(repo.path(), events.path(), 0);
    commit(repo.path(), "app.txt", "release one");
    let path = repo.path().display().to_string();
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": group_pipeline("fleet", &path, "web", "AllAtOnce")}),
    )
    .await;
    let e1 = first_execution(&app, &t, "fleet").await;
    assert_eq!(ended(&app, &t, "fleet", &e1).await, "Succeeded");
    let (_, summary) = deploy_result(&app, &e1).await;
    assert_eq!(
        summary,
        format!("Deployed release {e1} to 3 hosts of the group web (AllAtOnce)")
    );
    assert_eq!(
        host_states(&app, &e1).await,
        vec![("Deployed".to_string(), Some(e1.clone())); 3]
    );
    for host in &hosts {
        let target = host.join("srv/app");
        assert_eq!(current(&target), Path::new("releases").join(&e1));
        assert_eq!(
            std::fs::read_to_string(target.join("current/app.txt")).unwrap(),
            "release one"
        );
        assert_eq!(
            host_events(events.path(), host, 0),
            [
                "BeforeInstall",
                "AfterInstall",
                "ApplicationStart",
                "ValidateService"
            ]
            .map(|h| format!("{h} {e1}"))
        );
    }

    // OneAtATime, and ValidateService fails on the second host: it puts itself back, the first
    // is switched back, the third never starts.
    let scripts = repo.path().join("scripts");
    let check = std::fs::read_to_string(scripts.join("check.sh")).unwrap();
    std::fs::write(
        scripts.join("check.sh"),
        format!(
            "{check}case \"$SLUICE_TARGET_DIR\" in {}/*) exit 7;; esac\n",
            hosts[1].display()
        )
        .replace("exit 0\ncase", "case"),
    )
    .unwrap();
    commit(repo.path(), "app.txt", "release two");
    let seen = hook_log(events.path()).len();
    let mut current_pipeline =
        ok(&app, &t, "GetPipeline", json!({"name": "fleet"})).await["pipeline"].clone();
    current_pipeline["stages"][1]["actions"][0]["configuration"]["DeploymentConfig"] =
        json!("CodeDeployDefault.OneAtATime");
    ok(
        &app,
        &t,
        "UpdatePipeline",
        json!({"pipeline": current_pipeline}),
    )
    .await;
    let e2 = start(&app, &t, "fleet").await;
    assert_eq!(ended(&app, &t, "fleet", &e2).await, "Failed");
    let states = host_states(&app, &e2).await;
    let states: Vec<&str> = states.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(states, ["RolledBack", "Failed", "Skipped"]);
    let (status, summary) = deploy_result(&app, &e2).await;
    assert_eq!(status, "Failed");
    assert!(
        summary.starts_with("the deploy failed on ")
            && summary.contains("ValidateService: scripts/check.sh exited with 7")
            && summary.contains("; switched back: ")
            && summary.contains("; not deployed: "),
        "{summary}"
    );
    for host in &hosts {
        let target = host.join("srv/app");
        assert_eq!(
            current(&target),
            Path::new("releases").join(&e1),
            "{}",
            host.display()
        );
        assert_eq!(
            std::fs::read_to_string(target.join("current/app.txt")).unwrap(),
            "release one"
        );
        assert_eq!(
            releases(&target),
            vec![e1.clone()],
            "the new release is gone"
        );
    }
    assert_eq!(
        host_events(events.path(), &hosts[0], seen),
        [
            format!("ApplicationStop {e1}"),
            format!("BeforeInstall {e2}"),
            format!("AfterInstall {e2}"),
            format!("ApplicationStart {e2}"),
            format!("ValidateService {e2}"),
            // Switched back: the new release stopped, the old one started.
            format!("ApplicationStop {e2}"),
            format!("ApplicationStart {e1}"),
        ]
    );
    assert_eq!(
        host_events(events.path(), &hosts[1], seen),
        [
            format!("ApplicationStop {e1}"),
            format!("BeforeInstall {e2}"),
            format!("AfterInstall {e2}"),
            format!("ApplicationStart {e2}"),
            format!("ValidateService {e2}"),
            format!("ApplicationStart {e1}"),
        ]
    );
    assert!(
        host_events(events.path(), &hosts[2], seen).is_empty(),
        "the third host is untouched"
    );

    // The action's page shows each host: its state, what happened, its own log.
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let attempt: uuid::Uuid = sqlx::query_scalar(
        "SELECT id FROM action_executions WHERE execution_id = $1::uuid AND stage_index = 1",
    )
    .bind(&e2)
    .fetch_one(&mut c)
    .await
    .unwrap();
    let page = app
        .page(&format!("/pipelines/fleet/actions/{attempt}/log"))
        .await;
    for said in [
        "Switched back",
        "Not deployed",
        "exited with 7",
        "not deployed: the rollout stopped before this host",
        "[Sluice] deploying on",
        "Log of ",
    ] {
        assert!(page.contains(said), "{said}: {page}");
    }

    // A group nobody is in fails at once, saying so, and deploys nothing.
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": group_pipeline("nobody-home", &path, "db", "OneAtATime")}),
    )
    .await;
    let e3 = first_execution(&app, &t, "nobody-home").await;
    assert_eq!(ended(&app, &t, "nobody-home", &e3).await, "Failed");
    let (_, summary) = deploy_result(&app, &e3).await;
    assert!(
        summary.starts_with("no live worker is in the deployment group db: start one on each of its hosts with `sluice worker --labels db`"),
        "{summary}"
    );
    assert!(host_states(&app, &e3).await.is_empty());
    drop(workers);
}

async fn api_error(app: &TestApp, t: &str, op: &str, body: Value) -> String {
    let (status, answer) = crate::harness::api_call(app, t, op, body).await;
    assert_eq!(status, 400, "{op}: {answer}");
    answer["__type"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_rollback_deploys_the_earlier_release_again_by_hand_or_when_the_stage_fails() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let events = shared_dir();
    let hosts = tempfile::tempdir().unwrap();
    std::fs::set_permissions(hosts.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = hosts.path().join("srv/app");
    repository(repo.path());
    write_app(repo.path(), events.path(), 0);
    commit(repo.path(), "app.txt", "release one");
    let path = repo.path().display().to_string();
    let mut p = deploy_pipeline("site", &path, &target, 5);
    p["pipelineType"] = json!("V2");
    p["executionMode"] = json!("QUEUED");
    p["stages"][1]["onFailure"] = json!({"result": "ROLLBACK"});
    ok(&app, &t, "CreatePipeline", json!({"pipeline": p})).await;
    let e1 = first_execution(&app, &t, "site").await;
    assert_eq!(ended(&app, &t, "site", &e1).await, "Succeeded");
    commit(repo.path(), "app.txt", "release two");
    let e2 = start(&app, &t, "site").await;
    assert_eq!(ended(&app, &t, "site", &e2).await, "Succeeded");
    assert_eq!(
        std::fs::read_to_string(target.join("current/app.txt")).unwrap(),
        "release two"
    );

    // By hand: the Deploy stage again, with e1's artifact.
    let rolled = ok(
        &app,
        &t,
        "RollbackStage",
        json!({"pipelineName": "site", "stageName": "Deploy", "targetPipelineExecutionId": e1}),
    )
    .await["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ended(&app, &t, "site", &rolled).await, "Succeeded");
    assert_eq!(
        std::fs::read_to_string(target.join("current/app.txt")).unwrap(),
        "release one",
        "the earlier release is back"
    );
    assert_eq!(current(&target), Path::new("releases").join(&rolled));
    let got = ok(
        &app,
        &t,
        "GetPipelineExecution",
        json!({"pipelineName": "site", "pipelineExecutionId": rolled}),
    )
    .await;
    let got = &got["pipelineExecution"];
    assert_eq!(got["executionType"], "ROLLBACK");
    assert_eq!(
        got["rollbackMetadata"]["rollbackTargetPipelineExecutionId"],
        e1.as_str()
    );
    assert_eq!(got["trigger"]["triggerType"], "ManualRollback");
    // Only the stage ran: no source attempt of its own.
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let stages: Vec<i32> = sqlx::query_scalar(
        "SELECT stage_index FROM action_executions WHERE execution_id = $1::uuid ORDER BY stage_index",
    )
    .bind(&rolled)
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(stages, [1]);

    // What CodePipeline refuses.
    let refused = |stage: &str, target: &str| json!({"pipelineName": "site", "stageName": stage, "targetPipelineExecutionId": target});
    assert_eq!(
        api_error(&app, &t, "RollbackStage", refused("Source", &e1)).await,
        "UnableToRollbackStageException"
    );
    assert_eq!(
        api_error(&app, &t, "RollbackStage", refused("Deploy", &rolled)).await,
        "UnableToRollbackStageException"
    );
    assert_eq!(
        api_error(
            &app,
            &t,
            "RollbackStage",
            refused("Deploy", &uuid::Uuid::new_v4().to_string())
        )
        .await,
        "PipelineExecutionNotFoundException"
    );
    assert_eq!(
        api_error(&app, &t, "RollbackStage", refused("Nope", &e1)).await,
        "StageNotFoundException"
    );

    // Automatically: the stage fails (its ValidateService), and the stage rolls back to the last
    // execution that succeeded in it.
    write_app(repo.path(), events.path(), 4);
    commit(repo.path(), "app.txt", "release three");
    let e3 = start(&app, &t, "site").await;
    assert_eq!(ended(&app, &t, "site", &e3).await, "Failed");
    let mut automatic = None;
    for _ in 0..600 {
        let list = ok(
            &app,
            &t,
            "ListPipelineExecutions",
            json!({"pipelineName": "site"}),
        )
        .await;
        automatic = list["pipelineExecutionSummaries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["trigger"]["triggerType"] == "AutomatedRollback")
            .cloned();
        if automatic.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let automatic = automatic.expect("the failed stage rolled back");
    assert_eq!(automatic["executionType"], "ROLLBACK");
    // The last execution that succeeded in Deploy was the manual rollback's target chain: e2's
    // successor that succeeded there is the rollback itself, which is not a target; so e2.
    assert_eq!(
        automatic["rollbackMetadata"]["rollbackTargetPipelineExecutionId"],
        e2.as_str()
    );
    let id = automatic["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ended(&app, &t, "site", &id).await, "Succeeded");
    assert_eq!(
        std::fs::read_to_string(target.join("current/app.txt")).unwrap(),
        "release two"
    );
    // One automatic rollback, not a chain of them.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let list = ok(
        &app,
        &t,
        "ListPipelineExecutions",
        json!({"pipelineName": "site"}),
    )
    .await;
    let rollbacks = list["pipelineExecutionSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["executionType"] == "ROLLBACK")
        .count();
    assert_eq!(rollbacks, 2);

    // The console offers it on an execution's page, and does it.
    let page = app.page(&format!("/pipelines/site/executions/{e1}")).await;
    assert!(
        page.contains("Roll back Deploy to this execution"),
        "{page}"
    );
    let admin = app.sign_in("admin", crate::harness::ADMIN_PASSWORD).await;
    let done = app
        .post_form(
            &admin,
            "/pipelines/site/stages/Deploy/rollback",
            &[("execution", &e1)],
        )
        .await;
    assert_eq!(done.status(), 303);
    let location = done.headers()["location"].to_str().unwrap().to_string();
    let console_rollback = location
        .trim_start_matches("/pipelines/site/executions/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        ended(&app, &t, "site", &console_rollback).await,
        "Succeeded"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("current/app.txt")).unwrap(),
        "release one"
    );

    // A new version of the pipeline: the old executions are outdated targets.
    let mut current_pipeline =
        ok(&app, &t, "GetPipeline", json!({"name": "site"})).await["pipeline"].clone();
    current_pipeline["stages"][1]["actions"][0]["configuration"]["KeepReleases"] = json!("3");
    ok(
        &app,
        &t,
        "UpdatePipeline",
        json!({"pipeline": current_pipeline}),
    )
    .await;
    assert_eq!(
        api_error(&app, &t, "RollbackStage", refused("Deploy", &e1)).await,
        "PipelineExecutionOutdatedException"
    );
}

#[tokio::test]
async fn a_stage_with_on_failure_retry_is_retried_once_by_itself() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    repository(repo.path());
    let marks = shared_dir();
    let mark = marks.path().join("tried");
    let spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - if [ -e {m} ]; then echo second; else touch {m}; exit 1; fi\n",
        m = mark.display()
    );
    let path = repo.path().display().to_string();
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": {"name": "flaky", "pipelineType": "V2", "stages": [
            crate::executions::source_stage(&path),
            {"name": "Build", "onFailure": {"result": "RETRY", "retryConfiguration": {"retryMode": "FAILED_ACTIONS"}},
             "actions": [{"name": "Flaky",
                "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
                "configuration": {"BuildSpec": spec}, "inputArtifacts": [{"name": "Src"}]}]}]}}),
    )
    .await;
    let e = first_execution(&app, &t, "flaky").await;
    let mut status = String::new();
    for _ in 0..3 {
        status = ended(&app, &t, "flaky", &e).await;
        if status == "Succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(
        status, "Succeeded",
        "retried once, and the second try passed"
    );
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let attempts: Vec<(i32, String)> = sqlx::query_as(
        "SELECT attempt, status FROM action_executions WHERE execution_id = $1::uuid AND stage_index = 1 ORDER BY attempt",
    )
    .bind(&e)
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(
        attempts,
        [(1, "Failed".to_string()), (2, "Succeeded".to_string())]
    );

    // Failing again after the automatic retry: it stays failed (one automatic retry).
    std::fs::remove_file(&mark).unwrap();
    std::fs::write(marks.path().join("x"), "").unwrap();
    let spec_always = "version: 0.2\nphases:\n  build:\n    commands:\n      - exit 1\n";
    let mut p = ok(&app, &t, "GetPipeline", json!({"name": "flaky"})).await["pipeline"].clone();
    p["stages"][1]["actions"][0]["configuration"]["BuildSpec"] = json!(spec_always);
    ok(&app, &t, "UpdatePipeline", json!({"pipeline": p})).await;
    let e2 = start(&app, &t, "flaky").await;
    let mut attempts = Vec::new();
    for _ in 0..200 {
        attempts = sqlx::query_as::<_, (i32, String)>(
            "SELECT attempt, status FROM action_executions WHERE execution_id = $1::uuid AND stage_index = 1 ORDER BY attempt",
        )
        .bind(&e2)
        .fetch_all(&mut c)
        .await
        .unwrap();
        if attempts.len() == 2 && attempts[1].1 != "InProgress" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        attempts,
        [(1, "Failed".to_string()), (2, "Failed".to_string())]
    );
    assert_eq!(ended(&app, &t, "flaky", &e2).await, "Failed");
}

#[tokio::test]
async fn of_a_crowd_of_rollbacks_asked_at_once_one_runs() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let hosts = tempfile::tempdir().unwrap();
    std::fs::set_permissions(hosts.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = hosts.path().join("srv/app");
    repository(repo.path());
    // A deploy that takes a while: the crowd arrives while the first rollback runs.
    std::fs::write(repo.path().join("slow.sh"), "sleep 3\n").unwrap();
    std::fs::write(
        repo.path().join("appspec.yml"),
        "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n    - location: slow.sh\n",
    )
    .unwrap();
    commit(repo.path(), "app.txt", "one");
    let path = repo.path().display().to_string();
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": deploy_pipeline("crowd", &path, &target, 5)}),
    )
    .await;
    let e1 = first_execution(&app, &t, "crowd").await;
    assert_eq!(ended(&app, &t, "crowd", &e1).await, "Succeeded");
    let body =
        json!({"pipelineName": "crowd", "stageName": "Deploy", "targetPipelineExecutionId": e1});
    let asks = (0..12).map(|_| crate::harness::api_call(&app, &t, "RollbackStage", body.clone()));
    let answers = futures_util::future::join_all(asks).await;
    let started: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, a)| a)
        .collect();
    assert_eq!(started.len(), 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(_, a)| a["__type"] == "UnableToRollbackStageException"),
        "{answers:?}"
    );
    let id = started[0]["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ended(&app, &t, "crowd", &id).await, "Succeeded");
}
