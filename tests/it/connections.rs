//! Connections: a Git source clones a private repository over HTTPS with a connection's
//! credentials (a real `git http-backend` behind basic auth, with its own certificate
//! authority), the token never shows anywhere, and passing a connection to a pipeline needs
//! `codeconnections:PassConnection` on its stored name.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::executions::{first_execution, repository, wait_for_end, workers_app};
use crate::harness::{TestApp, api_call as call, api_ok as ok, user_with_policy};

const TOKEN: &str = "glpat-S3CRET-token-31337";

/// A Git server on `https://127.0.0.1:<port>/app.git` that wants `bot` and [`TOKEN`].
pub struct GitServer {
    child: Child,
    port: u16,
    root: tempfile::TempDir,
    certificate: String,
    pub commit: String,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn git_server() -> GitServer {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (source, commit) = repository(work.path());
    let status = Command::new("git")
        .args(["clone", "--quiet", "--bare", &source])
        .arg(root.path().join("app.git"))
        .status()
        .unwrap();
    assert!(status.success());
    let cert = root.path().join("cert.pem");
    let key = root.path().join("key.pem");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "openssl makes the server's certificate");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/git_https_server.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(root.path())
        .arg(&cert)
        .arg(&key)
        .args(["bot", TOKEN])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("python3 runs the test's Git server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the Git server prints its port");
    let certificate = std::fs::read_to_string(&cert).unwrap();
    GitServer {
        child,
        port,
        root,
        certificate,
        commit,
    }
}

impl GitServer {
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/app.git", self.port)
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(self.root.path().join("requests.log")).unwrap_or_default()
    }
}

pub fn private_source(name: &str, url: &str, connection: Option<&str>) -> Value {
    let mut configuration = json!({"RepositoryUrl": url, "Branch": "main"});
    if let Some(c) = connection {
        configuration["ConnectionName"] = json!(c);
    }
    json!({"name": name, "stages": [
        {"name": "Source", "actions": [{"name": "Checkout",
            "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
            "configuration": configuration,
            "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Build", "actions": [{"name": "Look",
            "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
            "configuration": {"BuildSpec": "version: 0.2\nphases:\n  build:\n    commands:\n      - grep -q plaintext-marker-4711 app.txt\n      - if env | grep -q SLUICE_GIT; then exit 9; fi\n"},
            "inputArtifacts": [{"name": "Src"}]}]}
    ]})
}

pub async fn source_summary(app: &TestApp, execution: &str) -> (String, Option<String>, Value) {
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    sqlx::query_as(
        "SELECT status, summary, output_variables FROM action_executions \
         WHERE execution_id = $1::uuid AND stage_index = 0 ORDER BY attempt DESC LIMIT 1",
    )
    .bind(execution)
    .fetch_one(&mut c)
    .await
    .unwrap()
}

/// Starts the `private` pipeline again and waits for it to end; its execution id.
async fn run_again(app: &TestApp, t: &str) -> String {
    let id = ok(app, t, "StartPipelineExecution", json!({"name": "private"})).await
        ["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for_end(app, t, "private", &id).await;
    id
}

pub async fn create_connection(app: &TestApp, t: &str, name: &str, server: &GitServer) -> Value {
    ok(
        app,
        t,
        "CreateConnection",
        json!({"ConnectionName": name, "ProviderType": "GitLabSelfManaged", "Username": "bot",
               "Token": TOKEN, "CaCertificate": server.certificate}),
    )
    .await
}

#[tokio::test]
async fn a_private_repository_is_cloned_with_a_connection_and_its_token_shows_nowhere() {
    let server = git_server();
    let (app, t) = workers_app().await;
    let created = create_connection(&app, &t, "GitBot", &server).await;
    assert_eq!(
        created["ConnectionArn"],
        "arn:sluice:codeconnections:::connection/GitBot"
    );
    // Named in another case: the same connection.
    let decl = private_source("private", &server.url(), Some("gitbot"));
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    let id = first_execution(&app, &t, "private").await;
    let end = wait_for_end(&app, &t, "private", &id).await;
    let (status, summary, variables) = source_summary(&app, &id).await;
    assert_eq!(status, "Succeeded", "{summary:?}");
    assert_eq!(end["status"], "Succeeded", "{end}");
    assert_eq!(variables["CommitId"], server.commit.as_str());
    let requests = server.requests();
    assert!(requests.contains("authorized=True"), "{requests}");
    assert!(
        !requests.contains(TOKEN) && !requests.contains("bot:"),
        "{requests}"
    );

    // Without the connection the server refuses, and the clone fails at once (no prompt).
    let open = private_source("public", &server.url(), None);
    ok(&app, &t, "CreatePipeline", json!({"pipeline": open})).await;
    let id = first_execution(&app, &t, "public").await;
    wait_for_end(&app, &t, "public", &id).await;
    let (status, summary, _) = source_summary(&app, &id).await;
    assert_eq!(status, "Failed");
    let summary = summary.unwrap();
    assert!(summary.contains("git clone of"), "{summary}");

    // An ssh URL with a connection: credentials go over HTTPS only.
    let ssh = private_source("ssh", "ssh://git@127.0.0.1:1/app.git", Some("GitBot"));
    ok(&app, &t, "CreatePipeline", json!({"pipeline": ssh})).await;
    let id = first_execution(&app, &t, "ssh").await;
    wait_for_end(&app, &t, "ssh", &id).await;
    let summary = source_summary(&app, &id).await.1.unwrap();
    assert!(summary.contains("only sent over HTTPS"), "{summary}");

    // The connection as shown: never the token.
    let got = ok(
        &app,
        &t,
        "GetConnection",
        json!({"ConnectionArn": "arn:sluice:codeconnections:::connection/GITBOT"}),
    )
    .await;
    assert_eq!(got["Connection"]["ConnectionName"], "GitBot");
    assert_eq!(got["Connection"]["Username"], "bot");
    assert_eq!(got["Connection"]["HasCaCertificate"], true);
    let listed = ok(&app, &t, "ListConnections", json!({})).await;
    assert_eq!(listed["Connections"].as_array().unwrap().len(), 1);
    let attempts = ok(
        &app,
        &t,
        "ListActionExecutions",
        json!({"pipelineName": "private"}),
    )
    .await;
    for out in [&got, &listed, &attempts] {
        assert!(!out.to_string().contains(TOKEN), "{out}");
    }
    let tables = [
        "connections",
        "action_logs",
        "action_executions",
        "pipeline_versions",
        "pipeline_events",
        "audit_events",
        "jobs",
    ];
    assert_eq!(
        app.tables_holding(&tables, "S3CRET").await,
        Vec::<String>::new(),
        "these hold the token"
    );

    // A new token that the server does not take fails the next run; the old one again works.
    ok(
        &app,
        &t,
        "UpdateConnection",
        json!({"ConnectionArn": "arn:sluice:codeconnections:::connection/GitBot", "Token": "wrong"}),
    )
    .await;
    let again = run_again(&app, &t).await;
    assert_eq!(source_summary(&app, &again).await.0, "Failed");
    ok(
        &app,
        &t,
        "UpdateConnection",
        json!({"ConnectionArn": "arn:sluice:codeconnections:::connection/GitBot", "Token": TOKEN}),
    )
    .await;
    let again = run_again(&app, &t).await;
    assert_eq!(
        source_summary(&app, &again).await.0,
        "Succeeded",
        "the certificate was kept when only the token changed"
    );

    // Pipelines name it: it is not deleted, and the refusal says which.
    let (status, refused) = crate::harness::api_call(
        &app,
        &t,
        "DeleteConnection",
        json!({"ConnectionArn": "arn:sluice:codeconnections:::connection/GitBot"}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["__type"], "ResourceInUseException");
    assert!(
        refused["message"].as_str().unwrap().contains("private"),
        "{refused}"
    );
    let still = run_again(&app, &t).await;
    assert_eq!(source_summary(&app, &still).await.0, "Succeeded");
}

#[tokio::test]
async fn passing_a_connection_to_a_pipeline_needs_pass_connection_on_its_stored_name() {
    let server = git_server();
    let (app, admin) = workers_app().await;
    create_connection(&app, &admin, "GitBot", &server).await;
    // Pipelines: everything; connections: see them, and pass any but GitBot.
    let editor = user_with_policy(
        &app,
        &admin,
        "editor",
        Some(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["codepipeline:*", "codeconnections:PassConnection"], "Resource": "*"},
            {"Effect": "Deny", "Action": "codeconnections:PassConnection",
             "Resource": "arn:sluice:codeconnections:::connection/GitBot"}
        ]})),
    )
    .await;
    for spelling in ["GitBot", "gitbot", "GITBOT", "gItBoT"] {
        let decl = private_source(
            &format!("p-{}", spelling.to_lowercase()),
            &server.url(),
            Some(spelling),
        );
        let (status, out) = call(&app, &editor, "CreatePipeline", json!({"pipeline": decl})).await;
        assert_eq!(status, 400, "{spelling}: {out}");
        assert_eq!(out["__type"], "AccessDeniedException", "{spelling}: {out}");
        assert!(
            out["message"]
                .as_str()
                .unwrap()
                .contains("codeconnections:PassConnection"),
            "{out}"
        );
    }
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let denials: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE event_name = 'codepipeline:CreatePipeline' AND outcome = 'AccessDenied'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(denials, 4, "each refusal audited once");

    // A connection that does not exist is a declaration error naming the field.
    let decl = private_source("nothing", &server.url(), Some("NoSuch"));
    let (status, out) = call(&app, &editor, "CreatePipeline", json!({"pipeline": decl})).await;
    assert_eq!(status, 400);
    assert_eq!(out["__type"], "InvalidActionDeclarationException", "{out}");
    assert!(
        out["message"].as_str().unwrap().contains("ConnectionName"),
        "{out}"
    );

    // The admin passes it; the editor may then change what does not redirect the credentials,
    // but not the repository they are sent to.
    ok(
        &app,
        &admin,
        "CreatePipeline",
        json!({"pipeline": private_source("shared", &server.url(), Some("GitBot"))}),
    )
    .await;
    let mut got =
        ok(&app, &editor, "GetPipeline", json!({"name": "shared"})).await["pipeline"].clone();
    got["stages"][1]["actions"][0]["configuration"]["TimeoutInMinutes"] = json!("30");
    ok(
        &app,
        &editor,
        "UpdatePipeline",
        json!({"pipeline": got.clone()}),
    )
    .await;
    got["version"] = json!(2);
    got["stages"][0]["actions"][0]["configuration"]["RepositoryUrl"] =
        json!("https://attacker.example/steal.git");
    let (status, out) = call(&app, &editor, "UpdatePipeline", json!({"pipeline": got})).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(out["__type"], "AccessDeniedException", "{out}");
    assert_eq!(
        ok(&app, &admin, "GetPipeline", json!({"name": "shared"})).await["pipeline"]["version"],
        2
    );

    // Connections themselves: the editor may not make or read one.
    let (status, out) = call(
        &app,
        &editor,
        "CreateConnection",
        json!({"ConnectionName": "mine", "Username": "u", "Token": "t"}),
    )
    .await;
    assert_eq!(
        (status, out["__type"].as_str()),
        (400, Some("AccessDeniedException"))
    );
    let (status, out) = call(
        &app,
        &editor,
        "GetConnection",
        json!({"ConnectionArn": "arn:sluice:codeconnections:::connection/gitbot"}),
    )
    .await;
    assert_eq!(
        (status, out["__type"].as_str()),
        (400, Some("AccessDeniedException"))
    );

    // A case-changed name never escapes an explicit Deny on the stored one.
    let keeper = user_with_policy(
        &app,
        &admin,
        "keeper",
        Some(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "codeconnections:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "codeconnections:*",
             "Resource": "arn:sluice:codeconnections:::connection/GitBot"}
        ]})),
    )
    .await;
    for (op, extra) in [
        ("GetConnection", json!({})),
        ("UpdateConnection", json!({"Token": "stolen"})),
        ("DeleteConnection", json!({})),
    ] {
        for spelling in ["gitbot", "GITBOT"] {
            let mut body = extra.clone();
            body["ConnectionArn"] = json!(format!(
                "arn:sluice:codeconnections:::connection/{spelling}"
            ));
            let (status, out) = call(&app, &keeper, op, body).await;
            assert_eq!(status, 400, "{op} {spelling}: {out}");
            assert_eq!(
                out["__type"], "AccessDeniedException",
                "{op} {spelling}: {out}"
            );
        }
    }
    assert_eq!(
        ok(&app, &admin, "ListConnections", json!({})).await["Connections"][0]["ConnectionName"],
        "GitBot"
    );
}

#[tokio::test]
async fn racing_creates_of_one_name_in_any_case_make_exactly_one_connection() {
    let (app, t) = crate::harness::admin_api().await;
    let spellings = ["Deploy", "deploy", "DEPLOY", "dEpLoY"];
    let calls = (0..16).map(|i| {
        let app = &app;
        let t = &t;
        async move {
            call(
                app,
                t,
                "CreateConnection",
                json!({"ConnectionName": spellings[i % 4], "Username": "u", "Token": format!("t{i}")}),
            )
            .await
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let created = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(created, 1, "{results:?}");
    for (status, out) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 400);
        assert_eq!(out["__type"], "ResourceAlreadyExistsException", "{out}");
    }
    // Bad input: clear errors, nothing stored, the token never quoted.
    for (body, field) in [
        (
            json!({"ConnectionName": "a b", "Username": "u", "Token": "t"}),
            "ConnectionName",
        ),
        (
            json!({"ConnectionName": "x", "Username": "u", "Token": "line1\nsecretpart"}),
            "Token",
        ),
        (
            json!({"ConnectionName": "x", "Username": "u", "Token": "t", "ProviderType": "CodeCommit"}),
            "ProviderType",
        ),
        (
            json!({"ConnectionName": "x", "Username": "u", "Token": "t", "CaCertificate": "junk"}),
            "CaCertificate",
        ),
    ] {
        let (status, out) = call(&app, &t, "CreateConnection", body).await;
        assert_eq!(status, 400, "{out}");
        let message = out["message"].as_str().unwrap();
        assert!(
            message.contains(field) && !message.contains("secretpart"),
            "{out}"
        );
    }
    let (status, out) = call(
        &app,
        &t,
        "CreateConnection",
        json!({"ConnectionName": "x", "Username": "u", "Token": "t", "Tags": [{"key": "a", "value": "b"}]}),
    )
    .await;
    assert_eq!(status, 400, "tags are refused, not dropped: {out}");
    assert_eq!(
        ok(&app, &t, "ListConnections", json!({})).await["Connections"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_connection_a_pipeline_names_is_not_deleted_and_the_refusal_names_the_pipelines() {
    let (app, t) = crate::harness::admin_api().await;
    ok(
        &app,
        &t,
        "CreateConnection",
        json!({"ConnectionName": "Forge", "ProviderType": "Git", "Username": "bot", "Token": TOKEN}),
    )
    .await;
    for name in ["uses-it", "also-uses-it"] {
        ok(
            &app,
            &t,
            "CreatePipeline",
            // Named in another case: the same connection.
            json!({"pipeline": private_source(name, "https://git.example.com/app.git", Some("forge"))}),
        )
        .await;
    }
    let arn = |name: &str| json!({"ConnectionArn": format!("arn:sluice:codeconnections:::connection/{name}")});
    let (status, body) = crate::harness::api_call(&app, &t, "DeleteConnection", arn("FORGE")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["__type"], "ResourceInUseException");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("2 pipelines")
            && message.contains("uses-it")
            && message.contains("also-uses-it"),
        "{message}"
    );
    // Nothing was deleted; once no pipeline names it, it goes.
    ok(&app, &t, "GetConnection", arn("Forge")).await;
    for name in ["uses-it", "also-uses-it"] {
        ok(&app, &t, "DeletePipeline", json!({"name": name})).await;
    }
    ok(&app, &t, "DeleteConnection", arn("forge")).await;
    let (status, _) = crate::harness::api_call(&app, &t, "GetConnection", arn("Forge")).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn connections_are_stored_replaced_and_deleted_from_the_console_and_a_token_shows_nowhere() {
    let (app, t) = crate::harness::admin_api().await;
    let admin = app.sign_in("admin", crate::harness::ADMIN_PASSWORD).await;
    let page = |client: reqwest::Client| {
        let url = app.url("/admin/connections");
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, html) = page(admin.clone()).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("New connection") && html.contains("None yet."),
        "{html}"
    );

    let secret = "glpat-console-secret-0042";
    let made = app
        .post_form(
            &admin,
            "/admin/connections",
            &[
                ("name", "Forge"),
                ("provider_type", "GitLab"),
                ("username", "bot"),
                ("token", secret),
                ("ca_certificate", ""),
            ],
        )
        .await;
    assert_eq!(made.status(), 303);
    let (_, html) = page(admin.clone()).await;
    assert!(
        html.contains("Forge") && html.contains("GitLab") && html.contains("****"),
        "{html}"
    );
    assert!(!html.contains(secret));

    // Junk is refused beside the form, what was typed kept but the token.
    let refused = app
        .post_form(
            &admin,
            "/admin/connections",
            &[
                ("name", "bad name!"),
                ("provider_type", "GitLab"),
                ("username", "bot<b>"),
                ("token", secret),
            ],
        )
        .await;
    assert_eq!(refused.status(), 400);
    let html = refused.text().await.unwrap();
    assert!(
        html.contains("ConnectionName") || html.contains("letters, digits"),
        "{html}"
    );
    let typed = &html[html.find(r#"id="c-user""#).unwrap()..];
    let typed = &typed[..typed.find('>').unwrap()];
    assert!(
        typed.contains("bot&#60;b&#62;") || typed.contains("bot&lt;b&gt;"),
        "typed values come back, escaped: {typed}"
    );
    assert!(!html.contains(secret), "the token is never sent back");
    // The same name in another case is the same connection.
    let again = app
        .post_form(
            &admin,
            "/admin/connections",
            &[
                ("name", "FORGE"),
                ("provider_type", "Git"),
                ("username", "bot"),
                ("token", "x-other-1"),
            ],
        )
        .await;
    assert_eq!(again.status(), 400);

    // The token is replaced; nothing shows it, not the audit log either.
    let replaced = app
        .post_form(
            &admin,
            "/admin/connections/Forge/token",
            &[("token", "glpat-replaced-0043")],
        )
        .await;
    assert_eq!(replaced.status(), 303);
    let audit = app.page("/admin/audit").await;
    assert!(!audit.contains(secret) && !audit.contains("glpat-replaced-0043"));

    // In use: not deleted, the page says by whom.
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": private_source("needs-forge", "https://git.example.com/app.git", Some("Forge"))}),
    )
    .await;
    let in_use = app
        .post_form(&admin, "/admin/connections/Forge/delete", &[])
        .await;
    assert_eq!(in_use.status(), 409);
    let html = in_use.text().await.unwrap();
    assert!(html.contains("needs-forge"), "{html}");
    ok(&app, &t, "DeletePipeline", json!({"name": "needs-forge"})).await;
    let deleted = app
        .post_form(&admin, "/admin/connections/Forge/delete", &[])
        .await;
    assert_eq!(deleted.status(), 303);
    let (_, html) = page(admin.clone()).await;
    assert!(html.contains("None yet."));

    // Someone not allowed to list connections is refused the page.
    crate::harness::user_with_policy(
        &app,
        &t,
        "reader",
        Some(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["codepipeline:GetPipeline"], "Resource": "*"}]}),
        ),
    )
    .await;
    let reader = app.sign_in("reader", crate::harness::USER_PASSWORD).await;
    let (status, _) = page(reader).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_connection_bound_to_a_host_sends_its_credentials_to_that_host_only() {
    let server = git_server();
    let (app, t) = workers_app().await;
    let host = server
        .url()
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    for (name, bound) in [
        ("Here", host.to_uppercase()),
        ("Elsewhere", "git.example.com".to_string()),
    ] {
        ok(
            &app,
            &t,
            "CreateConnection",
            json!({"ConnectionName": name, "ProviderType": "Git", "Username": "bot",
                   "Token": TOKEN, "CaCertificate": server.certificate, "Host": bound}),
        )
        .await;
    }
    let shown = ok(
        &app,
        &t,
        "GetConnection",
        json!({"ConnectionArn": "arn:sluice:codeconnections:::connection/Here"}),
    )
    .await;
    assert_eq!(
        shown["Connection"]["Host"],
        host.as_str(),
        "stored lowercase: {shown}"
    );

    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": private_source("bound", &server.url(), Some("Here"))}),
    )
    .await;
    let id = first_execution(&app, &t, "bound").await;
    wait_for_end(&app, &t, "bound", &id).await;
    assert_eq!(source_summary(&app, &id).await.0, "Succeeded");

    let before = server.requests();
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": private_source("astray", &server.url(), Some("Elsewhere"))}),
    )
    .await;
    let id = first_execution(&app, &t, "astray").await;
    wait_for_end(&app, &t, "astray", &id).await;
    let (status, summary, _) = source_summary(&app, &id).await;
    assert_eq!(status, "Failed");
    let summary = summary.unwrap();
    assert!(
        summary.contains("for git.example.com only") && summary.contains(&host),
        "{summary}"
    );
    assert_eq!(server.requests(), before, "nothing was sent to the server");

    for bad in ["", "a b", "host:0", "host:99999", "-x.example.com"] {
        let (status, answer) = crate::harness::api_call(
            &app,
            &t,
            "CreateConnection",
            json!({"ConnectionName": "Bad", "ProviderType": "Git", "Username": "bot", "Token": TOKEN, "Host": bad}),
        )
        .await;
        if bad.is_empty() {
            assert_eq!(status, 200, "an empty host is no host");
            ok(
                &app,
                &t,
                "DeleteConnection",
                json!({"ConnectionArn": "arn:sluice:codeconnections:::connection/Bad"}),
            )
            .await;
        } else {
            assert_eq!(
                (status, answer["__type"].as_str()),
                (400, Some("ValidationException")),
                "{bad}: {answer}"
            );
        }
    }
}
