//! Scale-out: `sluice worker` processes and several servers sharing one database; what happens
//! when a worker is killed outright; the leader that runs the periodic work once for all of them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::harness::{
    ADMIN_PASSWORD, SluiceProcess, TestApp, api_ok as ok, artifact_dir, spawn_app, spawn_peer,
};

/// A `sluice worker` process on the app's database, master key and artifact directory.
pub fn worker(app: &TestApp, workers: u16, lease_seconds: u32) -> SluiceProcess {
    worker_with(app, workers, lease_seconds, &[])
}

/// The same, with more arguments.
pub fn worker_with(
    app: &TestApp,
    workers: u16,
    lease_seconds: u32,
    more: &[&str],
) -> SluiceProcess {
    let data = crate::harness::temp_dir();
    let mut cmd = crate::harness::sluice_command();
    cmd.args(["worker", "--workers", &workers.to_string()])
        .args(more)
        .args(["--lease-seconds", &lease_seconds.to_string()])
        .arg("--artifact-store")
        .arg(artifact_dir())
        .arg("--data-dir")
        .arg(data.path())
        .args(["--shutdown-timeout", "5"])
        .env("DATABASE_URL", app.db.url())
        .env("SLUICE_MASTER_KEY", &app.master_key);
    // The directory only has to outlive the start (the worker reads its key from the environment).
    std::mem::forget(data);
    SluiceProcess::spawn(cmd)
}

async fn conn(app: &TestApp) -> PgConnection {
    PgConnection::connect_with(&app.db.options).await.unwrap()
}

/// Waits (up to a minute) until `sql`, a query of one boolean, is true.
async fn until(app: &TestApp, what: &str, sql: &'static str) {
    let mut c = conn(app).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done: Option<bool> = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
        if done == Some(true) {
            return;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pipeline(name: &str, repo: &str, spec: &str) -> Value {
    json!({"name": name, "executionMode": "PARALLEL", "stages": [
        {"name": "Source", "actions": [{"name": "Checkout",
            "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
            "configuration": {"RepositoryUrl": repo, "Branch": "main"}, "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Build", "actions": [{"name": "Compile",
            "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
            "configuration": {"BuildSpec": spec}, "inputArtifacts": [{"name": "Src"}]}]}
    ]})
}

async fn statuses(c: &mut PgConnection, name: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT e.status FROM pipeline_executions e JOIN pipelines p ON p.id = e.pipeline_id \
         WHERE p.name = $1 ORDER BY e.seq",
    )
    .bind(name)
    .fetch_all(c)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_worker_joins_its_deployment_groups_by_its_labels_and_bad_labels_stop_the_start() {
    let app = spawn_app().await;
    app.setup_admin().await;
    let t = app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await;
    let _worker = worker_with(&app, 1, 30, &["--labels", " Web,eu-West.1 ,web"]);
    until(
        &app,
        "the worker registered",
        "SELECT count(*) = 1 FROM worker_pools WHERE kind = 'worker' AND stopped_at IS NULL",
    )
    .await;
    let listed = ok(&app, &t, "ListWorkers", json!({})).await;
    let pools = listed["workerPools"].as_array().unwrap();
    let labelled: Vec<&Value> = pools.iter().filter(|p| p["command"] == "worker").collect();
    // Stored canonical: lowercase, sorted, each once; the server has none.
    assert_eq!(
        labelled[0]["labels"],
        json!(["eu-west.1", "web"]),
        "{listed}"
    );
    assert!(
        pools
            .iter()
            .any(|p| p["command"] == "serve" && p["labels"] == json!([]))
    );
    let page = app.page("/admin/workers").await;
    assert!(
        page.contains(r#"<span class="tag">eu-west.1</span> <span class="tag">web</span>"#),
        "{page}"
    );

    for (labels, expected) in [
        ("web,,eu", "empty label"),
        ("bad label", "\"bad label\" is not a label"),
        ("<script>", "is not a label"),
    ] {
        let (code, _, err) = crate::harness::run_sluice(&["worker", "--labels", labels], &[]);
        assert_eq!(code, 2, "{labels}: {err}");
        assert!(
            err.contains("--labels") && err.contains(expected),
            "{labels}: {err}"
        );
    }
}

#[tokio::test]
async fn two_servers_and_two_worker_processes_share_one_database() {
    let app = spawn_app().await;
    app.setup_admin().await;
    let t = app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await;
    let peer = spawn_peer(&app, 0).await;
    let mut workers = vec![worker(&app, 2, 30), worker(&app, 2, 30)];
    let mut c = conn(&app).await;
    until(
        &app,
        "both worker pools registered",
        "SELECT count(*) = 2 FROM worker_pools WHERE kind = 'worker' AND stopped_at IS NULL",
    )
    .await;
    let listed = ok(&app, &t, "ListWorkers", json!({})).await;
    let pools = listed["workerPools"].as_array().unwrap();
    // Every process is listed; the two servers here run no workers.
    let (worker_pools, server_pools): (Vec<&Value>, Vec<&Value>) =
        pools.iter().partition(|p| p["command"] == "worker");
    assert_eq!(worker_pools.len(), 2, "{listed}");
    assert!(
        worker_pools
            .iter()
            .all(|p| p["state"] == "Running" && p["workers"] == 2)
    );
    assert_eq!(server_pools.len(), 2, "{listed}");
    assert!(
        server_pools
            .iter()
            .all(|p| p["command"] == "serve" && p["workers"] == 0)
    );
    let page = app
        .client
        .get(app.url("/admin/workers"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("0 of 4 workers busy") && page.contains("sluice worker (pid"),
        "{page}"
    );

    let repo = tempfile::tempdir().unwrap();
    let (path, _) = crate::executions::repository(repo.path());
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - sleep 0.3\n";
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": pipeline("shared", &path, spec)}),
    )
    .await;
    // Half the starts through the other server.
    for i in 0..7 {
        if i % 2 == 0 {
            let res = reqwest::Client::new()
                .post(format!("{peer}/api/v1/StartPipelineExecution"))
                .bearer_auth(&t)
                .json(&json!({"name": "shared"}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        } else {
            ok(
                &app,
                &t,
                "StartPipelineExecution",
                json!({"name": "shared"}),
            )
            .await;
        }
    }
    until(
        &app,
        "every execution ended",
        "SELECT count(*) = 8 AND bool_and(status <> 'InProgress') FROM pipeline_executions",
    )
    .await;
    assert!(
        statuses(&mut c, "shared")
            .await
            .iter()
            .all(|s| s == "Succeeded"),
        "{:?}\n{}",
        statuses(&mut c, "shared").await,
        workers[0].stderr()
    );
    let (pools, jobs): (i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT j.claimed_by), count(*) FROM jobs j \
         JOIN worker_pools w ON w.id = j.claimed_by WHERE w.kind = 'worker'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(jobs, 16, "every action ran on a worker process");
    assert_eq!(pools, 2, "both worker processes took jobs");
    let succeeded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM action_executions WHERE status = 'Succeeded'")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(succeeded, 16);

    // Four processes, one leader.
    let leaders = || async {
        let mut c = conn(&app).await;
        let n: i64 = sqlx::query_scalar(
            // The leader's lock is key 0x5117_CE00_0001 (high and low halves below).
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database() \
             AND l.classid = 20759 AND l.objid = 3456106497 AND l.objsubid = 1",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        n
    };
    assert_eq!(leaders().await, 1);

    // A stopped worker says so; the others carry on.
    for w in &workers {
        w.signal(libc::SIGTERM);
    }
    for w in &mut workers {
        assert_eq!(w.wait_exit(), Some(0), "{}", w.stderr());
    }
    let stopped: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM worker_pools WHERE kind = 'worker' AND stopped_at IS NOT NULL",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(stopped, 2);
    assert_eq!(
        leaders().await,
        1,
        "a server leads once the workers are gone"
    );
}

#[tokio::test]
async fn a_worker_killed_mid_action_loses_its_lease_and_the_action_runs_once_more_elsewhere() {
    let app = spawn_app().await;
    app.setup_admin().await;
    let t = app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await;
    let scratch = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let started = scratch.path().join("started");
    // The first run announces itself and hangs; the run after the crash finishes.
    let spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - if [ -f {m} ]; then echo second run; else touch {m}; sleep 617; fi\n",
        m = started.display()
    );
    let mut doomed = worker(&app, 1, 3);
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = crate::executions::repository(repo.path());
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": pipeline("crashy", &path, &spec)}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the build never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Lines reach the database in batches of 100 ms: give the first run's a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        crate::executions::sleeping(617),
        "the first run is under way"
    );
    doomed.signal(libc::SIGKILL);
    doomed.wait_exit();
    // Its supervisor saw the worker die and took the build's whole process group with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while crate::executions::sleeping(617) {
        assert!(
            Instant::now() < deadline,
            "the killed worker's build is still running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = conn(&app).await;
    let _survivor = worker(&app, 1, 3);
    until(
        &app,
        "the execution ended",
        "SELECT bool_and(status <> 'InProgress') FROM pipeline_executions",
    )
    .await;
    assert_eq!(statuses(&mut c, "crashy").await, ["Succeeded"]);
    let (attempts, tries): (i64, i32) = sqlx::query_as(
        "SELECT count(*), max(j.attempt) FROM action_executions a JOIN jobs j ON j.id = a.job_id \
         WHERE a.stage_index = 1",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(attempts, 1, "one action attempt, recorded once");
    assert_eq!(
        tries, 2,
        "its job ran a second time after the lease expired"
    );
    let log: Vec<String> = sqlx::query_scalar(
        "SELECT l.text FROM action_logs l JOIN action_executions a ON a.id = l.action_execution_id \
         WHERE a.stage_index = 1 ORDER BY l.line",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert!(log.iter().any(|l| l.contains("try 1")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("try 2")), "{log:?}");
    assert!(log.iter().any(|l| l == "second run"), "{log:?}");
    let running: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'running'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(running, 0);
}

#[tokio::test]
async fn metrics_are_open_to_loopback_by_default_and_closed_when_not_allowed() {
    let app = spawn_app().await;
    for (allow, expected) in [(None, 200), (Some("10.0.0.0/8"), 401)] {
        let data = crate::harness::temp_dir();
        let mut cmd = crate::harness::sluice_command();
        cmd.args(["serve", "--workers", "0", "--bind", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data.path())
            .env("DATABASE_URL", app.db.url())
            .env("SLUICE_MASTER_KEY", &app.master_key);
        if let Some(range) = allow {
            cmd.args(["--metrics-allow", range]);
        }
        let mut server = SluiceProcess::spawn(cmd);
        let addr = server.wait_listening();
        let res = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), expected, "{allow:?}");
        if expected == 200 {
            assert!(res.text().await.unwrap().contains("sluice_database_up 1"));
        }
        server.signal(libc::SIGTERM);
        assert_eq!(server.wait_exit(), Some(0), "{}", server.stderr());
    }
}
