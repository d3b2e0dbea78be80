//! The live console's streams, read as a browser's EventSource would: what reaches them (a
//! change committed by a separate `sluice worker`, log lines as they are printed, new history
//! rows), what never does (another pipeline's changes), and when they end (a revoked session,
//! access taken away, the server stopping), with the caps under a crowd of opens.

use std::time::Duration;

use serde_json::json;

use crate::executions::{command, repository, source_stage};
use crate::harness::{
    ADMIN_PASSWORD, SluiceProcess, TestApp, USER_PASSWORD, api_ok as ok, spawn_app,
    user_with_policy,
};

/// One stream, read event by event.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

/// One server-sent event: its name and its data lines joined.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub data: String,
}

impl Events {
    /// Opens `path` with `client`'s session; panics unless it is an event stream.
    pub async fn open(app: &TestApp, client: &reqwest::Client, path: &str) -> Events {
        let response = client
            .get(app.url(path))
            .header("Accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, or `None` when the stream ends (within `wait`, else panics).
    pub async fn next(&mut self, wait: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push(v);
                    }
                }
                if data.is_empty() && name == "message" {
                    continue; // a comment (keep-alive) or a retry line
                }
                return Some(Event {
                    name,
                    data: data.join("\n"),
                });
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("no event in time")
                .unwrap();
            match chunk {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }

    /// Reads events until one's data satisfies `want`; its data. Panics after `wait`.
    pub async fn until(&mut self, wait: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next(left).await.expect("the stream ended first");
            if want(&event.data) {
                return event.data;
            }
        }
    }

    /// Reads until the stream ends; every event on the way.
    pub async fn until_end(&mut self, wait: Duration) -> Vec<Event> {
        let mut all = Vec::new();
        while let Some(e) = self.next(wait).await {
            all.push(e);
        }
        all
    }
}

const LONG: Duration = Duration::from_secs(60);

/// An app with no workers of its own, its admin signed in, and the admin's token.
async fn app_without_workers() -> (TestApp, String) {
    let app = spawn_app().await;
    app.setup_admin().await;
    let t = app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await;
    (app, t)
}

/// A pipeline `name` of a Git source and one Command build running `commands`.
async fn pipeline(app: &TestApp, t: &str, name: &str, repo: &str, commands: &[&str]) {
    let spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n{}",
        commands
            .iter()
            .map(|c| format!("      - {c}\n"))
            .collect::<String>()
    );
    let decl = json!({"name": name, "stages": [
        source_stage(repo),
        {"name": "Build", "actions": [command("Compile", "Build", &["Src"], None, json!({"BuildSpec": spec}))]}
    ]});
    ok(app, t, "CreatePipeline", json!({"pipeline": decl})).await;
}

/// A `sluice worker` process with one worker on the app's database.
fn worker(app: &TestApp) -> SluiceProcess {
    crate::workers::worker(app, 1, 30)
}

/// The id of `action`'s attempt in an execution, once it has one.
async fn attempt_of(
    app: &TestApp,
    t: &str,
    pipeline: &str,
    execution: &str,
    action: &str,
) -> String {
    loop {
        let attempts = ok(
            app,
            t,
            "ListActionExecutions",
            json!({"pipelineName": pipeline, "filter": {"pipelineExecutionId": execution}}),
        )
        .await;
        if let Some(a) = attempts["actionExecutionDetails"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["actionName"] == action)
        {
            return a["actionExecutionId"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_change_committed_by_a_separate_worker_process_reaches_the_pipeline_view_stream() {
    let (app, t) = app_without_workers().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    // Created with no worker anywhere: the first execution waits in the queue.
    pipeline(&app, &t, "live", &path, &["echo built"]).await;
    let mut events = Events::open(&app, &app.client, "/live?view=pipeline&name=live").await;
    let snapshot = events.until(LONG, |d| d.contains("id=\"stage-1\"")).await;
    assert!(snapshot.contains("Live"), "{snapshot}");
    assert!(snapshot.contains("hx-swap-oob"), "{snapshot}");
    assert!(snapshot.contains("id=\"transition-2\""), "{snapshot}");

    let mut process = worker(&app);
    // Each stage turns Succeeded on the stream, sent by the server that never ran it.
    let build = events
        .until(LONG, |d| {
            d.contains("id=\"stage-2\"") && d.contains("status-succeeded")
        })
        .await;
    assert!(build.contains("Compile"), "{build}");
    process.signal(libc::SIGTERM);
    process.wait_exit();
}

#[tokio::test]
async fn a_stream_only_hears_of_pipelines_its_viewer_may_see() {
    let (app, t) = crate::executions::workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    pipeline(&app, &t, "secret", &path, &["echo secret-output"]).await;
    pipeline(&app, &t, "public", &path, &["echo public-output"]).await;
    crate::executions::wait_for_end(
        &app,
        &t,
        "public",
        &crate::executions::first_execution(&app, &t, "public").await,
    )
    .await;
    user_with_policy(
        &app,
        &t,
        "viewer",
        Some(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["codepipeline:Get*", "codepipeline:List*"],
            "Resource": "arn:aws:codepipeline:*:*:public*"},
            {"Effect": "Allow", "Action": "codepipeline:ListPipelines", "Resource": "*"}]}),
        ),
    )
    .await;
    let viewer = app.sign_in("viewer", USER_PASSWORD).await;
    // The other pipeline's stream is refused, and the refusal audited.
    let refused = viewer
        .get(app.url("/live?view=pipeline&name=secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let mut theirs = Events::open(&app, &viewer, "/live?view=pipeline&name=public").await;
    theirs.until(LONG, |d| d.contains("id=\"stage-1\"")).await;
    let mut list = Events::open(&app, &viewer, "/live?view=list").await;
    list.until(LONG, |d| d.contains("Live")).await;
    let mut admins = Events::open(&app, &app.client, "/live?view=pipeline&name=secret").await;
    admins.until(LONG, |d| d.contains("id=\"stage-1\"")).await;

    // A change to the hidden pipeline reaches the admin...
    ok(
        &app,
        &t,
        "StartPipelineExecution",
        json!({"name": "secret"}),
    )
    .await;
    admins
        .until(LONG, |d| d.contains("status-inprogress"))
        .await;
    admins
        .until(LONG, |d| {
            d.contains("id=\"stage-2\"") && d.contains("status-succeeded")
        })
        .await;
    // ...and then one to the visible pipeline reaches the viewer, with nothing of the other
    // on the way.
    ok(
        &app,
        &t,
        "StartPipelineExecution",
        json!({"name": "public"}),
    )
    .await;
    let mut heard = Vec::new();
    loop {
        let e = theirs.next(LONG).await.expect("the stream goes on");
        let done = e.data.contains("id=\"stage-2\"") && e.data.contains("status-succeeded");
        heard.push(e.data);
        if done && heard.iter().any(|d| d.contains("status-inprogress")) {
            break;
        }
    }
    for d in &heard {
        assert!(!d.contains("secret"), "{d}");
    }
    // The list's stream names no hidden pipeline either.
    let cells = list.until(LONG, |d| d.contains(&hex_id("public"))).await;
    assert!(!cells.contains(&hex_id("secret")), "{cells}");
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect_with(&app.db.options)
        .await
        .unwrap();
    let refusals: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE outcome = 'AccessDenied' \
         AND event_name = 'codepipeline:GetPipelineState' AND resource_arn LIKE '%:secret'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(refusals, 1, "the refused stream is audited");
}

fn hex_id(name: &str) -> String {
    format!(
        "latest-{}",
        name.bytes().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[tokio::test]
async fn a_revoked_session_ends_its_stream() {
    let (app, t) = app_without_workers().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    pipeline(&app, &t, "watched", &path, &["true"]).await;
    user_with_policy(
        &app,
        &t,
        "watcher",
        Some(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["codepipeline:Get*", "codepipeline:List*"], "Resource": "*"}]}),
        ),
    )
    .await;
    let watcher = app.sign_in("watcher", USER_PASSWORD).await;
    let mut events = Events::open(&app, &watcher, "/live?view=pipeline&name=watched").await;
    events.until(LONG, |d| d.contains("Live")).await;
    // The administrator ends every session of the user.
    let res = app
        .post_form(&app.client, "/admin/users/watcher/sessions/end", &[])
        .await;
    assert!(res.status().is_redirection(), "{}", res.status());
    let rest = events.until_end(LONG).await;
    assert!(
        rest.iter().any(|e| e.data.contains("session ended")),
        "{rest:?}"
    );
    assert_eq!(rest.last().map(|e| e.name.as_str()), Some("close"));
    // And it cannot open again.
    let again = watcher
        .get(app.url("/live?view=pipeline&name=watched"))
        .send()
        .await
        .unwrap();
    assert_ne!(again.status(), 200);
}

#[tokio::test]
async fn access_taken_away_ends_the_stream_and_access_given_changes_its_buttons() {
    let (app, t) = app_without_workers().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    pipeline(&app, &t, "guarded", &path, &["true"]).await;
    user_with_policy(
        &app,
        &t,
        "reader",
        Some(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["codepipeline:Get*", "codepipeline:List*"], "Resource": "*"}]}),
        ),
    )
    .await;
    let reader = app.sign_in("reader", USER_PASSWORD).await;
    let mut events = Events::open(&app, &reader, "/live?view=pipeline&name=guarded").await;
    let first = events
        .until(LONG, |d| d.contains("id=\"transition-2\""))
        .await;
    assert!(!first.contains("Disable transition"), "{first}");
    // A new policy lets them disable transitions: the stream sends the button.
    ok(
        &app,
        &t,
        "CreatePolicy",
        json!({"policyName": "toggler", "policyDocument": json!({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "codepipeline:DisableStageTransition",
            "Resource": "*"}]}).to_string()}),
    )
    .await;
    ok(
        &app,
        &t,
        "AttachUserPolicy",
        json!({"userName": "reader", "policyName": "toggler"}),
    )
    .await;
    let with_button = events
        .until(LONG, |d| d.contains("Disable transition"))
        .await;
    // Parts are rendered once for everyone with the same permissions; each stream's form
    // carries its own viewer's CSRF token.
    let token = app.csrf_token(&reader).await;
    assert!(
        with_button.contains(&format!(r#"name="csrf_token" value="{token}""#))
            && !with_button.contains("value=\"csrf-"),
        "{with_button}"
    );
    // Taking the reading policy away ends the stream.
    ok(
        &app,
        &t,
        "DetachUserPolicy",
        json!({"userName": "reader", "policyName": "reader-policy"}),
    )
    .await;
    let rest = events.until_end(LONG).await;
    assert!(
        rest.iter()
            .any(|e| e.data.contains("you may no longer see this")),
        "{rest:?}"
    );
}

#[tokio::test]
async fn the_log_stream_sends_lines_as_the_build_prints_them_and_resumes_by_line() {
    let (app, t) = crate::executions::workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    pipeline(
        &app,
        &t,
        "talky",
        &path,
        &[
            "echo first-line",
            "while [ ! -f /tmp/never ]; do sleep 0.1; if [ -f go ]; then break; fi; touch go; echo second-line; done",
            "sleep 1",
            "echo third-line",
        ],
    )
    .await;
    let id = crate::executions::first_execution(&app, &t, "talky").await;
    let attempt = attempt_of(&app, &t, "talky", &id, "Compile").await;
    let mut events = Events::open(
        &app,
        &app.client,
        &format!("/live?view=log&name=talky&id={attempt}&from=1"),
    )
    .await;
    let all = events.until_end(LONG).await;
    let text: String = all.iter().map(|e| e.data.clone()).collect();
    let (first, third) = (
        text.find("first-line").expect("first"),
        text.find("third-line").expect("third"),
    );
    assert!(first < third);
    assert!(
        all.iter().filter(|e| e.data.contains("-line")).count() >= 2,
        "lines arrive as printed, not all at once: {all:?}"
    );
    assert!(text.contains("id=\"log-status\""), "the status at the end");
    assert_eq!(all.last().unwrap().name, "close");

    // Resuming after the line the browser saw last sends only what follows it.
    let second = text
        .split("<li value=\"")
        .find(|l| l.contains("<code>second-line"))
        .and_then(|l| l.split('"').next())
        .expect("second-line's number")
        .to_string();
    let res = app
        .client
        .get(app.url(&format!("/live?view=log&name=talky&id={attempt}&from=1")))
        .header("Last-Event-ID", &second)
        .send()
        .await
        .unwrap();
    let mut resumed = Events {
        response: res,
        buffer: String::new(),
    };
    let rest: String = resumed
        .until_end(LONG)
        .await
        .iter()
        .map(|e| e.data.clone())
        .collect();
    assert!(
        !rest.contains("first-line") && !rest.contains("<code>second-line"),
        "{rest}"
    );
    assert!(rest.contains("third-line"), "{rest}");
}

#[tokio::test]
async fn the_history_stream_adds_new_executions_above_and_updates_rows_in_place() {
    let (app, t) = app_without_workers().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    pipeline(&app, &t, "busy", &path, &["true"]).await;
    let first = crate::executions::first_execution(&app, &t, "busy").await;
    let page = app
        .client
        .get(app.url("/pipelines/busy/executions"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("/live?view=history&#38;name=busy&#38;top={first}")),
        "{page}"
    );
    let mut events = Events::open(
        &app,
        &app.client,
        &format!("/live?view=history&name=busy&top={first}"),
    )
    .await;
    let snapshot = events.until(LONG, |d| d.contains(&first)).await;
    assert!(!snapshot.contains("afterbegin"), "{snapshot}");
    let second = ok(&app, &t, "StartPipelineExecution", json!({"name": "busy"})).await
        ["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    let added = events.until(LONG, |d| d.contains(&second)).await;
    assert!(added.contains("afterbegin:#history-rows"), "{added}");
    // Superseded or not, the first row changes in place (no second copy is added).
    let mut process = worker(&app);
    let updated = events
        .until(LONG, |d| {
            d.contains(&format!("id=\"execution-{second}\" hx-swap-oob=\"true\""))
                && d.contains("status-succeeded")
        })
        .await;
    assert!(!updated.contains("afterbegin"), "{updated}");
    process.signal(libc::SIGTERM);
    process.wait_exit();
}

#[tokio::test]
async fn streams_are_capped_per_user_even_when_opened_all_at_once() {
    let (app, _t) = app_without_workers().await;
    let opens = (0..40).map(|_| {
        let client = app.client.clone();
        let url = app.url("/live");
        async move { client.get(url).send().await.unwrap() }
    });
    let responses = futures_util::future::join_all(opens).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    // Each open beyond the cap ended the user's oldest stream, so 16 remain: the others close
    // (a browser does not reconnect them).
    let ends = responses.into_iter().map(|response| async move {
        let mut events = Events {
            response,
            buffer: String::new(),
        };
        loop {
            match tokio::time::timeout(Duration::from_secs(15), events.next(LONG)).await {
                Err(_) => return false,
                Ok(None) => return false,
                Ok(Some(e)) if e.name == "close" => return true,
                Ok(Some(_)) => {}
            }
        }
    });
    let evicted = futures_util::future::join_all(ends)
        .await
        .into_iter()
        .filter(|e| *e)
        .count();
    assert_eq!(evicted, 24);
}

#[tokio::test]
async fn stopping_the_server_ends_its_streams_at_once() {
    let (app, _t) = app_without_workers().await;
    let mut events = Events::open(&app, &app.client, "/live").await;
    events.next(LONG).await.expect("the snapshot");
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(
        events
            .until_end(LONG)
            .await
            .iter()
            .all(|e| e.name != "close")
    );
    // Well within the test server's 5 s shutdown timeout: the streams did not hold the drain.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn every_signed_in_page_connects_its_stream_and_live_pages_name_their_view() {
    let (app, t) = app_without_workers().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    pipeline(&app, &t, "shown", &path, &["true"]).await;
    let get = |path: &'static str| {
        let client = app.client.clone();
        let url = app.url(path);
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(get("/admin").await.contains(r#"sse-connect="/live""#));
    assert!(get("/").await.contains("sse-connect=\"/live?view=list"));
    let view = get("/pipelines/shown").await;
    assert!(
        view.contains("sse-connect=\"/live?view=pipeline&#38;name=shown\""),
        "{view}"
    );
    // Without JavaScript the page still says how to see what is new.
    assert!(view.contains(r#"id="live-status""#) && view.contains("Refresh"));
    // The navigation's count comes from the stream, not from polling.
    assert!(!view.contains("every 60s"));
    // Compression would hold events back: streams are never compressed.
    let res = app
        .client
        .get(app.url("/live"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "identity");
    assert_eq!(res.headers()["cache-control"], "no-store");
}

/// A TCP connection whose receive buffer is fixed small (the kernel would otherwise grow it to
/// tens of megabytes on loopback, and hold a whole log for a client that never reads).
fn small_window_socket(to: std::net::SocketAddr) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    let std::net::SocketAddr::V4(v4) = to else {
        panic!("the test server listens on IPv4")
    };
    // SAFETY: plain socket calls on a descriptor this function owns until it hands it over.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 8192;
        let set = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(set, 0);
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let connected = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(connected, 0);
        std::net::TcpStream::from_raw_fd(fd)
    }
}

/// A client that stops reading is dropped once its queue stays full (its socket's buffers
/// full too), not buffered without limit: the log of a build printing 15 MB reaches a stream
/// whose client never reads; the server ends that stream before the log's end.
#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_rather_than_buffered() {
    use std::io::{Read, Write};
    let (app, t) = crate::executions::workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    pipeline(
        &app,
        &t,
        "flood",
        &path,
        &["sleep 2", "yes 'a line of build output long enough to fill buffers quickly 0123456789 0123456789 0123456789' | head -n 150000"],
    )
    .await;
    let id = crate::executions::first_execution(&app, &t, "flood").await;
    let attempt = attempt_of(&app, &t, "flood", &id, "Compile").await;
    // A session of its own, on a raw socket that is never read.
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/login"))
        .header("Origin", &app.address)
        .form(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let address = app.address.trim_start_matches("http://").to_string();
    let mut socket = small_window_socket(address.parse().unwrap());
    write!(
        socket,
        "GET /live?view=log&name=flood&id={attempt}&from=1 HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\n\r\n"
    )
    .unwrap();
    crate::executions::wait_for_end(&app, &t, "flood", &id).await;
    // Longer than the server waits for a full queue to drain (10 s).
    tokio::time::sleep(Duration::from_secs(12)).await;
    // Now read: the stream ends (the server let go of it) before the log's last word.
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match socket.read(&mut buf) {
                Ok(0) => return (all, true),
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(_) => return (all, false),
            }
        }
    });
    let (bytes, ended) = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(ended, "the server closed the stream");
    assert!(
        text.contains("a line of build output"),
        "lines were sent first"
    );
    assert!(
        !text.contains("event: close"),
        "it was dropped, not finished ({} bytes read)",
        bytes.len()
    );
}
