//! `sluice keys rotate`: with every process stopped, a new master key and a new root key
//! reseal every secret, data key and connection token in one transaction; afterwards the new
//! key opens everything (pipeline secrets reach builds, old artifacts open, private clones
//! work, the audit chain verifies across the rotation) and the old key opens nothing.

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::connections::{create_connection, git_server};
use crate::executions::{first_execution, wait_for_end};
use crate::harness::{TestApp, api_ok as ok, run_sluice, spawn_peer_with_key};

/// Private source (a connection) → a build with a pipeline secret that makes `Bin` → a test
/// that fails until `marker` exists.
fn pipeline(url: &str, marker: &std::path::Path) -> Value {
    let build = "version: 0.2\nenv:\n  secrets:\n    TOKEN: npm\nphases:\n  build:\n    commands:\n      - test \"$TOKEN\" = rotated-secret-77\n      - mkdir -p out && cp app.txt out/\nartifacts:\n  files: ['**/*']\n  base-directory: out\n";
    let test = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - grep -q plaintext-marker-4711 app.txt\n      - test -f {}\n",
        marker.display()
    );
    json!({"name": "rotating", "stages": [
        {"name": "Source", "actions": [{"name": "Checkout",
            "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
            "configuration": {"RepositoryUrl": url, "Branch": "main", "ConnectionName": "GitBot"},
            "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Build", "actions": [{"name": "Compile",
            "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
            "configuration": {"BuildSpec": build, "Secrets": "{\"npm\": \"rotated-secret-77\"}"},
            "inputArtifacts": [{"name": "Src"}], "outputArtifacts": [{"name": "Bin"}]}]},
        {"name": "Test", "actions": [{"name": "Check",
            "actionTypeId": {"category": "Test", "owner": "Sluice", "provider": "Command", "version": "1"},
            "configuration": {"BuildSpec": test},
            "inputArtifacts": [{"name": "Bin"}]}]}
    ]})
}

fn rotate(
    app: &TestApp,
    master_key: &str,
    new_key_file: &std::path::Path,
) -> (i32, String, String) {
    run_sluice(
        &[
            "keys",
            "rotate",
            "--new-key-file",
            new_key_file.to_str().unwrap(),
        ],
        &[
            ("DATABASE_URL", &app.db.url()),
            ("SLUICE_MASTER_KEY", master_key),
        ],
    )
}

fn verify(app: &TestApp, master_key: &str) -> (i32, String, String) {
    run_sluice(
        &["audit", "verify"],
        &[
            ("DATABASE_URL", &app.db.url()),
            ("SLUICE_MASTER_KEY", master_key),
        ],
    )
}

/// Every sealed value in the database, with where it is.
async fn sealed_values(c: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT m[1] FROM (
            SELECT regexp_matches(declaration::text, 'sluice:enc:v[12]:([0-9a-f]+):', 'g') AS m FROM pipeline_versions
            UNION ALL SELECT regexp_matches(wrapped, 'sluice:enc:v[12]:([0-9a-f]+):', 'g') FROM pipeline_data_keys
            UNION ALL SELECT regexp_matches(sealed_token, 'sluice:enc:v[12]:([0-9a-f]+):', 'g') FROM connections
         ) found",
    )
    .fetch_all(c)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_rotation_reseals_everything_and_the_old_master_key_opens_nothing() {
    let server = git_server();
    let (app, t) = crate::executions::workers_app().await;
    let scratch = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let marker = scratch.path().join("let-the-test-pass");
    create_connection(&app, &t, "GitBot", &server).await;
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": pipeline(&server.url(), &marker)}),
    )
    .await;
    let first = first_execution(&app, &t, "rotating").await;
    assert_eq!(
        wait_for_end(&app, &t, "rotating", &first).await["status"],
        "Failed",
        "the test stage fails until the marker exists"
    );
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let before = sealed_values(&mut c).await;
    assert!(
        before.len() >= 3,
        "a secret, a data key, a token: {before:?}"
    );
    assert!(verify(&app, &app.master_key).0 == 0);

    // Refused while a process holding the keys runs; nothing written.
    let keys_dir = tempfile::tempdir().unwrap();
    let new_key_file = keys_dir.path().join("new.key");
    let (code, _, err) = rotate(&app, &app.master_key, &new_key_file);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("stop every server and worker"), "{err}");
    assert!(!new_key_file.exists());
    app.stop().await;

    // A wrong master key is refused before anything is written.
    let (code, _, err) = rotate(
        &app,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        &new_key_file,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not open this database's keys"), "{err}");
    assert!(!new_key_file.exists());

    let (code, out, err) = rotate(&app, &app.master_key, &new_key_file);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "resealed 1 pipeline secret(s), 1 pipeline data key(s), 1 connection token(s)"
        ),
        "{out}"
    );
    let new_key = std::fs::read_to_string(&new_key_file).unwrap();
    let new_key = new_key.trim();
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&new_key_file)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let after = sealed_values(&mut c).await;
    assert_eq!(after.len(), before.len());
    assert!(
        after.iter().all(|id| !before.contains(id)),
        "every sealed value names the new root key: {before:?} → {after:?}"
    );

    // The old key opens nothing; the chain verifies with the new one, across the rotation.
    let (code, _, err) = verify(&app, &app.master_key);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not open this database's keys"), "{err}");
    let (code, out, err) = verify(&app, new_key);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("audit log intact"), "{out}");
    let (event,): (Value,) = sqlx::query_as(
        "SELECT request_parameters_text::jsonb FROM audit_events WHERE event_name = 'sluice:RotateKeys'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(event["pipelineSecrets"], 1, "{event}");

    // A server with the new key: the failed stage retried reads the artifact sealed before the
    // rotation; a new execution clones with the token and builds with the secret.
    let peer = spawn_peer_with_key(&app, 2, new_key).await;
    let on_peer = |op: &'static str, body: Value| {
        let url = format!("{peer}/api/v1/{op}");
        let t = t.clone();
        async move {
            let res = reqwest::Client::new()
                .post(url)
                .bearer_auth(t)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    std::fs::write(&marker, "").unwrap();
    let (status, out) = on_peer(
        "RetryStageExecution",
        json!({"pipelineName": "rotating", "stageName": "Test", "pipelineExecutionId": first, "retryMode": "FAILED_ACTIONS"}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let wait = |id: String| {
        let on_peer = &on_peer;
        async move {
            for _ in 0..400 {
                let (_, got) = on_peer(
                    "GetPipelineExecution",
                    json!({"pipelineName": "rotating", "pipelineExecutionId": id}),
                )
                .await;
                let status = got["pipelineExecution"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if status != "InProgress" {
                    return status;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("never ended");
        }
    };
    let failures: Vec<(i32, String, Option<String>)> = sqlx::query_as(
        "SELECT stage_index, status, summary FROM action_executions ORDER BY stage_index, attempt",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(wait(first.clone()).await, "Succeeded", "{failures:#?}");
    let (status, started) = on_peer("StartPipelineExecution", json!({"name": "rotating"})).await;
    assert_eq!(status, 200, "{started}");
    let second = started["pipelineExecutionId"].as_str().unwrap().to_string();
    let result = wait(second).await;
    let summaries: Vec<(i32, String, Option<String>)> = sqlx::query_as(
        "SELECT stage_index, status, summary FROM action_executions ORDER BY started_at",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(result, "Succeeded", "{summaries:#?}");
}

#[tokio::test]
async fn a_key_file_is_replaced_and_an_interrupted_rotation_is_finished_at_the_next_start() {
    let app = crate::harness::spawn_app().await;
    app.setup_admin().await;
    app.stop().await;
    let data = crate::harness::temp_dir();
    std::fs::write(
        data.path().join("master.key"),
        format!("{}\n", app.master_key),
    )
    .unwrap();
    let db_url = app.db.url();
    let rotate_in_dir = |extra: &[&str]| {
        let mut args = vec![
            "keys",
            "rotate",
            "--data-dir",
            data.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run_sluice(&args, &[("DATABASE_URL", &db_url)])
    };
    let (code, out, err) = rotate_in_dir(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is in"), "{out}");
    let replaced = std::fs::read_to_string(data.path().join("master.key")).unwrap();
    assert_ne!(
        replaced.trim(),
        app.master_key,
        "master.key holds the new key"
    );
    assert!(!data.path().join("master.key.next").exists());

    // As if a rotation committed and stopped before moving its key file into place.
    let next = data.path().join("master.key.next");
    let (code, _, err) = rotate_in_dir(&["--new-key-file", next.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let newest = std::fs::read_to_string(&next).unwrap();
    let (code, _, err) = verify(&app, replaced.trim());
    assert_eq!(code, 2, "master.key no longer opens the keys: {err}");
    let mut cmd = crate::harness::sluice_command();
    cmd.args(["worker", "--workers", "1", "--data-dir"])
        .arg(data.path())
        .env("DATABASE_URL", &db_url);
    let mut worker = crate::harness::SluiceProcess::spawn(cmd);
    assert!(
        crate::harness::eventually(std::time::Duration::from_secs(20), || !next.exists()),
        "{}",
        worker.stderr()
    );
    assert_eq!(
        std::fs::read_to_string(data.path().join("master.key")).unwrap(),
        newest
    );
    // The line is written after the move; its reader may not have it yet.
    assert!(
        crate::harness::eventually(std::time::Duration::from_secs(20), || worker
            .stderr()
            .contains("finished an interrupted key rotation")),
        "{}",
        worker.stderr()
    );
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    for _ in 0..400 {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM worker_pools WHERE kind = 'worker' AND stopped_at IS NULL",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        if running == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    worker.signal(libc::SIGTERM);
    assert_eq!(worker.wait_exit(), Some(0), "{}", worker.stderr());
    assert_eq!(verify(&app, newest.trim()).0, 0);
}

#[tokio::test]
async fn processes_starting_at_once_on_a_new_database_make_one_keyring() {
    let db = crate::harness::TestDatabase::migrated().await;
    let pool = sluice::db::connect(db.options.clone(), 10).await.unwrap();
    let master = sluice::sealing::MasterKey::from_bytes([9u8; 32]);
    let loads =
        (0..10).map(|_| sluice::ops::keys::load(&pool, &master, time::OffsetDateTime::now_utc()));
    let keys = futures_util::future::join_all(loads).await;
    let roots: std::collections::BTreeSet<String> = keys
        .into_iter()
        .map(|k| k.unwrap().root.id().to_string())
        .collect();
    assert_eq!(roots.len(), 1, "{roots:?}");
    // The first root key is the master key itself: what was sealed before still opens.
    assert_eq!(roots.into_iter().next().unwrap(), master.id());
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM keyring")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 2);
    pool.close().await;
}
