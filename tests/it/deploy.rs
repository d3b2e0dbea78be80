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
