//! Pipelines that start by themselves: push webhooks in each host's format (signed right, signed
//! wrong, sent twice), a V2 trigger's filters, and polling picking up a new commit.

use serde_json::{Value, json};
use sluice::pipeline::push::{Host, signed_headers};

use crate::executions::{
    commit, first_execution, repository, source_stage, wait_for_end, workers_app,
};
use crate::harness::{ADMIN_PASSWORD, TestApp, api_ok as ok};

fn pipeline(name: &str, repo: &str, extra: Value) -> Value {
    let mut p = json!({"name": name, "stages": [
        source_stage(repo),
        {"name": "Build", "actions": [{"name": "Echo",
            "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
            "configuration": {"BuildSpec": "version: 0.2\nphases:\n  build:\n    commands:\n      - cat app.txt\n"},
            "inputArtifacts": [{"name": "Src"}]}]}]});
    if let Value::Object(more) = extra {
        for (k, v) in more {
            p[k] = v;
        }
    }
    p
}

/// Makes the hook's secret through the console, and reads it back from the triggers page.
async fn hook_secret(app: &TestApp, pipeline: &str) -> String {
    let admin = app.sign_in("admin", ADMIN_PASSWORD).await;
    let made = app
        .post_form(
            &admin,
            &format!("/pipelines/{pipeline}/triggers/secret"),
            &[("action", "Checkout")],
        )
        .await;
    assert_eq!(made.status(), 303);
    let page = admin
        .get(app.url(&format!("/pipelines/{pipeline}/triggers")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!(
            "{}/hooks/{pipeline}/Checkout",
            app.url("").trim_end_matches('/')
        )),
        "{page}"
    );
    let at =
        page.find(r#"<code class="hook-secret">"#).unwrap() + r#"<code class="hook-secret">"#.len();
    page[at..at + page[at..].find('<').unwrap()].to_string()
}

/// A push payload in `host`'s format, with the headers it would come with (unsigned).
fn push(
    host: Host,
    branch: &str,
    sha: &str,
    files: &[&str],
    delivery: &str,
) -> (Vec<(String, String)>, Vec<u8>) {
    let commits = json!([{"id": sha, "added": files, "modified": [], "removed": []}]);
    let (headers, body): (Vec<(&str, &str)>, Value) = match host {
        Host::GitHub => (
            vec![("X-GitHub-Event", "push"), ("X-GitHub-Delivery", delivery)],
            json!({"ref": format!("refs/heads/{branch}"), "after": sha, "commits": commits}),
        ),
        Host::Gitea => (
            vec![
                ("X-Gitea-Event", "push"),
                ("X-GitHub-Event", "push"),
                ("X-Gitea-Delivery", delivery),
            ],
            json!({"ref": format!("refs/heads/{branch}"), "after": sha, "commits": commits}),
        ),
        Host::GitLab => (
            vec![
                ("X-Gitlab-Event", "Push Hook"),
                ("X-Gitlab-Event-UUID", delivery),
            ],
            json!({"ref": format!("refs/heads/{branch}"), "after": sha, "checkout_sha": sha, "commits": commits}),
        ),
        Host::Bitbucket => (
            vec![("X-Event-Key", "repo:push"), ("X-Request-UUID", delivery)],
            json!({"push": {"changes": [{"new": {"type": "branch", "name": branch, "target": {"hash": sha}}}]}}),
        ),
    };
    (
        headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        serde_json::to_vec(&body).unwrap(),
    )
}

async fn deliver(
    app: &TestApp,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(app.url(path))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn executions(app: &TestApp, t: &str, name: &str) -> Vec<Value> {
    ok(
        app,
        t,
        "ListPipelineExecutions",
        json!({"pipelineName": name}),
    )
    .await["pipelineExecutionSummaries"]
        .as_array()
        .unwrap()
        .clone()
}

/// The commit an execution's source checked out.
async fn revision(app: &TestApp, t: &str, name: &str, id: &str) -> String {
    executions(app, t, name)
        .await
        .into_iter()
        .find(|e| e["pipelineExecutionId"] == id)
        .and_then(|e| {
            e["sourceRevisions"][0]["revisionId"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_push_webhook_from_each_host_starts_the_pipeline_once_and_only_signed_by_its_secret() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    repository(repo.path());
    let path = repo.path().display().to_string();
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": pipeline("hooked", &path, json!({}))}),
    )
    .await;
    let first = first_execution(&app, &t, "hooked").await;
    wait_for_end(&app, &t, "hooked", &first).await;

    // No secret yet: the hook is not there.
    let (headers, body) = push(Host::GitHub, "main", &"a".repeat(40), &[], "d0");
    let (status, _) = deliver(&app, "/hooks/hooked/Checkout", &headers, &body).await;
    assert_eq!(status, 404);
    let secret = hook_secret(&app, "hooked").await;
    assert!(
        secret.starts_with("whsec_") && secret.len() > 30,
        "{secret}"
    );

    for (i, host) in [Host::GitHub, Host::GitLab, Host::Gitea, Host::Bitbucket]
        .into_iter()
        .enumerate()
    {
        let sha = commit(repo.path(), "app.txt", &format!("change {i}"));
        let delivery = format!("delivery-{i}");
        let (mut headers, body) = push(host, "main", &sha, &["app.txt"], &delivery);
        let before = executions(&app, &t, "hooked").await.len();

        // Signed with another secret: refused, nothing starts.
        let mut forged = headers.clone();
        forged.extend(
            signed_headers(host, "not-the-secret", &body)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        );
        let (status, answer) = deliver(&app, "/hooks/hooked/Checkout", &forged, &body).await;
        assert_eq!(status, 401, "{host:?}: {answer}");
        // Unsigned: refused too.
        let (status, _) = deliver(&app, "/hooks/hooked/Checkout", &headers, &body).await;
        assert_eq!(status, 401, "{host:?}");
        assert_eq!(executions(&app, &t, "hooked").await.len(), before);

        headers.extend(
            signed_headers(host, &secret, &body)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        );
        let started = std::time::Instant::now();
        let (status, answer) = deliver(&app, "/hooks/hooked/Checkout", &headers, &body).await;
        assert_eq!(status, 202, "{host:?}: {answer}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let id = answer["pipelineExecutionId"].as_str().unwrap().to_string();
        // The same delivery again (a replay, or the host retrying): nothing more starts.
        let (status, again) = deliver(&app, "/hooks/hooked/Checkout", &headers, &body).await;
        assert_eq!(
            (status, again["status"].as_str()),
            (200, Some("duplicate")),
            "{host:?}"
        );

        let end = wait_for_end(&app, &t, "hooked", &id).await;
        assert_eq!(end["status"], "Succeeded", "{host:?}: {end}");
        assert_eq!(end["trigger"]["triggerType"], "Webhook", "{end}");
        assert!(
            end["trigger"]["triggerDetail"]
                .as_str()
                .unwrap()
                .contains(&delivery),
            "{end}"
        );
        assert_eq!(revision(&app, &t, "hooked", &id).await, sha, "{host:?}");
        assert_eq!(executions(&app, &t, "hooked").await.len(), before + 1);
    }

    // A push to another branch starts nothing, and says why.
    let (mut headers, body) = push(Host::GitHub, "dev", &"b".repeat(40), &[], "d-dev");
    headers.extend(
        signed_headers(Host::GitHub, &secret, &body)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
    );
    let (status, answer) = deliver(&app, "/hooks/hooked/Checkout", &headers, &body).await;
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "ignored");

    // The triggers page lists what came, refusals included; a viewer does not see the secret.
    let page = app.page("/pipelines/hooked/triggers").await;
    for said in [
        "refused: the signature is not this hook&#39;s",
        "started an execution at",
        "ignored: not a push to the action&#39;s branch",
        "GitLab",
        "Bitbucket",
        "Gitea/Forgejo",
    ] {
        assert!(page.contains(said), "{said}: {page}");
    }
    crate::harness::user_with_policy(
        &app,
        &t,
        "viewer",
        Some(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["codepipeline:GetPipeline"], "Resource": "*"}]}),
        ),
    )
    .await;
    let viewer_client = app.sign_in("viewer", crate::harness::USER_PASSWORD).await;
    let seen = viewer_client
        .get(app.url("/pipelines/hooked/triggers"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!seen.contains(&secret), "a viewer never sees the secret");
    assert!(seen.contains("Set (shown to those allowed codepipeline:PutWebhook)"));
    let denied = app
        .post_form(
            &viewer_client,
            "/pipelines/hooked/triggers/secret",
            &[("action", "Checkout"), ("replace", "true")],
        )
        .await;
    assert_eq!(denied.status(), 403);
}

#[tokio::test]
async fn a_v2_trigger_filters_pushes_by_branch_path_and_tag() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    repository(repo.path());
    let path = repo.path().display().to_string();
    let triggers = json!({"pipelineType": "V2", "triggers": [{"providerType": "CodeStarSourceConnection",
        "gitConfiguration": {"sourceActionName": "Checkout", "push": [
            {"branches": {"includes": ["main"]}, "filePaths": {"excludes": ["docs/**"]}},
            {"tags": {"includes": ["v*"]}}]}}]});
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": pipeline("filtered", &path, triggers)}),
    )
    .await;
    let first = first_execution(&app, &t, "filtered").await;
    wait_for_end(&app, &t, "filtered", &first).await;
    let secret = hook_secret(&app, "filtered").await;
    let send = async |headers: Vec<(String, String)>, body: Vec<u8>| {
        let mut headers = headers;
        headers.extend(
            signed_headers(Host::GitHub, &secret, &body)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        );
        deliver(&app, "/hooks/filtered/Checkout", &headers, &body).await
    };

    // Only docs changed: excluded, nothing starts.
    let sha = commit(repo.path(), "app.txt", "docs only");
    let (h, b) = push(Host::GitHub, "main", &sha, &["docs/guide.md"], "f1");
    let (status, answer) = send(h, b).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("ignored")),
        "{answer}"
    );
    assert!(
        answer["reason"].as_str().unwrap().contains("no filter"),
        "{answer}"
    );
    assert_eq!(executions(&app, &t, "filtered").await.len(), 1);

    // Code changed too: it starts, as a V2 trigger.
    let (h, b) = push(
        Host::GitHub,
        "main",
        &sha,
        &["docs/guide.md", "src/main.rs"],
        "f2",
    );
    let (status, answer) = send(h, b).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["pipelineExecutionId"].as_str().unwrap().to_string();
    let end = wait_for_end(&app, &t, "filtered", &id).await;
    assert_eq!(end["trigger"]["triggerType"], "WebhookV2");

    // A tag that matches starts; one that does not, does not.
    let tag = |name: &str, delivery: &str| {
        let body =
            serde_json::to_vec(&json!({"ref": format!("refs/tags/{name}"), "after": sha})).unwrap();
        (
            vec![
                ("X-GitHub-Event".to_string(), "push".to_string()),
                ("X-GitHub-Delivery".to_string(), delivery.to_string()),
            ],
            body,
        )
    };
    let (h, b) = tag("latest", "f3");
    assert_eq!(send(h, b).await.1["status"], "ignored");
    let (h, b) = tag("v1.0", "f4");
    let (status, answer) = send(h, b).await;
    assert_eq!(status, 202, "{answer}");
    wait_for_end(
        &app,
        &t,
        "filtered",
        answer["pipelineExecutionId"].as_str().unwrap(),
    )
    .await;
    assert_eq!(executions(&app, &t, "filtered").await.len(), 3);

    // A ping says the hook works; an event Sluice does not start on is ignored.
    let ping = br#"{"zen": "Keep it logically awesome."}"#.to_vec();
    let (status, answer) = send(
        vec![
            ("X-GitHub-Event".into(), "ping".into()),
            ("X-GitHub-Delivery".into(), "p1".into()),
        ],
        ping,
    )
    .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));
    let (status, answer) = send(
        vec![
            ("X-GitHub-Event".into(), "issues".into()),
            ("X-GitHub-Delivery".into(), "i1".into()),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));
    // A payload that is not one, correctly signed, is refused saying so.
    let (status, answer) = send(
        vec![
            ("X-GitHub-Event".into(), "push".into()),
            ("X-GitHub-Delivery".into(), "j1".into()),
        ],
        b"not json".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test]
async fn polling_starts_the_pipeline_when_its_branch_moves_and_only_then() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    repository(repo.path());
    let path = repo.path().display().to_string();
    // V1: polled by default (the test server polls every second).
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": pipeline("polled", &path, json!({"pipelineType": "V1"}))}),
    )
    .await;
    let first = first_execution(&app, &t, "polled").await;
    wait_for_end(&app, &t, "polled", &first).await;
    // A few polls pass: nothing new, nothing starts.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(executions(&app, &t, "polled").await.len(), 1);

    let sha = commit(repo.path(), "app.txt", "polled change");
    let mut found = None;
    for _ in 0..200 {
        let all = executions(&app, &t, "polled").await;
        if all.len() > 1 {
            found = Some(all[0].clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let started = found.expect("polling started the pipeline");
    assert_eq!(
        started["trigger"]["triggerType"], "PollForSourceChanges",
        "{started}"
    );
    let id = started["pipelineExecutionId"].as_str().unwrap();
    let end = wait_for_end(&app, &t, "polled", id).await;
    assert_eq!(end["status"], "Succeeded");
    assert_eq!(revision(&app, &t, "polled", id).await, sha);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        executions(&app, &t, "polled").await.len(),
        2,
        "one commit, one execution"
    );

    // A V2 pipeline is not polled unless it asks.
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": pipeline("unpolled", &path, json!({}))}),
    )
    .await;
    let first = first_execution(&app, &t, "unpolled").await;
    wait_for_end(&app, &t, "unpolled", &first).await;
    commit(repo.path(), "app.txt", "another change");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(executions(&app, &t, "unpolled").await.len(), 1);
}

#[tokio::test]
async fn a_crowd_of_copies_of_one_delivery_starts_exactly_one_execution() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    repository(repo.path());
    let path = repo.path().display().to_string();
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": pipeline("crowded", &path, json!({}))}),
    )
    .await;
    let first = first_execution(&app, &t, "crowded").await;
    wait_for_end(&app, &t, "crowded", &first).await;
    let secret = hook_secret(&app, "crowded").await;
    let sha = commit(repo.path(), "app.txt", "crowd");
    let (mut headers, body) = push(Host::GitHub, "main", &sha, &["app.txt"], "same-delivery");
    headers.extend(
        signed_headers(Host::GitHub, &secret, &body)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
    );
    let sends = (0..24).map(|_| deliver(&app, "/hooks/crowded/Checkout", &headers, &body));
    let answers = futures_util::future::join_all(sends).await;
    let started: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 202)
        .map(|(_, a)| a)
        .collect();
    assert_eq!(started.len(), 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|(status, _)| *status != 202)
            .all(|(status, a)| *status == 200 && a["status"] == "duplicate"),
        "{answers:?}"
    );
    assert_eq!(executions(&app, &t, "crowded").await.len(), 2);
}
