//! The JSON API: authentication, the dispatcher's errors, every identity operation, authorization
//! of each, and the audit log behind them.

use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};
use time::Duration;

use crate::harness::{TestApp, api_call as call, api_ok as ok, run_sluice, spawn_app};

/// An app with an administrator and an API token for them.
async fn admin_api() -> (TestApp, String) {
    let app = spawn_app().await;
    app.setup_admin().await;
    let token = console_token(&app, &app.client, &[]).await;
    (app, token)
}

/// Creates an API token for the administrator through the account page.
async fn console_token(app: &TestApp, client: &reqwest::Client, extra: &[(&str, &str)]) -> String {
    app.console_token_as(client, crate::harness::ADMIN_PASSWORD, extra)
        .await
}

async fn err(app: &TestApp, token: &str, op: &str, body: Value) -> (u16, String, String) {
    let (status, out) = call(app, token, op, body).await;
    (
        status,
        out["__type"].as_str().unwrap_or_default().to_string(),
        out["message"].as_str().unwrap_or_default().to_string(),
    )
}

const PASSWORD: &str = "a long and unusual passphrase 42";

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let (app, token) = admin_api().await;
    let post = |auth: Option<String>| {
        let app = &app;
        async move {
            let mut req = crate::harness::client()
                .post(app.url("/api/v1/GetCallerIdentity"))
                .json(&json!({}));
            if let Some(auth) = auth {
                req = req.header("Authorization", auth);
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            (
                status,
                body["__type"].as_str().unwrap_or_default().to_string(),
            )
        }
    };
    assert_eq!(
        post(None).await,
        (401, "MissingAuthenticationTokenException".into())
    );
    assert_eq!(
        post(Some("Basic YWRtaW46eA==".into())).await,
        (401, "UnrecognizedClientException".into())
    );
    assert_eq!(
        post(Some("Bearer sluice_nope".into())).await,
        (401, "UnrecognizedClientException".into())
    );
    let forged = format!("Bearer sluice_{}", "A".repeat(43));
    assert_eq!(
        post(Some(forged)).await,
        (401, "UnrecognizedClientException".into())
    );
    assert_eq!(post(Some(format!("Bearer {token}"))).await.0, 200);

    // The console's session cookie is not a credential for the API.
    let with_cookie = app
        .client
        .post(app.url("/api/v1/GetCallerIdentity"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 401);

    // Expired and revoked tokens stop working.
    let out = ok(&app, &token, "CreateAccessKey", json!({"expiresInDays": 1})).await;
    let short = out["accessKey"]["token"].as_str().unwrap().to_string();
    let short_id = out["accessKey"]["tokenId"].as_str().unwrap().to_string();
    assert_eq!(
        call(&app, &short, "GetCallerIdentity", json!({})).await.0,
        200
    );
    app.clock.advance(Duration::days(2));
    assert_eq!(
        err(&app, &short, "GetCallerIdentity", json!({})).await.1,
        "UnrecognizedClientException"
    );
    ok(
        &app,
        &token,
        "DeleteAccessKey",
        json!({"tokenId": short_id}),
    )
    .await;
    let out = ok(&app, &token, "CreateAccessKey", json!({})).await;
    let doomed = out["accessKey"]["token"].as_str().unwrap().to_string();
    let doomed_id = out["accessKey"]["tokenId"].as_str().unwrap().to_string();
    ok(&app, &doomed, "GetCallerIdentity", json!({})).await;
    ok(
        &app,
        &token,
        "DeleteAccessKey",
        json!({"tokenId": doomed_id}),
    )
    .await;
    assert_eq!(
        err(&app, &doomed, "GetCallerIdentity", json!({})).await.0,
        401
    );
}

#[tokio::test]
async fn the_dispatcher_speaks_codepipelines_protocol() {
    let (app, token) = admin_api().await;
    let me = ok(&app, &token, "GetCallerIdentity", json!({})).await;
    assert_eq!(me["userName"], "admin");
    assert_eq!(me["userArn"], "arn:sluice:iam:::user/admin");
    assert!(me["tokenId"].is_string());

    // The same operation through X-Amz-Target at /.
    let res = app
        .client
        .post(app.url("/"))
        .header("X-Amz-Target", "CodePipeline_20150709.GetCallerIdentity")
        .header("Content-Type", "application/x-amz-json-1.1")
        .bearer_auth(&token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["userName"], "admin");

    let (status, kind, _) = err(&app, &token, "NoSuchThing", json!({})).await;
    assert_eq!((status, kind.as_str()), (400, "UnknownOperationException"));

    let res = app
        .client
        .post(app.url("/api/v1/CreateUser"))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["__type"],
        "SerializationException"
    );

    let (_, kind, message) = err(&app, &token, "CreateUser", json!({"userName": 42})).await;
    assert_eq!(kind, "SerializationException");
    assert!(message.contains("userName"), "{message}");
    let (_, kind, message) = err(
        &app,
        &token,
        "CreateUser",
        json!({"userName": "x", "colour": "red"}),
    )
    .await;
    assert_eq!(kind, "SerializationException");
    assert!(message.contains("colour"), "{message}");
    let (_, kind, message) = err(&app, &token, "CreateUser", json!({"userName": "bad name"})).await;
    assert_eq!(kind, "ValidationException");
    assert!(message.contains("userName"), "{message}");

    // A body over the limit gets the API's JSON error, not an HTML page.
    let res = app
        .client
        .post(app.url("/api/v1/CreateUser"))
        .bearer_auth(&token)
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(
        res.json::<Value>().await.unwrap()["__type"],
        "RequestEntityTooLargeException"
    );
}

#[tokio::test]
async fn users_groups_policies_and_attachments_round_trip() {
    let (app, t) = admin_api().await;
    let user = ok(
        &app,
        &t,
        "CreateUser",
        json!({"userName": "alice", "password": PASSWORD}),
    )
    .await;
    assert_eq!(user["user"]["userName"], "alice");
    assert_eq!(user["user"]["arn"], "arn:sluice:iam:::user/alice");
    assert_eq!(user["user"]["enabled"], true);
    assert!(user["user"]["createDate"].as_f64().unwrap() > 1.7e9);
    assert_eq!(
        err(&app, &t, "CreateUser", json!({"userName": "ALICE"}))
            .await
            .1,
        "EntityAlreadyExistsException"
    );
    ok(&app, &t, "CreateUser", json!({"userName": "bob"})).await;

    let page = ok(&app, &t, "ListUsers", json!({"maxResults": 2})).await;
    assert_eq!(page["users"].as_array().unwrap().len(), 2);
    let next = page["nextToken"].as_str().unwrap().to_string();
    let rest = ok(
        &app,
        &t,
        "ListUsers",
        json!({"maxResults": 2, "nextToken": next}),
    )
    .await;
    let names: Vec<&str> = rest["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bob"]);
    assert!(rest["nextToken"].is_null());

    let updated = ok(
        &app,
        &t,
        "UpdateUser",
        json!({"userName": "bob", "enabled": false}),
    )
    .await;
    assert_eq!(updated["user"]["enabled"], false);

    ok(
        &app,
        &t,
        "CreateGroup",
        json!({"groupName": "release-managers"}),
    )
    .await;
    ok(
        &app,
        &t,
        "AddUserToGroup",
        json!({"groupName": "release-managers", "userName": "alice"}),
    )
    .await;
    let group = ok(
        &app,
        &t,
        "GetGroup",
        json!({"groupName": "release-managers"}),
    )
    .await;
    assert_eq!(group["users"][0]["userName"], "alice");
    assert_eq!(
        ok(&app, &t, "ListGroups", json!({})).await["groups"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "codepipeline:Get*", "Resource": "*"}]}).to_string();
    let policy = ok(
        &app,
        &t,
        "CreatePolicy",
        json!({"policyName": "Readers", "policyDocument": doc, "description": "read"}),
    )
    .await;
    assert_eq!(policy["policy"]["arn"], "arn:sluice:iam:::policy/Readers");
    assert_eq!(policy["policy"]["isManaged"], false);
    let (_, kind, message) = err(&app, &t, "CreatePolicy", json!({"policyName": "Bad", "policyDocument": "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\",\"Condition\":{}}]}"})).await;
    assert_eq!(kind, "ValidationException");
    assert!(message.contains("Statement[0].Condition"), "{message}");

    ok(
        &app,
        &t,
        "AttachGroupPolicy",
        json!({"groupName": "release-managers", "policyName": "Readers"}),
    )
    .await;
    ok(
        &app,
        &t,
        "AttachUserPolicy",
        json!({"userName": "alice", "policyName": "AWSCodePipelineApproverAccess"}),
    )
    .await;
    let attached = ok(
        &app,
        &t,
        "ListAttachedUserPolicies",
        json!({"userName": "alice"}),
    )
    .await;
    assert_eq!(
        attached["attachedPolicies"][0]["policyName"],
        "AWSCodePipelineApproverAccess"
    );
    let attached = ok(
        &app,
        &t,
        "ListAttachedGroupPolicies",
        json!({"groupName": "release-managers"}),
    )
    .await;
    assert_eq!(attached["attachedPolicies"][0]["policyName"], "Readers");

    assert_eq!(
        err(&app, &t, "DeletePolicy", json!({"policyName": "Readers"}))
            .await
            .1,
        "DeleteConflictException"
    );
    assert_eq!(
        err(
            &app,
            &t,
            "DeletePolicy",
            json!({"policyName": "AdministratorAccess"})
        )
        .await
        .1,
        "ValidationException"
    );
    assert_eq!(
        err(
            &app,
            &t,
            "UpdatePolicy",
            json!({"policyName": "AdministratorAccess", "policyDocument": doc})
        )
        .await
        .1,
        "ValidationException"
    );
    let v2 = ok(
        &app,
        &t,
        "UpdatePolicy",
        json!({"policyName": "Readers", "policyDocument": doc, "description": "read, v2"}),
    )
    .await;
    assert_eq!(v2["policy"]["defaultVersionId"], "v2");
    let got = ok(&app, &t, "GetPolicy", json!({"policyName": "Readers"})).await;
    assert_eq!(got["policyDocument"], doc.as_str());
    ok(
        &app,
        &t,
        "DetachGroupPolicy",
        json!({"groupName": "release-managers", "policyName": "Readers"}),
    )
    .await;
    ok(&app, &t, "DeletePolicy", json!({"policyName": "Readers"})).await;
    let listed = ok(&app, &t, "ListPolicies", json!({"scope": "AWS"})).await;
    assert_eq!(
        listed["policies"].as_array().unwrap().len(),
        5,
        "the five managed policies"
    );

    ok(
        &app,
        &t,
        "RemoveUserFromGroup",
        json!({"groupName": "release-managers", "userName": "alice"}),
    )
    .await;
    ok(
        &app,
        &t,
        "DeleteGroup",
        json!({"groupName": "release-managers"}),
    )
    .await;
    ok(&app, &t, "DeleteUser", json!({"userName": "bob"})).await;
    assert_eq!(
        err(&app, &t, "GetUser", json!({"userName": "bob"})).await.1,
        "NoSuchEntityException"
    );
    assert_eq!(
        err(&app, &t, "DeleteUser", json!({"userName": "admin"}))
            .await
            .1,
        "ValidationException",
        "not yourself"
    );
}

#[tokio::test]
async fn a_read_only_user_is_denied_every_write_and_each_denial_is_audited() {
    let (app, admin) = admin_api().await;
    ok(
        &app,
        &admin,
        "CreateUser",
        json!({"userName": "viewer", "password": PASSWORD}),
    )
    .await;
    ok(
        &app,
        &admin,
        "AttachUserPolicy",
        json!({"userName": "viewer", "policyName": "AWSCodePipeline_ReadOnlyAccess"}),
    )
    .await;
    let viewer_client = app.sign_in("viewer", PASSWORD).await;
    // Self-service: the viewer may create their own token despite having no iam: permission.
    let viewer = app.console_token_as(&viewer_client, PASSWORD, &[]).await;
    ok(&app, &viewer, "GetCallerIdentity", json!({})).await;

    let doc =
        json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}).to_string();
    let writes = [
        ("CreateUser", json!({"userName": "x"})),
        ("UpdateUser", json!({"userName": "admin", "enabled": false})),
        ("DeleteUser", json!({"userName": "admin"})),
        ("CreateGroup", json!({"groupName": "g"})),
        ("DeleteGroup", json!({"groupName": "g"})),
        (
            "AddUserToGroup",
            json!({"groupName": "g", "userName": "viewer"}),
        ),
        (
            "RemoveUserFromGroup",
            json!({"groupName": "g", "userName": "viewer"}),
        ),
        (
            "CreatePolicy",
            json!({"policyName": "p", "policyDocument": doc}),
        ),
        (
            "UpdatePolicy",
            json!({"policyName": "p", "policyDocument": doc}),
        ),
        ("DeletePolicy", json!({"policyName": "p"})),
        (
            "AttachUserPolicy",
            json!({"userName": "viewer", "policyName": "AdministratorAccess"}),
        ),
        (
            "DetachUserPolicy",
            json!({"userName": "viewer", "policyName": "AWSCodePipeline_ReadOnlyAccess"}),
        ),
        (
            "AttachGroupPolicy",
            json!({"groupName": "g", "policyName": "AdministratorAccess"}),
        ),
        (
            "DetachGroupPolicy",
            json!({"groupName": "g", "policyName": "AdministratorAccess"}),
        ),
        ("CreateAccessKey", json!({"userName": "admin"})),
        (
            "DeleteAccessKey",
            json!({"userName": "admin", "tokenId": "00000000-0000-0000-0000-000000000000"}),
        ),
    ];
    let reads = [
        ("GetUser", json!({"userName": "admin"})),
        ("ListUsers", json!({})),
        ("GetGroup", json!({"groupName": "g"})),
        ("ListGroups", json!({})),
        ("GetPolicy", json!({"policyName": "AdministratorAccess"})),
        ("ListPolicies", json!({})),
        ("ListAttachedUserPolicies", json!({"userName": "admin"})),
        ("ListAttachedGroupPolicies", json!({"groupName": "g"})),
        ("ListAccessKeys", json!({"userName": "admin"})),
        (
            "SimulatePrincipalPolicy",
            json!({"userName": "admin", "actionNames": ["iam:GetUser"]}),
        ),
        ("LookupAuditEvents", json!({})),
    ];
    for (op, body) in writes.iter().chain(reads.iter()) {
        let (status, kind, message) = err(&app, &viewer, op, body.clone()).await;
        assert_eq!(
            (status, kind.as_str()),
            (400, "AccessDeniedException"),
            "{op}"
        );
        assert!(
            message.starts_with(
                "User: arn:sluice:iam:::user/viewer is not authorized to perform: iam:"
            ) || message.starts_with(
                "User: arn:sluice:iam:::user/viewer is not authorized to perform: sluice:"
            ),
            "{op}: {message}"
        );
    }
    // Nothing changed, and every refusal left one AccessDenied event.
    ok(&app, &admin, "GetUser", json!({"userName": "admin"})).await;
    let denied = ok(
        &app,
        &admin,
        "LookupAuditEvents",
        json!({"userName": "viewer", "outcome": "AccessDenied", "maxResults": 1000}),
    )
    .await;
    assert_eq!(
        denied["events"].as_array().unwrap().len(),
        writes.len() + reads.len()
    );
}

#[tokio::test]
async fn a_narrowed_token_can_do_only_what_its_policy_allows() {
    let (app, admin) = admin_api().await;
    let narrowing =
        json!({"Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]})
            .to_string();
    let out = ok(
        &app,
        &admin,
        "CreateAccessKey",
        json!({"policyDocument": narrowing}),
    )
    .await;
    assert_eq!(out["accessKey"]["narrowed"], true);
    let narrow = out["accessKey"]["token"].as_str().unwrap().to_string();
    ok(&app, &narrow, "GetUser", json!({"userName": "admin"})).await;
    assert_eq!(
        err(&app, &narrow, "ListUsers", json!({})).await.1,
        "AccessDeniedException"
    );
    // Nor can it mint itself an unnarrowed token.
    assert_eq!(
        err(&app, &narrow, "CreateAccessKey", json!({})).await.1,
        "AccessDeniedException"
    );
    let listed = ok(&app, &admin, "ListAccessKeys", json!({})).await;
    assert!(
        listed["accessKeys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["narrowed"] == true)
    );
    assert!(
        listed["accessKeys"][0].get("token").is_none(),
        "tokens are never listed"
    );
}

#[tokio::test]
async fn the_simulator_reports_each_pair_with_the_deciding_statements() {
    let (app, t) = admin_api().await;
    ok(&app, &t, "CreateUser", json!({"userName": "gatekeeper"})).await;
    let doc = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Approve", "Effect": "Allow", "Action": "codepipeline:PutApprovalResult",
         "Resource": "arn:aws:codepipeline:us-east-2:80398EXAMPLE:MyPipeline/MyApprovalStage/MyApprovalAction"},
        {"Sid": "NoProd", "Effect": "Deny", "Action": "codepipeline:*", "Resource": "arn:sluice:codepipeline:::Prod*"}
    ]}).to_string();
    ok(
        &app,
        &t,
        "CreatePolicy",
        json!({"policyName": "Gate", "policyDocument": doc}),
    )
    .await;
    ok(
        &app,
        &t,
        "AttachUserPolicy",
        json!({"userName": "gatekeeper", "policyName": "Gate"}),
    )
    .await;
    let out = ok(
        &app,
        &t,
        "SimulatePrincipalPolicy",
        json!({
            "userName": "gatekeeper",
            "actionNames": ["codepipeline:PutApprovalResult"],
            "resourceArns": [
                "arn:sluice:codepipeline:::MyPipeline/MyApprovalStage/MyApprovalAction",
                "arn:sluice:codepipeline:::MyPipeline/MyApprovalStage/Sibling",
                "arn:sluice:codepipeline:::ProdPipeline/Stage/Action"
            ]
        }),
    )
    .await;
    let results = out["evaluationResults"].as_array().unwrap();
    let decisions: Vec<&str> = results
        .iter()
        .map(|r| r["evalDecision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["allowed", "implicitDeny", "explicitDeny"]);
    assert_eq!(
        results[0]["matchedStatements"][0],
        json!({"policyName": "Gate", "sid": "Approve", "effect": "Allow"})
    );
    assert_eq!(results[2]["matchedStatements"][0]["sid"], "NoProd");
    let (_, kind, message) = err(
        &app,
        &t,
        "SimulatePrincipalPolicy",
        json!({"userName": "gatekeeper", "actionNames": ["s3:GetObject"]}),
    )
    .await;
    assert_eq!(kind, "ValidationException");
    assert!(message.contains("actionNames[0]"), "{message}");
}

#[tokio::test]
async fn the_audit_log_records_changes_masks_secrets_and_filters() {
    let (app, t) = admin_api().await;
    ok(
        &app,
        &t,
        "CreateUser",
        json!({"userName": "carol", "password": PASSWORD}),
    )
    .await;
    let events = ok(
        &app,
        &t,
        "LookupAuditEvents",
        json!({"eventName": "iam:CreateUser", "resourcePrefix": "arn:sluice:iam:::user/carol"}),
    )
    .await;
    let event = &events["events"][0];
    assert_eq!(event["userName"], "admin");
    assert_eq!(event["outcome"], "success");
    assert_eq!(event["resourceArn"], "arn:sluice:iam:::user/carol");
    assert_eq!(event["requestParameters"]["password"], "****");
    assert!(event["tokenId"].is_string(), "the token used is recorded");
    assert_eq!(event["sourceIpAddress"], "127.0.0.1");
    assert!(event["requestId"].is_string());
    let dump = events.to_string();
    assert!(
        !dump.contains(PASSWORD),
        "the password never reaches the log"
    );

    // Reads are not audited; a time window narrows results.
    ok(&app, &t, "ListUsers", json!({})).await;
    let listed = ok(
        &app,
        &t,
        "LookupAuditEvents",
        json!({"eventName": "iam:ListUsers"}),
    )
    .await;
    assert!(listed["events"].as_array().unwrap().is_empty());
    let future = ok(&app, &t, "LookupAuditEvents", json!({"startTime": 4.0e9})).await;
    assert!(future["events"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn audit_rows_cannot_be_changed_and_verify_finds_tampering() {
    let (app, t) = admin_api().await;
    ok(&app, &t, "CreateUser", json!({"userName": "dave"})).await;
    ok(&app, &t, "CreateGroup", json!({"groupName": "ops"})).await;
    let url = app.db.url();
    let key = app.master_key.clone();
    let verify = move || {
        let url = url.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || {
            run_sluice(
                &["audit", "verify", "--database-url", &url],
                &[("SLUICE_MASTER_KEY", &key)],
            )
        })
    };
    let (code, stdout, stderr) = verify().await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("audit log intact"), "{stdout}");
    assert!(stdout.contains("head: event #"), "{stdout}");

    let mut conn = PgConnection::connect_with(&app.db.options).await.unwrap();
    let refused = conn
        .execute("UPDATE audit_events SET outcome = 'success'")
        .await;
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    let refused = conn.execute("DELETE FROM audit_events").await;
    assert!(refused.is_err());

    // Behind the application's back (a superuser switching the trigger off).
    conn.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update")
        .await
        .unwrap();
    conn.execute("UPDATE audit_events SET user_name = 'someone-else' WHERE event_name = 'iam:CreateUser' AND resource_arn LIKE '%dave'")
        .await
        .unwrap();
    conn.execute(
        "UPDATE audit_events SET outcome = 'changed' WHERE event_name = 'iam:CreateGroup'",
    )
    .await
    .unwrap();
    conn.close().await.unwrap();
    let (code, _, stderr) = verify().await.unwrap();
    assert_eq!(code, 1);
    assert_eq!(
        stderr.matches("audit log broken at event #").count(),
        2,
        "every altered event is reported, once each: {stderr}"
    );
    assert!(stderr.contains("altered"), "{stderr}");
}

#[tokio::test]
async fn admin_commands_provision_users_and_tokens_headlessly() {
    let app = spawn_app().await;
    let url = app.db.url();
    let key = app.master_key.clone();
    let run = |args: Vec<String>, stdin: Option<&'static str>| {
        let key = key.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            use std::process::Stdio;
            let mut cmd = crate::harness::sluice_command();
            // The server's master key: it opens the keys the audit events are chained with.
            cmd.env("SLUICE_MASTER_KEY", key)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            if let Some(input) = stdin {
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
            }
            drop(child.stdin.take());
            let out = child.wait_with_output().unwrap();
            (
                out.status.code().unwrap(),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        })
    };
    let args = |list: &[&str]| {
        list.iter()
            .map(|s| s.to_string())
            .chain(["--database-url".to_string(), url.clone()])
            .collect::<Vec<_>>()
    };

    let (code, _, stderr) = run(
        args(&[
            "admin",
            "create-user",
            "--username",
            "ci-bot",
            "--password-stdin",
            "--policy",
            "AWSCodePipeline_FullAccess",
        ]),
        Some("a long and unusual passphrase 42\n"),
    )
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(
        args(&[
            "admin",
            "create-access-key",
            "--username",
            "ci-bot",
            "--expires-in-days",
            "30",
        ]),
        None,
    )
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    let token = stdout.trim().to_string();
    assert!(
        token.starts_with("sluice_") && !token.contains('\n'),
        "stdout holds the token only: {stdout:?}"
    );
    let me = ok(&app, &token, "GetCallerIdentity", json!({})).await;
    assert_eq!(me["userName"], "ci-bot");
    assert_eq!(
        err(&app, &token, "ListUsers", json!({})).await.1,
        "AccessDeniedException",
        "FullAccess is codepipeline only"
    );

    let (code, _, stderr) = run(
        args(&[
            "admin",
            "create-user",
            "--username",
            "weak",
            "--password-stdin",
        ]),
        Some("password1234\n"),
    )
    .await
    .unwrap();
    assert_eq!(code, 2);
    assert!(stderr.contains("too easy to guess"), "{stderr}");
    let (code, _, stderr) = run(
        args(&[
            "admin",
            "create-user",
            "--username",
            "x",
            "--password-stdin",
            "--policy",
            "NoSuchPolicy",
        ]),
        Some("a long and unusual passphrase 42\n"),
    )
    .await
    .unwrap();
    assert_eq!(code, 2);
    assert!(
        stderr.contains("there is no policy called NoSuchPolicy"),
        "{stderr}"
    );

    let (code, _, stderr) = run(
        args(&[
            "admin",
            "reset-password",
            "--username",
            "ci-bot",
            "--password-stdin",
        ]),
        Some("another fine passphrase 2026\n"),
    )
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    app.sign_in("ci-bot", "another fine passphrase 2026").await;
}

#[tokio::test]
async fn a_disabled_users_tokens_are_refused_at_once() {
    let (app, admin) = admin_api().await;
    ok(&app, &admin, "CreateUser", json!({"userName": "robot"})).await;
    let out = ok(
        &app,
        &admin,
        "CreateAccessKey",
        json!({"userName": "robot"}),
    )
    .await;
    let robot = out["accessKey"]["token"].as_str().unwrap().to_string();
    ok(&app, &robot, "GetCallerIdentity", json!({})).await;
    ok(
        &app,
        &admin,
        "UpdateUser",
        json!({"userName": "robot", "enabled": false}),
    )
    .await;
    assert_eq!(
        err(&app, &robot, "GetCallerIdentity", json!({})).await.1,
        "UnrecognizedClientException"
    );
    ok(
        &app,
        &admin,
        "UpdateUser",
        json!({"userName": "robot", "enabled": true}),
    )
    .await;
    ok(&app, &robot, "GetCallerIdentity", json!({})).await;
}

#[tokio::test]
async fn concurrent_changes_keep_one_unbroken_chain() {
    let (app, t) = admin_api().await;
    let calls = (0..24).map(|i| {
        let app = &app;
        let t = &t;
        async move { ok(app, t, "CreateGroup", json!({"groupName": format!("g{i}")})).await }
    });
    futures_util::future::join_all(calls).await;
    let url = app.db.url();
    let key = app.master_key.clone();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        run_sluice(
            &["audit", "verify", "--database-url", &url],
            &[("SLUICE_MASTER_KEY", &key)],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    // Set-up, the console token, and the 24 groups.
    assert!(stdout.contains("intact: 26 event(s)"), "{stdout}");
}
