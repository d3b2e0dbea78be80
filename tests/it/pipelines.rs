//! The pipeline API: every operation with its errors, versions, secrets, pagination and
//! authorization.

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::harness::{TestApp, admin_api, api_call as call, api_ok as ok};

async fn err(app: &TestApp, token: &str, op: &str, body: Value) -> (String, String) {
    let (status, out) = call(app, token, op, body).await;
    assert_eq!(status, 400, "{op}: {out}");
    (
        out["__type"].as_str().unwrap().to_string(),
        out["message"].as_str().unwrap().to_string(),
    )
}

/// CodePipeline's documented example, adapted to Sluice's action types.
pub fn web_app(name: &str) -> Value {
    json!({
        "name": name,
        "roleArn": "arn:aws:iam::111122223333:role/CodePipelineServiceRole",
        "pipelineType": "V2",
        "executionMode": "QUEUED",
        "variables": [{"name": "DeployEnv", "defaultValue": "prod", "description": "target environment"}],
        "stages": [
            {"name": "Source", "actions": [{
                "name": "Checkout",
                "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
                "namespace": "SourceVariables",
                "configuration": {"RepositoryUrl": "https://git.example.com/acme/web-app.git", "Branch": "main"},
                "outputArtifacts": [{"name": "SourceArtifact"}]
            }]},
            {"name": "Build", "actions": [{
                "name": "Compile",
                "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
                "configuration": {"BuildSpecPath": "buildspec.yml",
                                  "EnvironmentVariables": "[{\"name\":\"COMMIT\",\"value\":\"#{SourceVariables.CommitId}\"}]"},
                "inputArtifacts": [{"name": "SourceArtifact"}],
                "outputArtifacts": [{"name": "BuildArtifact"}]
            }], "onFailure": {"result": "RETRY", "retryConfiguration": {"retryMode": "FAILED_ACTIONS"}}},
            {"name": "Approve", "actions": [{
                "name": "ReleaseGate",
                "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"},
                "timeoutInMinutes": 1440,
                "configuration": {"CustomData": "Approve #{SourceVariables.CommitId}: #{SourceVariables.CommitMessage}"}
            }]},
            {"name": "Deploy", "actions": [
                {"name": "Install",
                 "actionTypeId": {"category": "Deploy", "owner": "Sluice", "provider": "Directory", "version": "1"},
                 "configuration": {"TargetDirectory": "/srv/web-app-#{variables.DeployEnv}"},
                 "inputArtifacts": [{"name": "BuildArtifact"}]},
                {"name": "Announce", "runOrder": 2,
                 "actionTypeId": {"category": "Invoke", "owner": "Sluice", "provider": "Webhook", "version": "1"},
                 "configuration": {"Url": "https://hooks.example.com/deployed", "Secret": "hook-signing-secret"}}
            ]}
        ]
    })
}

#[tokio::test]
async fn create_get_update_versions_and_delete() {
    let (app, t) = admin_api().await;
    let created = ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": web_app("web-app")}),
    )
    .await;
    let p = &created["pipeline"];
    assert_eq!(p["version"], 1);
    assert_eq!(
        p["stages"][2]["actions"][0]["runOrder"], 1,
        "defaults filled"
    );
    assert_eq!(p["stages"][2]["actions"][0]["inputArtifacts"], json!([]));
    assert_eq!(created["tags"], json!([]));

    let got = ok(&app, &t, "GetPipeline", json!({"name": "web-app"})).await;
    assert_eq!(got["pipeline"], created["pipeline"]);
    assert_eq!(
        got["metadata"]["pipelineArn"],
        "arn:sluice:codepipeline:::web-app"
    );
    assert!(got["metadata"]["created"].as_f64().unwrap() > 1.7e9);

    let (kind, _) = err(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": web_app("web-app")}),
    )
    .await;
    assert_eq!(kind, "PipelineNameInUseException");

    // Update: must name the current version; stores version + 1.
    let mut next = got["pipeline"].clone();
    next["stages"][2]["actions"][0]["configuration"]["CustomData"] = json!("Ship it?");
    let updated = ok(
        &app,
        &t,
        "UpdatePipeline",
        json!({"pipeline": next.clone()}),
    )
    .await;
    assert_eq!(updated["pipeline"]["version"], 2);
    let (status, out) = call(
        &app,
        &t,
        "UpdatePipeline",
        json!({"pipeline": next.clone()}),
    )
    .await;
    assert_eq!(status, 409, "{out}");
    assert_eq!(out["__type"], "ConflictException");
    let message = out["message"].as_str().unwrap();
    assert!(
        message.contains("Someone else saved version 2"),
        "{message}"
    );
    let mut unversioned = next.clone();
    unversioned.as_object_mut().unwrap().remove("version");
    assert_eq!(
        err(&app, &t, "UpdatePipeline", json!({"pipeline": unversioned}))
            .await
            .0,
        "ValidationException"
    );

    let v1 = ok(
        &app,
        &t,
        "GetPipeline",
        json!({"name": "web-app", "version": 1}),
    )
    .await;
    assert_eq!(
        v1["pipeline"]["stages"][2]["actions"][0]["configuration"]["CustomData"],
        web_app("x")["stages"][2]["actions"][0]["configuration"]["CustomData"]
    );
    assert_eq!(
        err(
            &app,
            &t,
            "GetPipeline",
            json!({"name": "web-app", "version": 9})
        )
        .await
        .0,
        "PipelineVersionNotFoundException"
    );

    ok(&app, &t, "DeletePipeline", json!({"name": "web-app"})).await;
    assert_eq!(
        err(&app, &t, "GetPipeline", json!({"name": "web-app"}))
            .await
            .0,
        "PipelineNotFoundException"
    );
    ok(&app, &t, "DeletePipeline", json!({"name": "web-app"})).await;
    assert_eq!(
        err(&app, &t, "UpdatePipeline", json!({"pipeline": next}))
            .await
            .0,
        "PipelineNotFoundException"
    );

    // The audit trail stays after deletion.
    let events = ok(
        &app,
        &t,
        "LookupAuditEvents",
        json!({"resourcePrefix": "arn:sluice:codepipeline:::web-app"}),
    )
    .await;
    let names: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventName"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"codepipeline:CreatePipeline")
            && names.contains(&"codepipeline:DeletePipeline"),
        "{names:?}"
    );
}

#[tokio::test]
async fn get_pipeline_output_is_accepted_by_create_pipeline() {
    let (app, t) = admin_api().await;
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": web_app("original")}),
    )
    .await;
    let mut exported = ok(&app, &t, "GetPipeline", json!({"name": "original"})).await;
    exported["pipeline"]["name"] = json!("copy");
    // The secret comes back masked; a copy must send it again.
    exported["pipeline"]["stages"][3]["actions"][1]["configuration"]["Secret"] =
        json!("another-secret");
    let created = ok(&app, &t, "CreatePipeline", exported).await;
    assert_eq!(created["pipeline"]["name"], "copy");
    assert_eq!(created["pipeline"]["version"], 1);
}

#[tokio::test]
async fn secrets_are_masked_encrypted_at_rest_and_kept_by_the_mask() {
    let (app, t) = admin_api().await;
    let created = ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": web_app("secretive")}),
    )
    .await;
    let secret_path =
        |v: &Value| v["pipeline"]["stages"][3]["actions"][1]["configuration"]["Secret"].clone();
    assert_eq!(secret_path(&created), "****");
    let got = ok(&app, &t, "GetPipeline", json!({"name": "secretive"})).await;
    assert_eq!(secret_path(&got), "****");

    let stored = |version: i32| {
        let options = app.db.options.clone();
        async move {
            let mut conn = PgConnection::connect_with(&options).await.unwrap();
            let row: (Value,) = sqlx::query_as(
                "SELECT v.declaration FROM pipeline_versions v JOIN pipelines p ON p.id = v.pipeline_id WHERE p.name = 'secretive' AND v.version = $1",
            )
            .bind(version)
            .fetch_one(&mut conn)
            .await
            .unwrap();
            row.0["stages"][3]["actions"][1]["configuration"]["Secret"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let v1 = stored(1).await;
    assert!(v1.starts_with("sluice:enc:v2:"), "{v1}");
    assert!(!v1.contains("hook-signing-secret"));

    // Sending back what was read changes nothing: no new version.
    let same = ok(
        &app,
        &t,
        "UpdatePipeline",
        json!({"pipeline": got["pipeline"]}),
    )
    .await;
    assert_eq!(same["pipeline"]["version"], 1);
    // The mask keeps the stored secret when something else changes.
    let mut edited = got["pipeline"].clone();
    edited["stages"][2]["actions"][0]["configuration"]["CustomData"] = json!("Ship it now?");
    let saved = ok(
        &app,
        &t,
        "UpdatePipeline",
        json!({"pipeline": edited.clone()}),
    )
    .await;
    assert_eq!(saved["pipeline"]["version"], 2);
    assert_eq!(stored(2).await, v1);
    // ... but not when the webhook would send it somewhere else.
    let mut redirected = saved["pipeline"].clone();
    redirected["stages"][3]["actions"][1]["configuration"]["Url"] =
        json!("https://collector.attacker.example/hook");
    let (kind, message) = err(&app, &t, "UpdatePipeline", json!({"pipeline": redirected})).await;
    assert_eq!(kind, "ValidationException");
    assert!(
        message.contains("its Url changed") && message.contains("configuration.Secret"),
        "{message}"
    );
    // A new value replaces it.
    let mut changed =
        ok(&app, &t, "GetPipeline", json!({"name": "secretive"})).await["pipeline"].clone();
    changed["stages"][3]["actions"][1]["configuration"]["Secret"] = json!("rotated");
    ok(&app, &t, "UpdatePipeline", json!({"pipeline": changed})).await;
    assert_ne!(stored(3).await, v1);

    // The secret never reaches the audit log.
    let events = ok(
        &app,
        &t,
        "LookupAuditEvents",
        json!({"resourcePrefix": "arn:sluice:codepipeline:::secretive", "maxResults": 50}),
    )
    .await;
    let dump = events.to_string();
    assert!(
        !dump.contains("hook-signing-secret") && !dump.contains("rotated"),
        "{dump}"
    );
}

#[tokio::test]
async fn invalid_declarations_name_every_problem() {
    let (app, t) = admin_api().await;
    let mut bad = web_app("bad");
    bad["stages"][3]["actions"][0]["inputArtifacts"] = json!([{"name": "Nowhere"}]);
    bad["stages"][1]["actions"][0]["actionTypeId"] =
        json!({"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"});
    let (kind, message) = err(&app, &t, "CreatePipeline", json!({"pipeline": bad})).await;
    assert_eq!(kind, "InvalidActionDeclarationException");
    assert!(message.starts_with("2 problems found"), "{message}");
    assert!(
        message.contains("stages[3].actions[0].inputArtifacts[0]"),
        "{message}"
    );
    assert!(message.contains("Build/Sluice/Command/1"), "{message}");

    let mut one_stage = web_app("short");
    one_stage["stages"] = json!([one_stage["stages"][0]]);
    assert_eq!(
        err(&app, &t, "CreatePipeline", json!({"pipeline": one_stage}))
            .await
            .0,
        "InvalidStructureException"
    );

    // Bad input of every kind: a clear error, no panic, nothing stored.
    let (kind, message) = err(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": {"name": "x", "stages": [], "colour": 1}}),
    )
    .await;
    assert_eq!(kind, "SerializationException");
    assert!(message.contains("colour"), "{message}");
    let (kind, message) = err(&app, &t, "CreatePipeline", json!({"pipeline": {"name": "x", "stages": [{"name": "S", "actions": [{"name": "a", "actionTypeId": {}, "runOrder": "one"}]}]}})).await;
    assert_eq!(kind, "SerializationException");
    assert!(
        message.contains("pipeline.stages[0].actions[0]"),
        "{message}"
    );
    let long = "n".repeat(10_000);
    let (kind, message) = err(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": web_app(&long)}),
    )
    .await;
    assert_eq!(kind, "ValidationException");
    assert!(
        message.len() < 2_000,
        "the message does not echo 10,000 characters"
    );
    let nested = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let res = app
        .client
        .post(app.url("/api/v1/CreatePipeline"))
        .bearer_auth(&t)
        .body(format!(r#"{{"pipeline": {nested}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["__type"],
        "SerializationException"
    );
    let listed = ok(&app, &t, "ListPipelines", json!({})).await;
    assert_eq!(listed["pipelines"], json!([]), "nothing stored");
}

#[tokio::test]
async fn list_pipelines_pages_and_shows_only_what_the_caller_may_get() {
    let (app, admin) = admin_api().await;
    for name in ["alpha", "bravo", "charlie", "delta"] {
        ok(
            &app,
            &admin,
            "CreatePipeline",
            json!({"pipeline": web_app(name)}),
        )
        .await;
    }
    let page = ok(&app, &admin, "ListPipelines", json!({"maxResults": 3})).await;
    let names: Vec<&str> = page["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "bravo", "charlie"]);
    assert_eq!(page["pipelines"][0]["executionMode"], "QUEUED");
    assert_eq!(page["pipelines"][0]["pipelineType"], "V2");
    let rest = ok(
        &app,
        &admin,
        "ListPipelines",
        json!({"maxResults": 3, "nextToken": page["nextToken"]}),
    )
    .await;
    assert_eq!(rest["pipelines"][0]["name"], "delta");
    assert!(rest["nextToken"].is_null());

    // A user allowed only on bravo.
    ok(&app, &admin, "CreateUser", json!({"userName": "narrow"})).await;
    let doc = json!({"Statement": [
        {"Effect": "Allow", "Action": "codepipeline:ListPipelines", "Resource": "*"},
        {"Effect": "Allow", "Action": "codepipeline:*", "Resource": "arn:sluice:codepipeline:::bravo"}
    ]}).to_string();
    ok(
        &app,
        &admin,
        "CreatePolicy",
        json!({"policyName": "OnlyBravo", "policyDocument": doc}),
    )
    .await;
    ok(
        &app,
        &admin,
        "AttachUserPolicy",
        json!({"userName": "narrow", "policyName": "OnlyBravo"}),
    )
    .await;
    let narrow = ok(
        &app,
        &admin,
        "CreateAccessKey",
        json!({"userName": "narrow"}),
    )
    .await["accessKey"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let seen = ok(&app, &narrow, "ListPipelines", json!({})).await;
    let names: Vec<&str> = seen["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bravo"]);
    ok(&app, &narrow, "GetPipeline", json!({"name": "bravo"})).await;
    assert_eq!(
        err(&app, &narrow, "GetPipeline", json!({"name": "alpha"}))
            .await
            .0,
        "AccessDeniedException"
    );
    assert_eq!(
        err(&app, &narrow, "DeletePipeline", json!({"name": "alpha"}))
            .await
            .0,
        "AccessDeniedException"
    );
}

#[tokio::test]
async fn a_read_only_user_cannot_change_pipelines() {
    let (app, admin) = admin_api().await;
    ok(
        &app,
        &admin,
        "CreatePipeline",
        json!({"pipeline": web_app("web")}),
    )
    .await;
    ok(&app, &admin, "CreateUser", json!({"userName": "viewer"})).await;
    ok(
        &app,
        &admin,
        "AttachUserPolicy",
        json!({"userName": "viewer", "policyName": "AWSCodePipeline_ReadOnlyAccess"}),
    )
    .await;
    let viewer = ok(
        &app,
        &admin,
        "CreateAccessKey",
        json!({"userName": "viewer"}),
    )
    .await["accessKey"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let current = ok(&app, &viewer, "GetPipeline", json!({"name": "web"})).await;
    ok(&app, &viewer, "ListPipelines", json!({})).await;
    ok(&app, &viewer, "ListActionTypes", json!({})).await;
    assert_eq!(
        err(
            &app,
            &viewer,
            "CreatePipeline",
            json!({"pipeline": web_app("other")})
        )
        .await
        .0,
        "AccessDeniedException"
    );
    assert_eq!(
        err(
            &app,
            &viewer,
            "UpdatePipeline",
            json!({"pipeline": current["pipeline"]})
        )
        .await
        .0,
        "AccessDeniedException"
    );
    assert_eq!(
        err(&app, &viewer, "DeletePipeline", json!({"name": "web"}))
            .await
            .0,
        "AccessDeniedException"
    );
    ok(&app, &admin, "GetPipeline", json!({"name": "web"})).await;
}

#[tokio::test]
async fn list_action_types_describes_the_registry() {
    let (app, t) = admin_api().await;
    let all = ok(&app, &t, "ListActionTypes", json!({})).await;
    let types = all["actionTypes"].as_array().unwrap();
    assert_eq!(types.len(), 7);
    let webhook = types
        .iter()
        .find(|t| t["id"]["provider"] == "Webhook")
        .unwrap();
    assert_eq!(
        webhook["inputArtifactDetails"],
        json!({"minimumCount": 0, "maximumCount": 5})
    );
    let secret = webhook["actionConfigurationProperties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Secret")
        .unwrap();
    assert_eq!(secret["secret"], true);
    let approvals = ok(
        &app,
        &t,
        "ListActionTypes",
        json!({"actionOwnerFilter": "AWS"}),
    )
    .await;
    assert_eq!(approvals["actionTypes"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn tags_are_stored_listed_changed_removed_and_limited_under_a_crowd() {
    let (app, t) = admin_api().await;
    let created = ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": web_app("tagged"), "tags": [{"key": "team", "value": "web"}, {"key": "tier", "value": ""}]}),
    )
    .await;
    assert_eq!(created["tags"][0]["key"], "team");
    let arn = "arn:sluice:codepipeline:::tagged";
    let list = || {
        let (app, t) = (&app, t.clone());
        async move {
            ok(app, &t, "ListTagsForResource", json!({"resourceArn": arn})).await["tags"].clone()
        }
    };
    assert_eq!(
        list().await,
        json!([{"key": "team", "value": "web"}, {"key": "tier", "value": ""}])
    );
    ok(
        &app,
        &t,
        "TagResource",
        json!({"resourceArn": "arn:aws:codepipeline:eu-west-1:111122223333:tagged", "tags": [{"key": "team", "value": "platform"}]}),
    )
    .await;
    ok(
        &app,
        &t,
        "UntagResource",
        json!({"resourceArn": arn, "tagKeys": ["tier", "absent"]}),
    )
    .await;
    assert_eq!(list().await, json!([{"key": "team", "value": "platform"}]));

    for (body, kind) in [
        (
            json!({"resourceArn": arn, "tags": [{"key": "aws:x", "value": "1"}]}),
            "InvalidTagsException",
        ),
        (
            json!({"resourceArn": arn, "tags": [{"key": "k", "value": "v", "extra": 1}]}),
            "SerializationException",
        ),
        (
            json!({"resourceArn": "tagged", "tags": []}),
            "InvalidArnException",
        ),
        (
            json!({"resourceArn": "arn:sluice:codepipeline:::missing", "tags": []}),
            "ResourceNotFoundException",
        ),
    ] {
        let (kind_got, _) = err(&app, &t, "TagResource", body.clone()).await;
        assert_eq!(kind_got, kind, "{body}");
    }

    // 60 callers at once each add a tag to a pipeline that has 1: exactly 49 fit.
    let results = futures_util::future::join_all((0..60).map(|i| {
        let (app, t) = (&app, t.clone());
        async move {
            call(
                app,
                &t,
                "TagResource",
                json!({"resourceArn": arn, "tags": [{"key": format!("k{i}"), "value": "v"}]}),
            )
            .await
        }
    }))
    .await;
    let fitted = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(fitted, 49, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(_, out)| out["__type"] == "TooManyTagsException")
    );
    assert_eq!(list().await.as_array().unwrap().len(), 50);
}

#[tokio::test]
async fn creating_with_tags_needs_tag_resource_too() {
    let (app, admin) = admin_api().await;
    let token = crate::harness::user_with_policy(
        &app,
        &admin,
        "creator",
        Some(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["codepipeline:CreatePipeline", "codepipeline:GetPipeline"], "Resource": "*"}
        ]})),
    )
    .await;
    let (status, out) = call(
        &app,
        &token,
        "CreatePipeline",
        json!({"pipeline": web_app("labelled"), "tags": [{"key": "team", "value": "web"}]}),
    )
    .await;
    assert_eq!(
        (status, out["__type"].as_str()),
        (400, Some("AccessDeniedException")),
        "{out}"
    );
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("codepipeline:TagResource")
    );
    ok(
        &app,
        &token,
        "CreatePipeline",
        json!({"pipeline": web_app("labelled")}),
    )
    .await;
}
