//! Webhook invoke actions against an HTTP server the test starts: the job it receives, its
//! signature, the input artifact behind the signed link, and each kind of answer (success with
//! variables, continuation, failure, a 503 tried again, a redirect, an oversized answer), and the
//! refusal of private addresses by a worker not allowed them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::executions::{commit, first_execution, repository, wait_for_end, workers_app};
use crate::harness::{TestApp, api_ok as ok};

/// What the endpoint received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An answer: status, extra headers, body.
pub type Reply = (u16, Vec<(String, String)>, Vec<u8>);

/// A plain HTTP/1.1 server on 127.0.0.1 answering each request with `respond(n, request)` (n
/// from 0), recording every request.
pub struct Endpoint {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Endpoint {
    pub async fn start<F>(respond: F) -> Endpoint
    where
        F: Fn(usize, &Received) -> Reply + Send + Sync + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let respond = Arc::new(respond);
        let log = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (log, respond) = (log.clone(), respond.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(request.clone());
                        log.len() - 1
                    };
                    let (status, headers, body) = respond(n, &request);
                    let mut head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        body.len()
                    );
                    for (k, v) in headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&body).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Endpoint { url, received }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Some(Received {
        path,
        headers,
        body,
    })
}

fn answer(value: Value) -> Reply {
    (
        200,
        vec![("Content-Type".into(), "application/json".into())],
        serde_json::to_vec(&value).unwrap(),
    )
}

const SECRET: &str = "whsec-0123456789abcdef";

fn pipeline(name: &str, repo: &str, url: &str) -> Value {
    json!({"name": name, "stages": [
        crate::executions::source_stage(repo),
        {"name": "Notify", "actions": [{"name": "CallHook", "namespace": "Hook",
            "actionTypeId": {"category": "Invoke", "owner": "Sluice", "provider": "Webhook", "version": "1"},
            "configuration": {"Url": url, "Secret": SECRET, "UserParameters": "env=prod\nregion=eu"},
            "inputArtifacts": [{"name": "Src"}]}]}]})
}

/// The webhook action's last attempt: status, summary, output variables.
async fn outcome(app: &TestApp, t: &str, name: &str, execution: &str) -> (String, String, Value) {
    let listed = ok(
        app,
        t,
        "ListActionExecutions",
        json!({"pipelineName": name, "filter": {"pipelineExecutionId": execution}}),
    )
    .await;
    let hook = listed["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["actionName"] == "CallHook")
        .cloned()
        .unwrap_or_else(|| panic!("{listed}"));
    (
        hook["status"].as_str().unwrap().to_string(),
        hook["output"]["executionResult"]["externalExecutionSummary"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        hook["output"]["outputVariables"].clone(),
    )
}

/// Runs the pipeline against an endpoint answering with `respond`; the execution's id and what
/// the endpoint received.
async fn run_against<F>(
    name: &str,
    respond: F,
) -> (TestApp, String, String, Endpoint, tempfile::TempDir)
where
    F: Fn(usize, &Received) -> Reply + Send + Sync + 'static,
{
    let (app, t) = workers_app().await;
    let endpoint = Endpoint::start(respond).await;
    let repo = tempfile::tempdir().unwrap();
    repository(repo.path());
    commit(repo.path(), "app.txt", "hello");
    let path = repo.path().display().to_string();
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": pipeline(name, &path, &format!("{}/hooks/deploy?x=1", endpoint.url))}),
    )
    .await;
    let e = first_execution(&app, &t, name).await;
    let mut status = Value::Null;
    for _ in 0..4 {
        status = wait_for_end(&app, &t, name, &e).await["status"].clone();
        if status != "InProgress" {
            break;
        }
    }
    assert_ne!(status, "InProgress");
    (app, t, e, endpoint, repo)
}

#[tokio::test]
async fn a_webhook_gets_a_signed_job_reads_its_input_through_the_link_and_its_variables_are_kept() {
    let (app, t, e, endpoint, _repo) = run_against("hooked", |_, _| {
        answer(json!({"status": "Succeeded", "summary": "deployed to prod",
                      "outputVariables": {"DeployUrl": "https://prod.example.com", "Build-No": "42"}}))
    })
    .await;
    let (status, summary, variables) = outcome(&app, &t, "hooked", &e).await;
    assert_eq!(status, "Succeeded");
    assert_eq!(summary, "deployed to prod");
    assert_eq!(
        variables,
        json!({"DeployUrl": "https://prod.example.com", "Build-No": "42"})
    );

    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.path, "/hooks/deploy?x=1");
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(r.headers["user-agent"].starts_with("Sluice/"));
    assert!(uuid::Uuid::parse_str(&r.headers["x-sluice-delivery"]).is_ok());
    // The signature is the HMAC-SHA256 of "<timestamp>.<body>" under the action's secret, and the
    // timestamp is now.
    let timestamp: i64 = r.headers["x-sluice-timestamp"].parse().unwrap();
    assert!((time::OffsetDateTime::now_utc().unix_timestamp() - timestamp).abs() < 120);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&r.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        r.headers["x-sluice-signature"],
        format!("sha256={expected}")
    );

    // The job: CodePipeline's shape, the attempt's id, the configuration without the secret.
    let job = &r.json()["CodePipeline.job"];
    let attempts = ok(
        &app,
        &t,
        "ListActionExecutions",
        json!({"pipelineName": "hooked", "filter": {"pipelineExecutionId": e}}),
    )
    .await;
    let hook_attempt = attempts["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["actionName"] == "CallHook")
        .unwrap()["actionExecutionId"]
        .clone();
    assert_eq!(job["id"], hook_attempt);
    assert_eq!(job["accountId"], "000000000000");
    let data = &job["data"];
    assert_eq!(
        data["actionConfiguration"]["configuration"]["UserParameters"],
        "env=prod\nregion=eu"
    );
    assert!(
        data["actionConfiguration"]["configuration"]
            .get("Secret")
            .is_none()
    );
    assert!(!String::from_utf8_lossy(&r.body).contains(SECRET));
    assert_eq!(data["pipelineContext"]["pipelineName"], "hooked");
    assert_eq!(data["pipelineContext"]["stage"]["name"], "Notify");
    assert_eq!(data["pipelineContext"]["action"]["name"], "CallHook");
    assert_eq!(data["pipelineContext"]["pipelineExecutionId"], e.as_str());
    assert!(data.get("continuationToken").is_none());
    assert_eq!(data["inputArtifacts"][0]["name"], "Src");
    assert_eq!(data["inputArtifacts"][0]["location"]["type"], "Url");

    // The link downloads the artifact (a zip holding the commit) with no account; altered, or
    // with its signature cut, it finds nothing.
    let link = data["inputArtifacts"][0]["location"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(link.starts_with(&app.url("/artifact-links/")), "{link}");
    let anonymous = reqwest::Client::new();
    let got = anonymous.get(&link).send().await.unwrap();
    assert_eq!(got.status(), 200);
    let bytes = got.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PK"), "a zip");
    let (payload, _) = link.rsplit_once('.').unwrap();
    for forged in [
        format!("{payload}.AAAA"),
        payload.to_string(),
        format!("{link}x"),
        app.url("/artifact-links/junk"),
    ] {
        let got = anonymous.get(&forged).send().await.unwrap();
        let status = got.status();
        let body = got.text().await.unwrap();
        assert_eq!(status, 404, "{forged}: {body}");
        assert!(body.contains("ArtifactNotFoundException"), "{body}");
    }
    // The secret is in no log line.
    let mut c = sqlx::PgConnection::connect_with(&app.db.options)
        .await
        .unwrap();
    use sqlx::Connection;
    let leaked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM action_logs WHERE text LIKE '%' || $1 || '%'")
            .bind(SECRET)
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(leaked, 0);
}

#[tokio::test]
async fn in_progress_is_asked_again_with_its_continuation_token_until_it_ends() {
    let (app, t, e, endpoint, _repo) = run_against("long", |n, r| {
        let token = r.json()["CodePipeline.job"]["data"]["continuationToken"].clone();
        match n {
            0 => answer(json!({"status": "InProgress", "continuationToken": "step-1"})),
            1 if token == "step-1" => {
                answer(json!({"status": "InProgress", "continuationToken": "step-2"}))
            }
            2 if token == "step-2" => answer(json!({"status": "Succeeded", "summary": "done"})),
            _ => answer(json!({"status": "Failed", "summary": "wrong token"})),
        }
    })
    .await;
    let (status, summary, _) = outcome(&app, &t, "long", &e).await;
    assert_eq!((status.as_str(), summary.as_str()), ("Succeeded", "done"));
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 3);
    // Every call is the same job, with links made afresh.
    let ids: Vec<Value> = requests
        .iter()
        .map(|r| r.json()["CodePipeline.job"]["id"].clone())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]));
}

#[tokio::test]
async fn a_failed_answer_fails_the_action_with_its_summary_and_a_503_is_tried_again() {
    let (app, t, e, _endpoint, _repo) = run_against("failing", |_, _| {
        answer(json!({"status": "Failed", "summary": "smoke tests failed: 3 of 40"}))
    })
    .await;
    let (status, summary, _) = outcome(&app, &t, "failing", &e).await;
    assert_eq!(status, "Failed");
    assert_eq!(summary, "smoke tests failed: 3 of 40");

    let (app, t, e, endpoint, _repo) = run_against("flaky", |n, _| match n {
        0 => (503, vec![], b"busy".to_vec()),
        1 => (502, vec![], b"bad gateway".to_vec()),
        _ => answer(json!({"status": "Succeeded"})),
    })
    .await;
    let (status, _, _) = outcome(&app, &t, "flaky", &e).await;
    assert_eq!(status, "Succeeded");
    assert_eq!(endpoint.requests().len(), 3);
    // Each try is a delivery of its own, signed afresh.
    let deliveries: std::collections::HashSet<String> = endpoint
        .requests()
        .iter()
        .map(|r| r.headers["x-sluice-delivery"].clone())
        .collect();
    assert_eq!(deliveries.len(), 3);
}

#[tokio::test]
async fn redirects_oversized_or_malformed_answers_and_client_errors_fail_without_a_second_call() {
    for (name, reply, expected) in [
        (
            "redirected",
            (
                302,
                vec![(
                    "Location".to_string(),
                    "http://169.254.169.254/".to_string(),
                )],
                Vec::new(),
            ),
            "redirects are not followed",
        ),
        (
            "oversized",
            (200, vec![], vec![b' '; 2 << 20]),
            "larger than 1024 KiB",
        ),
        (
            "malformed",
            (200, vec![], b"<html>ok</html>".to_vec()),
            "must be JSON",
        ),
        ("missing", (404, vec![], Vec::new()), "answered 404"),
    ] {
        let (app, t, e, endpoint, _repo) = run_against(name, move |_, _| reply.clone()).await;
        let (status, summary, _) = outcome(&app, &t, name, &e).await;
        assert_eq!(status, "Failed", "{name}");
        assert!(summary.contains(expected), "{name}: {summary}");
        assert_eq!(endpoint.requests().len(), 1, "{name}");
    }
}

#[tokio::test]
async fn a_worker_not_allowed_private_addresses_refuses_them_and_calls_nothing() {
    let app = crate::harness::spawn_app().await;
    app.setup_admin().await;
    let t = app
        .console_token_as(&app.client, crate::harness::ADMIN_PASSWORD, &[])
        .await;
    // A `sluice worker` started without --webhook-allow-private.
    let _worker = crate::workers::worker(&app, 2, 30);
    let endpoint = Endpoint::start(|_, _| answer(json!({"status": "Succeeded"}))).await;
    let port = endpoint.url.rsplit(':').next().unwrap().to_string();
    let repo = tempfile::tempdir().unwrap();
    repository(repo.path());
    let path = repo.path().display().to_string();
    for (name, url) in [
        ("literal", endpoint.url.clone()),
        ("named", format!("http://localhost:{port}/")),
    ] {
        ok(
            &app,
            &t,
            "CreatePipeline",
            json!({"pipeline": pipeline(name, &path, &url)}),
        )
        .await;
        let e = first_execution(&app, &t, name).await;
        let mut end = Value::Null;
        for _ in 0..6 {
            end = wait_for_end(&app, &t, name, &e).await;
            if end["status"] != "InProgress" {
                break;
            }
        }
        assert_eq!(end["status"], "Failed", "{name}");
        let (_, summary, _) = outcome(&app, &t, name, &e).await;
        assert!(
            summary.contains("--webhook-allow-private"),
            "{name}: {summary}"
        );
    }
    assert!(endpoint.requests().is_empty(), "nothing was called");

    // A Url that is not http(s) is refused when the pipeline is saved.
    let (status, body) = crate::harness::api_call(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": pipeline("ftp", &path, "ftp://example.com/hook")}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("http:// or https://"), "{body}");
}
