//! Regression tests for the holes review found: case-changed names against an explicit Deny,
//! refusals that were not audited, unreadable policies, over-disclosure, racing the sign-in
//! throttle, forged client addresses, audit events that broke the chain, and API tokens.

use futures_util::future::join_all;
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};

use crate::harness::{
    ADMIN, ADMIN_PASSWORD, TestApp, USER_PASSWORD as PASSWORD, admin_api, api_call as call,
    api_ok as ok, client, spawn_app, user_with_policy,
};

async fn db(app: &TestApp) -> PgConnection {
    PgConnection::connect_with(&app.db.options).await.unwrap()
}

async fn denials(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE outcome = 'AccessDenied'")
        .fetch_one(&mut db(app).await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_case_changed_name_never_escapes_an_explicit_deny() {
    let (app, admin) = admin_api().await;
    ok(&app, &admin, "CreateGroup", json!({"groupName": "ops"})).await;
    ok(
        &app,
        &admin,
        "CreatePolicy",
        json!({"policyName": "guarded", "policyDocument": json!({"Statement": [{"Effect": "Allow", "Action": "codepipeline:Get*", "Resource": "*"}]}).to_string()}),
    )
    .await;
    let deputy = user_with_policy(
        &app,
        &admin,
        "deputy",
        Some(json!({"Statement": [
            {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "iam:*", "Resource": [
                "arn:sluice:iam:::user/admin", "arn:sluice:iam:::group/ops", "arn:sluice:iam:::policy/guarded"]}
        ]})),
    )
    .await;
    let doc =
        json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}).to_string();
    for user in ["ADMIN", "Admin", "aDmIn"] {
        let attempts = [
            ("GetUser", json!({"userName": user})),
            ("UpdateUser", json!({"userName": user, "enabled": false})),
            ("DeleteUser", json!({"userName": user})),
            ("CreateAccessKey", json!({"userName": user})),
            ("ListAccessKeys", json!({"userName": user})),
            (
                "DeleteAccessKey",
                json!({"userName": user, "tokenId": uuid::Uuid::new_v4().to_string()}),
            ),
            (
                "AttachUserPolicy",
                json!({"userName": user, "policyName": "AdministratorAccess"}),
            ),
            (
                "DetachUserPolicy",
                json!({"userName": user, "policyName": "AdministratorAccess"}),
            ),
            ("ListAttachedUserPolicies", json!({"userName": user})),
            (
                "SimulatePrincipalPolicy",
                json!({"userName": user, "actionNames": ["iam:GetUser"]}),
            ),
        ];
        for (op, body) in attempts {
            let (status, out) = call(&app, &deputy, op, body).await;
            assert_eq!(
                out["__type"], "AccessDeniedException",
                "{op} as {user}: {out}"
            );
            assert_eq!(status, 400);
            assert!(
                out["message"].as_str().unwrap().ends_with("user/admin"),
                "decided on the stored name: {out}"
            );
        }
    }
    for group in ["OPS", "Ops"] {
        for (op, body) in [
            ("GetGroup", json!({"groupName": group})),
            ("DeleteGroup", json!({"groupName": group})),
            (
                "AddUserToGroup",
                json!({"groupName": group, "userName": "deputy"}),
            ),
            (
                "RemoveUserFromGroup",
                json!({"groupName": group, "userName": "deputy"}),
            ),
            (
                "AttachGroupPolicy",
                json!({"groupName": group, "policyName": "AdministratorAccess"}),
            ),
            (
                "DetachGroupPolicy",
                json!({"groupName": group, "policyName": "AdministratorAccess"}),
            ),
            ("ListAttachedGroupPolicies", json!({"groupName": group})),
        ] {
            let (_, out) = call(&app, &deputy, op, body).await;
            assert_eq!(
                out["__type"], "AccessDeniedException",
                "{op} as {group}: {out}"
            );
        }
    }
    for policy in ["GUARDED", "Guarded"] {
        for (op, body) in [
            ("GetPolicy", json!({"policyName": policy})),
            (
                "UpdatePolicy",
                json!({"policyName": policy, "policyDocument": doc}),
            ),
            ("DeletePolicy", json!({"policyName": policy})),
        ] {
            let (_, out) = call(&app, &deputy, op, body).await;
            assert_eq!(
                out["__type"], "AccessDeniedException",
                "{op} as {policy}: {out}"
            );
        }
    }
    // Nothing happened to the protected entities.
    let keys = ok(&app, &admin, "ListAccessKeys", json!({})).await;
    assert_eq!(
        keys["accessKeys"].as_array().unwrap().len(),
        1,
        "no token was minted for admin"
    );
    let got = ok(&app, &admin, "GetUser", json!({})).await;
    assert_eq!(got["user"]["userName"], "admin");
    // A missing name is refused the same way as an existing one the caller may not see...
    let (_, out) = call(&app, &deputy, "GetUser", json!({"userName": "nobody"})).await;
    assert_eq!(
        out["__type"], "NoSuchEntityException",
        "allowed on the name, so told it is missing"
    );
    // ...and the console decides on the stored name too.
    let deputy_client = app.sign_in("deputy", PASSWORD).await;
    let res = deputy_client
        .get(app.url("/admin/users/ADMIN"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .post_form(
            &deputy_client,
            "/admin/users/ADMIN/enabled",
            &[("enabled", "false")],
        )
        .await;
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn every_refusal_writes_exactly_one_access_denied_event() {
    let (app, admin) = admin_api().await;
    ok(&app, &admin, "CreateGroup", json!({"groupName": "ops"})).await;
    let nobody_token = user_with_policy(&app, &admin, "nobody", None).await;
    let nobody = app.sign_in("nobody", PASSWORD).await;
    let pipeline = crate::pipelines::web_app("web");
    ok(
        &app,
        &admin,
        "CreatePipeline",
        json!({"pipeline": pipeline}),
    )
    .await;

    let pages = [
        "/",
        "/admin",
        "/admin/users",
        "/admin/users/admin",
        "/admin/groups",
        "/admin/groups/ops",
        "/admin/policies",
        "/admin/policies/new",
        "/admin/policies/AdministratorAccess",
        "/admin/audit",
        "/admin/audit/export",
        "/admin/audit/events/6f1f8a8e-1c2b-4d3e-9f00-000000000004",
        "/admin/workers",
        "/pipelines/new",
        "/pipelines/new/settings",
        "/pipelines/new/review",
        "/pipelines/import",
        "/pipelines/web",
        "/pipelines/web/export",
        "/pipelines/web/clone",
        "/pipelines/web/versions",
        "/pipelines/web/diff?from=1&to=1",
        "/pipelines/web/edit",
        "/pipelines/web/edit/json",
        "/pipelines/web/release",
        "/pipelines/web/executions",
        "/pipelines/web/executions/6f1f8a8e-1c2b-4d3e-9f00-000000000001",
        "/pipelines/web/executions/6f1f8a8e-1c2b-4d3e-9f00-000000000001/artifacts/Src",
        "/pipelines/web/actions/6f1f8a8e-1c2b-4d3e-9f00-000000000002/log",
        "/live?view=log&name=web&id=6f1f8a8e-1c2b-4d3e-9f00-000000000002",
        "/live?view=pipeline&name=web",
        "/live?view=history&name=web",
        "/live?view=execution&name=web&id=6f1f8a8e-1c2b-4d3e-9f00-000000000001",
        "/live?view=list",
        "/pipelines/web/approvals/6f1f8a8e-1c2b-4d3e-9f00-000000000003",
    ];
    for page in pages {
        let before = denials(&app).await;
        let res = nobody.get(app.url(page)).send().await.unwrap();
        let status = res.status().as_u16();
        assert!(
            status == 403 || (page == "/" && status == 200),
            "{page}: {status}"
        );
        assert_eq!(
            denials(&app).await - before,
            1,
            "{page}: one AccessDenied event"
        );
    }
    // The approvals inbox is every signed-in user's: it is authorized item by item (what each may
    // answer), so nobody's is empty, and nothing is refused.
    for page in ["/approvals", "/approvals/count"] {
        let before = denials(&app).await;
        let res = nobody.get(app.url(page)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{page}");
        assert_eq!(denials(&app).await - before, 0, "{page}");
    }
    // The metrics, with a token whose user may not read them.
    let before = denials(&app).await;
    let res = reqwest::Client::new()
        .get(app.url("/metrics"))
        .bearer_auth(&nobody_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        denials(&app).await - before,
        1,
        "/metrics: one AccessDenied event"
    );
    let forms: [(&str, &[(&str, &str)]); 31] = [
        (
            "/admin/users",
            &[("user_name", "x"), ("password", PASSWORD)],
        ),
        ("/admin/users/admin/enabled", &[("enabled", "false")]),
        ("/admin/users/admin/password", &[("password", PASSWORD)]),
        ("/admin/users/admin/delete", &[]),
        ("/admin/users/admin/sessions/end", &[]),
        (
            "/admin/users/admin/groups",
            &[("group", "ops"), ("op", "add")],
        ),
        (
            "/admin/users/admin/policies",
            &[("policy", "AdministratorAccess"), ("op", "attach")],
        ),
        ("/admin/users/admin/throttle/clear", &[]),
        ("/admin/groups", &[("group_name", "g2")]),
        (
            "/admin/groups/ops/members",
            &[("user", "admin"), ("op", "add")],
        ),
        (
            "/admin/groups/ops/policies",
            &[("policy", "AdministratorAccess"), ("op", "attach")],
        ),
        ("/admin/groups/ops/delete", &[]),
        (
            "/admin/policies/new",
            &[("policy_name", "p"), ("document", "{}")],
        ),
        ("/admin/policies/AdministratorAccess/delete", &[]),
        ("/pipelines/web/delete", &[]),
        ("/pipelines/import", &[("document", "{}")]),
        ("/pipelines/new/settings", &[("go", "next"), ("name", "x")]),
        (
            "/pipelines/web/edit",
            &[("op", "add_stage"), ("working", "{}")],
        ),
        ("/pipelines/web/edit/json", &[("document", "{}")]),
        ("/pipelines/web/release", &[]),
        (
            "/pipelines/web/executions/6f1f8a8e-1c2b-4d3e-9f00-000000000001/stop",
            &[("mode", "abandon")],
        ),
        (
            "/pipelines/web/stages/Build/retry",
            &[("execution", "6f1f8a8e-1c2b-4d3e-9f00-000000000001")],
        ),
        (
            "/pipelines/web/stages/Build/transition",
            &[("op", "disable"), ("reason", "x")],
        ),
        (
            "/pipelines/web/stages/Build/rollback",
            &[("execution", "6f1f8a8e-1c2b-4d3e-9f00-000000000001")],
        ),
        ("/pipelines/web/triggers/secret", &[("action", "Checkout")]),
        (
            "/admin/connections",
            &[
                ("name", "Forge"),
                ("provider_type", "Git"),
                ("username", "bot"),
                ("token", "t0ken-value"),
            ],
        ),
        (
            "/admin/connections/Forge/token",
            &[("token", "t0ken-value")],
        ),
        ("/admin/connections/Forge/delete", &[]),
        ("/buckets", &[("name", "denied-bucket")]),
        ("/buckets/denied-bucket/delete", &[]),
        (
            "/pipelines/web/approvals/6f1f8a8e-1c2b-4d3e-9f00-000000000003",
            &[
                ("stage", "Build"),
                ("action", "Gate"),
                ("token", "6f1f8a8e-1c2b-4d3e-9f00-000000000004"),
                ("decision", "Approved"),
            ],
        ),
    ];
    for (path, fields) in forms {
        let before = denials(&app).await;
        let res = app.post_form(&nobody, path, fields).await;
        assert_eq!(res.status(), 403, "{path}");
        assert_eq!(
            denials(&app).await - before,
            1,
            "{path}: one AccessDenied event"
        );
    }
    let doc =
        json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}).to_string();
    let operations = [
        ("CreateUser", json!({"userName": "x"})),
        ("GetUser", json!({"userName": "admin"})),
        ("ListUsers", json!({})),
        ("UpdateUser", json!({"userName": "admin", "enabled": false})),
        ("DeleteUser", json!({"userName": "admin"})),
        ("CreateGroup", json!({"groupName": "g"})),
        ("GetGroup", json!({"groupName": "ops"})),
        ("ListGroups", json!({})),
        ("ListWorkers", json!({})),
        ("CreateBucket", json!({"bucketName": "denied-bucket"})),
        ("ListBuckets", json!({})),
        ("DeleteBucket", json!({"bucketName": "denied-bucket"})),
        ("ListObjectVersions", json!({"bucketName": "denied-bucket"})),
        (
            "RollbackStage",
            json!({"pipelineName": "web", "stageName": "Build",
                   "targetPipelineExecutionId": "6f1f8a8e-1c2b-4d3e-9f00-000000000001"}),
        ),
        ("DeleteGroup", json!({"groupName": "ops"})),
        (
            "AddUserToGroup",
            json!({"groupName": "ops", "userName": "nobody"}),
        ),
        (
            "RemoveUserFromGroup",
            json!({"groupName": "ops", "userName": "nobody"}),
        ),
        (
            "CreatePolicy",
            json!({"policyName": "p", "policyDocument": doc}),
        ),
        ("GetPolicy", json!({"policyName": "AdministratorAccess"})),
        ("ListPolicies", json!({})),
        (
            "UpdatePolicy",
            json!({"policyName": "p", "policyDocument": doc}),
        ),
        ("DeletePolicy", json!({"policyName": "p"})),
        (
            "AttachUserPolicy",
            json!({"userName": "nobody", "policyName": "AdministratorAccess"}),
        ),
        (
            "DetachUserPolicy",
            json!({"userName": "admin", "policyName": "AdministratorAccess"}),
        ),
        (
            "AttachGroupPolicy",
            json!({"groupName": "ops", "policyName": "AdministratorAccess"}),
        ),
        (
            "DetachGroupPolicy",
            json!({"groupName": "ops", "policyName": "AdministratorAccess"}),
        ),
        ("ListAttachedUserPolicies", json!({"userName": "admin"})),
        ("ListAttachedGroupPolicies", json!({"groupName": "ops"})),
        ("CreateAccessKey", json!({"userName": "admin"})),
        ("ListAccessKeys", json!({"userName": "admin"})),
        (
            "DeleteAccessKey",
            json!({"userName": "admin", "tokenId": uuid::Uuid::new_v4().to_string()}),
        ),
        (
            "SimulatePrincipalPolicy",
            json!({"userName": "admin", "actionNames": ["iam:GetUser"]}),
        ),
        ("LookupAuditEvents", json!({})),
        (
            "CreatePipeline",
            json!({"pipeline": crate::pipelines::web_app("other")}),
        ),
        ("GetPipeline", json!({"name": "web"})),
        (
            "UpdatePipeline",
            json!({"pipeline": crate::pipelines::web_app("web")}),
        ),
        ("DeletePipeline", json!({"name": "web"})),
        ("ListPipelines", json!({})),
        ("ListActionTypes", json!({})),
        (
            "TagResource",
            json!({"resourceArn": "arn:sluice:codepipeline:::web", "tags": [{"key": "k", "value": "v"}]}),
        ),
        (
            "UntagResource",
            json!({"resourceArn": "arn:sluice:codepipeline:::web", "tagKeys": ["k"]}),
        ),
        (
            "ListTagsForResource",
            json!({"resourceArn": "arn:sluice:codepipeline:::web"}),
        ),
        ("StartPipelineExecution", json!({"name": "web"})),
        (
            "StopPipelineExecution",
            json!({"pipelineName": "web", "pipelineExecutionId": uuid::Uuid::new_v4().to_string()}),
        ),
        (
            "GetPipelineExecution",
            json!({"pipelineName": "web", "pipelineExecutionId": uuid::Uuid::new_v4().to_string()}),
        ),
        ("ListPipelineExecutions", json!({"pipelineName": "web"})),
        ("GetPipelineState", json!({"name": "web"})),
        (
            "RetryStageExecution",
            json!({"pipelineName": "web", "stageName": "Build", "pipelineExecutionId": uuid::Uuid::new_v4().to_string(), "retryMode": "FAILED_ACTIONS"}),
        ),
        (
            "EnableStageTransition",
            json!({"pipelineName": "web", "stageName": "Build", "transitionType": "Inbound"}),
        ),
        (
            "DisableStageTransition",
            json!({"pipelineName": "web", "stageName": "Build", "transitionType": "Inbound", "reason": "freeze"}),
        ),
        (
            "PutApprovalResult",
            json!({"pipelineName": "web", "stageName": "Build", "actionName": "Gate",
                   "result": {"status": "Approved", "summary": ""}, "token": uuid::Uuid::new_v4().to_string()}),
        ),
        (
            "CreateConnection",
            json!({"ConnectionName": "c", "Username": "u", "Token": "t"}),
        ),
        (
            "GetConnection",
            json!({"ConnectionArn": "arn:sluice:codeconnections:::connection/c"}),
        ),
        ("ListConnections", json!({})),
        (
            "UpdateConnection",
            json!({"ConnectionArn": "arn:sluice:codeconnections:::connection/c", "Token": "t"}),
        ),
        (
            "DeleteConnection",
            json!({"ConnectionArn": "arn:sluice:codeconnections:::connection/c"}),
        ),
    ];
    for (op, body) in operations {
        let before = denials(&app).await;
        let (_, out) = call(&app, &nobody_token, op, body).await;
        assert_eq!(out["__type"], "AccessDeniedException", "{op}: {out}");
        assert_eq!(
            denials(&app).await - before,
            1,
            "{op}: one AccessDenied event"
        );
    }
}

#[tokio::test]
async fn a_stored_policy_that_no_longer_parses_denies_everything() {
    let (app, admin) = admin_api().await;
    let token = user_with_policy(
        &app,
        &admin,
        "broken",
        Some(json!({"Statement": [{"Effect": "Allow", "Action": "codepipeline:*", "Resource": "*"}]})),
    )
    .await;
    ok(&app, &token, "ListPipelines", json!({})).await;
    // A document that was valid once and no longer is (written behind the application's back,
    // or by an older version with other rules): its Deny statements cannot be known.
    db(&app)
        .await
        .execute("UPDATE policies SET document = '{\"Statement\": [{\"Effect\": \"Maybe\"}]}' WHERE policy_name = 'broken-policy'")
        .await
        .unwrap();
    let (_, out) = call(&app, &token, "ListPipelines", json!({})).await;
    assert_eq!(out["__type"], "AccessDeniedException", "{out}");
    // Even self-service is refused until the policy is repaired or detached.
    let (_, out) = call(&app, &token, "ListAccessKeys", json!({})).await;
    assert_eq!(out["__type"], "AccessDeniedException", "{out}");
    ok(
        &app,
        &admin,
        "DetachUserPolicy",
        json!({"userName": "broken", "policyName": "broken-policy"}),
    )
    .await;
    ok(&app, &token, "ListAccessKeys", json!({})).await;
}

#[tokio::test]
async fn callers_see_only_what_they_may_read() {
    let (app, admin) = admin_api().await;
    ok(&app, &admin, "CreateGroup", json!({"groupName": "ops"})).await;
    ok(
        &app,
        &admin,
        "AddUserToGroup",
        json!({"groupName": "ops", "userName": "admin"}),
    )
    .await;
    let lister = user_with_policy(
        &app,
        &admin,
        "lister",
        Some(json!({"Statement": [{"Effect": "Allow", "Action": ["iam:ListUsers", "iam:GetUser"], "Resource": "*"}]})),
    )
    .await;
    let got = ok(&app, &lister, "GetUser", json!({"userName": "admin"})).await;
    assert_eq!(got["groups"], json!(["ops"]));
    assert_eq!(
        got["attachedPolicies"],
        Value::Null,
        "no ListAttachedUserPolicies: {got}"
    );
    let full = ok(&app, &admin, "GetUser", json!({"userName": "admin"})).await;
    assert_eq!(
        full["attachedPolicies"][0]["policyName"],
        "AdministratorAccess"
    );

    let only_list = app.sign_in("lister", PASSWORD).await;
    let html = only_list
        .get(app.url("/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("AdministratorAccess"),
        "policies are not shown: {html}"
    );
    assert!(html.contains("(not shown)"));

    let status = only_list.get(app.url("/status")).send().await.unwrap();
    let html = status.text().await.unwrap();
    assert!(
        !html.contains("PostgreSQL 1"),
        "no exact versions for a non-administrator"
    );
    let html = app.get("/status").await.text().await.unwrap();
    assert!(html.contains("PostgreSQL"), "the administrator sees them");
}

#[tokio::test]
async fn racing_wrong_passwords_check_at_most_the_limit() {
    let app = spawn_app().await;
    app.setup_admin().await;
    let attempts = (0..40).map(|_| {
        let app = &app;
        async move {
            client()
                .post(app.url("/login"))
                .header("Origin", &app.address)
                .form(&[("username", ADMIN), ("password", "wrong wrong wrong wrong")])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = join_all(attempts).await;
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(checked + refused, 40, "{statuses:?}");
    assert!(
        checked <= 5,
        "at most the limit reached the password check: {statuses:?}"
    );
    // Refusals are counted, not written one row each.
    let throttled: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE outcome = 'Throttled'")
            .fetch_one(&mut db(&app).await)
            .await
            .unwrap();
    assert!(
        throttled <= 2,
        "{throttled} throttled events for {refused} refusals"
    );
    let refused_count: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(refused), 0)::bigint FROM sign_in_throttled")
            .fetch_one(&mut db(&app).await)
            .await
            .unwrap();
    assert_eq!(refused_count as usize, refused);

    // Case variants of the name share the limit.
    let res = client()
        .post(app.url("/login"))
        .header("Origin", &app.address)
        .form(&[("username", "ADMIN"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);

    // The administrator's page shows the state and can clear it (audited).
    let html = app.get("/admin/users/admin").await.text().await.unwrap();
    assert!(html.contains("Sign-in is refused for this user"), "{html}");
    let res = app
        .post_form(&app.client, "/admin/users/admin/throttle/clear", &[])
        .await;
    assert_eq!(res.status(), 303);
    app.sign_in(ADMIN, ADMIN_PASSWORD).await;
    let cleared: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE event_name = 'sluice:ClearSignInThrottle' AND outcome = 'success'",
    )
    .fetch_one(&mut db(&app).await)
    .await
    .unwrap();
    assert_eq!(cleared, 1);
}

#[tokio::test]
async fn the_current_password_check_is_throttled_like_sign_in() {
    let app = spawn_app().await;
    app.setup_admin().await;
    for _ in 0..5 {
        let res = app
            .post_form(
                &app.client,
                "/account/password",
                &[
                    ("current_password", "not my password at all"),
                    ("new_password", PASSWORD),
                    ("new_password_confirm", PASSWORD),
                ],
            )
            .await;
        assert_eq!(res.status(), 400);
    }
    let res = app
        .post_form(
            &app.client,
            "/account/password",
            &[
                ("current_password", ADMIN_PASSWORD),
                ("new_password", PASSWORD),
                ("new_password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 429, "the right password waits too");
}

#[tokio::test]
async fn a_forwarded_address_is_believed_only_from_a_trusted_proxy() {
    let app = crate::harness::spawn_app_behind_proxy().await;
    app.setup_admin().await;
    // The client writes its own X-Forwarded-For; the proxy appends the real address. Guessing
    // with a fresh forged address each time must not escape the limit.
    let mut statuses = Vec::new();
    for i in 0..7 {
        let res = client()
            .post(app.url("/login"))
            .header("Origin", &app.address)
            .header("X-Forwarded-For", format!("198.51.100.{i}, 192.0.2.10"))
            .form(&[("username", ADMIN), ("password", "wrong wrong wrong wrong")])
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    let addresses: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT source_ip FROM audit_events WHERE event_name = 'sluice:ConsoleLogin' AND outcome <> 'success'",
    )
    .fetch_all(&mut db(&app).await)
    .await
    .unwrap();
    assert_eq!(
        addresses,
        ["192.0.2.10"],
        "the audit log records the proxy's entry"
    );
}

#[tokio::test]
async fn no_request_can_break_the_audit_chain() {
    let (app, admin) = admin_api().await;
    let nobody = user_with_policy(&app, &admin, "nobody", None).await;
    // jsonb would normalise -0.0 and 1.0E2; the stored text keeps them as hashed.
    let body = r#"{"pipeline": {"name": "p", "version": -0.0, "roleArn": 1.0E2, "stages": []}}"#;
    let res = client()
        .post(app.url("/api/v1/CreatePipeline"))
        .bearer_auth(&nobody)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // A NUL in a name: a clear answer, an event, no 500.
    let before = denials(&app).await;
    let (status, out) = call(&app, &nobody, "GetPipeline", json!({"name": "x\u{0}"})).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(out["__type"], "AccessDeniedException");
    assert_eq!(denials(&app).await - before, 1);
    let (status, out) = call(&app, &admin, "GetPipeline", json!({"name": "x\u{0}"})).await;
    assert_eq!(status, 400, "{out}");
    // A 1 MiB document refused is recorded as a bounded summary.
    let huge = "x".repeat(900_000);
    let (_, out) = call(
        &app,
        &nobody,
        "CreatePolicy",
        json!({"policyName": "big", "policyDocument": huge}),
    )
    .await;
    assert_eq!(out["__type"], "AccessDeniedException");
    let longest: i32 = sqlx::query_scalar(
        "SELECT max(length(request_parameters_text)) FROM audit_events WHERE outcome <> 'success'",
    )
    .fetch_one(&mut db(&app).await)
    .await
    .unwrap();
    assert!(longest < 2000, "refusals are summarised: {longest} chars");

    let url = app.db.url();
    let key = app.master_key.clone();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        crate::harness::run_sluice(
            &["audit", "verify", "--database-url", &url],
            &[("SLUICE_MASTER_KEY", &key)],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stdout}{stderr}");
    // Without the key (someone with only the database), the keyed chain does not verify.
    let url = app.db.url();
    let (code, _, stderr) = tokio::task::spawn_blocking(move || {
        crate::harness::run_sluice(
            &["audit", "verify", "--database-url", &url],
            &[(
                "SLUICE_MASTER_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            )],
        )
    })
    .await
    .unwrap();
    // Another key does not even open the chain's key.
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("does not open this database's keys"),
        "{stderr}"
    );
}

#[tokio::test]
async fn api_tokens_need_the_password_expire_by_default_and_are_minted_once() {
    let app = spawn_app().await;
    app.setup_admin().await;
    let res = app
        .post_form(
            &app.client,
            "/account/tokens",
            &[("name", "ci"), ("password", "not the password")],
        )
        .await;
    assert_eq!(res.status(), 400);
    let res = app
        .post_form(
            &app.client,
            "/account/tokens",
            &[("name", "ci"), ("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let first = app.get(&location).await.text().await.unwrap();
    assert!(first.contains(r#"id="new-token">sluice_"#), "{first}");
    // A reload shows no token and mints none.
    let again = app.get(&location).await.text().await.unwrap();
    assert!(!again.contains(r#"id="new-token">"#));
    assert!(again.contains("was shown once"));
    let token = first
        .split(r#"id="new-token">"#)
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .to_string();
    let keys = ok(&app, &token, "ListAccessKeys", json!({})).await;
    let keys = keys["accessKeys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["name"], "ci");
    let created = keys[0]["createDate"].as_f64().unwrap();
    let expires = keys[0]["expirationDate"].as_f64().unwrap();
    assert!(
        ((expires - created) / 86400.0 - 90.0).abs() < 0.01,
        "90 days by default"
    );
    // "Never" is allowed, when asked for.
    let out = ok(
        &app,
        &token,
        "CreateAccessKey",
        json!({"name": "forever", "neverExpires": true}),
    )
    .await;
    assert_eq!(out["accessKey"]["expirationDate"], Value::Null);
    // A password reset offers to revoke the user's tokens.
    let res = app
        .post_form(
            &app.client,
            "/admin/users/admin/password",
            &[("password", PASSWORD), ("revoke_tokens", "on")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (status, _) = call(&app, &token, "ListAccessKeys", json!({})).await;
    assert_eq!(status, 401, "the token was revoked");
}
