//! Manual approvals through the API: CodePipeline's semantics (tokens, answers, timeouts,
//! retries), who may answer (policies) and whose answer counts (the gate's rules).

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::executions::{command, first_execution, repository, wait_for_end, workers_app};
use crate::harness::{TestApp, api_call as call, api_ok as ok, user_with_policy};

pub const SHIP_SPEC: &str =
    "version: 0.2\nphases:\n  build:\n    commands:\n      - echo shipped\n";

/// A Git source, an approval stage with the action `Gate` (its configuration `gate`), and a
/// stage that ships.
pub fn approval_pipeline(name: &str, repository: &str, gate: Value) -> Value {
    json!({
        "name": name,
        "executionMode": "QUEUED",
        "pipelineType": "V2",
        "stages": [
            {"name": "Source", "actions": [{"name": "Checkout", "namespace": "SourceVariables",
                "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
                "configuration": {"RepositoryUrl": repository, "Branch": "main"},
                "outputArtifacts": [{"name": "Src"}]}]},
            {"name": "Approve", "actions": [gate]},
            {"name": "Ship", "actions": [command("Deploy", "Build", &["Src"], None, json!({"BuildSpec": SHIP_SPEC}))]},
        ]
    })
}

pub fn gate(name: &str, config: Value) -> Value {
    json!({"name": name,
        "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"},
        "configuration": config})
}

/// The action's latest execution in GetPipelineState once it waits (has a token).
pub async fn waiting(app: &TestApp, t: &str, name: &str, stage: &str, action: &str) -> Value {
    for _ in 0..400 {
        let state = ok(app, t, "GetPipelineState", json!({"name": name})).await;
        let latest = state["stageStates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stageName"] == stage)
            .and_then(|s| {
                s["actionStates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["actionName"] == action)
            })
            .map(|a| a["latestExecution"].clone())
            .unwrap_or(Value::Null);
        if latest["status"] == "InProgress" && latest["token"].is_string() {
            return latest;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{name}/{stage}/{action} never waited for an approval");
}

async fn token_of(app: &TestApp, t: &str, name: &str) -> String {
    waiting(app, t, name, "Approve", "Gate").await["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn answer(name: &str, action: &str, token: &str, status: &str, summary: &str) -> Value {
    json!({"pipelineName": name, "stageName": "Approve", "actionName": action,
           "result": {"status": status, "summary": summary}, "token": token})
}

async fn put(app: &TestApp, t: &str, body: Value) -> (u16, Value) {
    call(app, t, "PutApprovalResult", body).await
}

async fn jobs_now(app: &TestApp) -> i64 {
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state IN ('available', 'running')")
        .fetch_one(&mut c)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_approved_gate_succeeds_with_the_comment_and_the_execution_goes_on() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, commit) = repository(repo.path());
    let decl = approval_pipeline(
        "approved",
        &path,
        gate(
            "Gate",
            json!({"CustomData": "Ship #{SourceVariables.CommitId}?",
                   "ExternalEntityLink": "https://example.com/changes/#{SourceVariables.CommitId}"}),
        ),
    );
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    let id = first_execution(&app, &t, "approved").await;
    let latest = waiting(&app, &t, "approved", "Approve", "Gate").await;
    let token = latest["token"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&token).is_ok(), "{latest}");
    // Waiting holds no worker: no job exists for it.
    assert_eq!(jobs_now(&app).await, 0);

    let details = ok(
        &app,
        &t,
        "ListActionExecutions",
        json!({"pipelineName": "approved",
        "filter": {"pipelineExecutionId": id}}),
    )
    .await;
    let gate_detail = details["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["actionName"] == "Gate")
        .unwrap()
        .clone();
    assert_eq!(
        gate_detail["output"]["executionResult"]["externalExecutionId"],
        token.as_str()
    );
    assert_eq!(
        gate_detail["approval"]["customData"],
        format!("Ship {commit}?").as_str()
    );
    assert_eq!(
        gate_detail["approval"]["externalEntityLink"],
        format!("https://example.com/changes/{commit}").as_str()
    );

    let (status, out) = put(
        &app,
        &t,
        answer("approved", "Gate", &token, "Approved", "Looks good"),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert!(out["approvedAt"].is_number(), "{out}");
    let done = wait_for_end(&app, &t, "approved", &id).await;
    assert_eq!(done["status"], "Succeeded", "{done}");

    let state = ok(&app, &t, "GetPipelineState", json!({"name": "approved"})).await;
    let gate_state = &state["stageStates"][1]["actionStates"][0]["latestExecution"];
    assert_eq!(gate_state["status"], "Succeeded");
    assert_eq!(gate_state["summary"], "Looks good");
    assert_eq!(gate_state["lastUpdatedBy"], "arn:sluice:iam:::user/admin");
    assert_eq!(gate_state["token"], token.as_str());

    // Answered once: the same token again is ApprovalAlreadyCompleted, and so is a rejection.
    for status in ["Approved", "Rejected"] {
        let (code, out) = put(
            &app,
            &t,
            answer("approved", "Gate", &token, status, "again"),
        )
        .await;
        assert_eq!(code, 400, "{out}");
        assert_eq!(out["__type"], "ApprovalAlreadyCompletedException", "{out}");
    }

    // The decision is stored on the attempt and in the audit log.
    let details = ok(
        &app,
        &t,
        "ListActionExecutions",
        json!({"pipelineName": "approved",
        "filter": {"pipelineExecutionId": id}}),
    )
    .await;
    let approval = details["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["actionName"] == "Gate")
        .unwrap()["approval"]
        .clone();
    assert_eq!(approval["outcome"], "Approved");
    let decisions = approval["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0]["userName"], "admin");
    assert_eq!(decisions[0]["status"], "Approved");
    assert_eq!(decisions[0]["summary"], "Looks good");
    assert_eq!(decisions[0]["sourceAddress"], "127.0.0.1");
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT outcome, resource_arn FROM audit_events WHERE event_name = 'codepipeline:PutApprovalResult' ORDER BY seq",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(events[0].0, "success");
    assert!(
        events[0].1.ends_with(":approved/Approve/Gate"),
        "{events:?}"
    );
    assert_eq!(events.len(), 3, "{events:?}");
}

#[tokio::test]
async fn a_rejected_gate_fails_the_execution_and_a_retry_issues_a_new_token() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": approval_pipeline("rejected", &path, gate("Gate", json!({})))}),
    )
    .await;
    let id = first_execution(&app, &t, "rejected").await;
    let old = token_of(&app, &t, "rejected").await;
    let (status, out) = put(
        &app,
        &t,
        answer("rejected", "Gate", &old, "Rejected", "Not today"),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let done = wait_for_end(&app, &t, "rejected", &id).await;
    assert_eq!(done["status"], "Failed");
    let state = ok(&app, &t, "GetPipelineState", json!({"name": "rejected"})).await;
    assert_eq!(
        state["stageStates"][1]["latestExecution"]["status"],
        "Failed"
    );
    assert_eq!(
        state["stageStates"][1]["actionStates"][0]["latestExecution"]["summary"],
        "Not today"
    );

    ok(
        &app,
        &t,
        "RetryStageExecution",
        json!({"pipelineName": "rejected", "stageName": "Approve",
        "pipelineExecutionId": id, "retryMode": "FAILED_ACTIONS"}),
    )
    .await;
    let new = token_of(&app, &t, "rejected").await;
    assert_ne!(new, old);
    let (code, out) = put(&app, &t, answer("rejected", "Gate", &old, "Approved", "")).await;
    assert_eq!(code, 400, "{out}");
    assert_eq!(out["__type"], "InvalidApprovalTokenException", "{out}");
    let (code, out) = put(&app, &t, answer("rejected", "Gate", &new, "Approved", "")).await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(
        wait_for_end(&app, &t, "rejected", &id).await["status"],
        "Succeeded"
    );
    // An approval without a comment says who approved.
    let state = ok(&app, &t, "GetPipelineState", json!({"name": "rejected"})).await;
    assert_eq!(
        state["stageStates"][1]["actionStates"][0]["latestExecution"]["summary"],
        "Approved by admin"
    );
}

#[tokio::test]
async fn bad_answers_get_clear_errors_and_change_nothing() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": approval_pipeline("strict", &path, gate("Gate", json!({})))}),
    )
    .await;
    let id = first_execution(&app, &t, "strict").await;
    let token = token_of(&app, &t, "strict").await;
    let cases = [
        (
            answer(
                "strict",
                "Gate",
                &uuid::Uuid::new_v4().to_string(),
                "Approved",
                "",
            ),
            "InvalidApprovalTokenException",
        ),
        (
            answer("strict", "Gate", "not-a-token", "Approved", ""),
            "ValidationException",
        ),
        (
            answer("strict", "Gate", &token.to_uppercase(), "Approved", ""),
            "ValidationException",
        ),
        (
            answer("strict", "Gate", &token, "approved", ""),
            "ValidationException",
        ),
        (
            answer("strict", "Gate", &token, "Maybe", ""),
            "ValidationException",
        ),
        (
            answer("strict", "Gate", &token, "Approved", &"x".repeat(10_000)),
            "ValidationException",
        ),
        (
            answer("nope", "Gate", &token, "Approved", ""),
            "PipelineNotFoundException",
        ),
        (
            answer("strict", "Nope", &token, "Approved", ""),
            "ActionNotFoundException",
        ),
        (
            json!({"pipelineName": "strict", "stageName": "Nope", "actionName": "Gate",
                "result": {"status": "Approved", "summary": ""}, "token": token}),
            "StageNotFoundException",
        ),
        // An action that is not waiting for an approval: the token is not its.
        (
            json!({"pipelineName": "strict", "stageName": "Ship", "actionName": "Deploy",
                "result": {"status": "Approved", "summary": ""}, "token": token}),
            "InvalidApprovalTokenException",
        ),
        (
            json!({"pipelineName": "strict", "stageName": "Approve", "actionName": "Gate",
                "result": {"status": "Approved"}, "token": token}),
            "SerializationException",
        ),
    ];
    for (body, expected) in cases {
        let (code, out) = put(&app, &t, body.clone()).await;
        assert_eq!(out["__type"], expected, "{body}: {out}");
        assert!((400..500).contains(&code), "{body}: {code}");
        assert!(
            !out["message"].as_str().unwrap_or_default().is_empty(),
            "{out}"
        );
    }
    // Nothing changed: the same token still approves.
    let still = waiting(&app, &t, "strict", "Approve", "Gate").await;
    assert_eq!(still["token"], token.as_str());
    let (code, out) = put(&app, &t, answer("strict", "Gate", &token, "Approved", "ok")).await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(
        wait_for_end(&app, &t, "strict", &id).await["status"],
        "Succeeded"
    );
}

#[tokio::test]
async fn concurrent_answers_have_exactly_one_winner() {
    let (app, admin) = workers_app().await;
    let other = user_with_policy(&app, &admin, "second", Some(json!({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["codepipeline:PutApprovalResult", "codepipeline:GetPipelineState"], "Resource": "*"}]}))).await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    ok(
        &app,
        &admin,
        "CreatePipeline",
        json!({"pipeline": approval_pipeline("race", &path, gate("Gate", json!({})))}),
    )
    .await;
    let id = first_execution(&app, &admin, "race").await;
    let token = token_of(&app, &admin, "race").await;
    let mut calls = Vec::new();
    for i in 0..24 {
        let app = &app;
        let who = if i % 2 == 0 {
            admin.clone()
        } else {
            other.clone()
        };
        let status = if i % 3 == 0 { "Rejected" } else { "Approved" };
        let body = answer("race", "Gate", &token, status, &format!("answer {i}"));
        calls.push(async move { put(app, &who, body).await });
    }
    let results = futures_util::future::join_all(calls).await;
    let winners: Vec<&Value> = results
        .iter()
        .filter(|(c, _)| *c == 200)
        .map(|(_, o)| o)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (code, out) in &results {
        if *code != 200 {
            assert_eq!(out["__type"], "ApprovalAlreadyCompletedException", "{out}");
        }
    }
    let end = wait_for_end(&app, &admin, "race", &id).await;
    assert!(
        matches!(end["status"].as_str(), Some("Succeeded" | "Failed")),
        "{end}"
    );
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let decisions: i64 = sqlx::query_scalar("SELECT count(*) FROM approval_decisions")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(decisions, 1);
}

#[tokio::test]
async fn an_unanswered_gate_times_out_by_the_clock() {
    let (app, t) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    let mut g = gate("Gate", json!({}));
    g["timeoutInMinutes"] = json!(5);
    ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": approval_pipeline("slow", &path, g)}),
    )
    .await;
    let id = first_execution(&app, &t, "slow").await;
    let token = token_of(&app, &t, "slow").await;
    app.clock.advance(time::Duration::minutes(4));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        waiting(&app, &t, "slow", "Approve", "Gate").await["token"],
        token.as_str()
    );
    app.clock.advance(time::Duration::minutes(2));
    let done = wait_for_end(&app, &t, "slow", &id).await;
    assert_eq!(done["status"], "Failed");
    let state = ok(&app, &t, "GetPipelineState", json!({"name": "slow"})).await;
    let latest = &state["stageStates"][1]["actionStates"][0]["latestExecution"];
    assert_eq!(latest["status"], "Failed");
    assert_eq!(latest["summary"], "approval timed out");
    let (code, out) = put(&app, &t, answer("slow", "Gate", &token, "Approved", "late")).await;
    assert_eq!(code, 400);
    assert_eq!(out["__type"], "InvalidApprovalTokenException", "{out}");
}

#[tokio::test]
async fn the_documented_approver_policy_answers_its_one_action_only() {
    let (app, admin) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    let mut decl = approval_pipeline("gated", &path, gate("Gate", json!({})));
    decl["stages"][1]["actions"]
        .as_array_mut()
        .unwrap()
        .push(gate("Other", json!({})));
    ok(&app, &admin, "CreatePipeline", json!({"pipeline": decl})).await;
    // AWS's example approver policy: ListPipelines, GetPipeline and GetPipelineState on the
    // pipeline, PutApprovalResult on one action.
    let approver = user_with_policy(&app, &admin, "approver", Some(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["codepipeline:ListPipelines"], "Resource": ["*"]},
        {"Effect": "Allow", "Action": ["codepipeline:GetPipeline", "codepipeline:GetPipelineState", "codepipeline:GetPipelineExecution"],
         "Resource": "arn:sluice:codepipeline:::gated"},
        {"Effect": "Allow", "Action": ["codepipeline:PutApprovalResult"],
         "Resource": "arn:sluice:codepipeline:::gated/Approve/Gate"}
    ]}))).await;
    let id = first_execution(&app, &admin, "gated").await;
    let gate_token = waiting(&app, &approver, "gated", "Approve", "Gate").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let other_token = waiting(&app, &approver, "gated", "Approve", "Other").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, out) = put(
        &app,
        &approver,
        answer("gated", "Other", &other_token, "Approved", ""),
    )
    .await;
    assert_eq!(code, 400, "{out}");
    assert_eq!(out["__type"], "AccessDeniedException");
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let denied: Vec<String> = sqlx::query_scalar(
        "SELECT resource_arn FROM audit_events WHERE event_name = 'codepipeline:PutApprovalResult' AND outcome = 'AccessDenied'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(denied, ["arn:sluice:codepipeline:::gated/Approve/Other"]);
    let (code, out) = put(
        &app,
        &approver,
        answer("gated", "Gate", &gate_token, "Approved", "mine"),
    )
    .await;
    assert_eq!(code, 200, "{out}");
    // The other gate still waits for someone allowed.
    let (code, out) = put(
        &app,
        &admin,
        answer("gated", "Other", &other_token, "Approved", ""),
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(
        wait_for_end(&app, &admin, "gated", &id).await["status"],
        "Succeeded"
    );
}

async fn add_to_group(app: &TestApp, admin: &str, group: &str, users: &[&str]) {
    let (code, out) = call(app, admin, "CreateGroup", json!({"groupName": group})).await;
    assert!(
        code == 200 || out["__type"] == "EntityAlreadyExistsException",
        "{out}"
    );
    for user in users {
        ok(
            app,
            admin,
            "AddUserToGroup",
            json!({"groupName": group, "userName": user}),
        )
        .await;
    }
}

fn approver_policy() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["codepipeline:PutApprovalResult", "codepipeline:GetPipelineState", "codepipeline:StartPipelineExecution"],
        "Resource": "*"}]})
}

#[tokio::test]
async fn two_of_three_needs_two_different_approvers_and_one_rejection_rejects() {
    let (app, admin) = workers_app().await;
    let a = user_with_policy(&app, &admin, "ann", Some(approver_policy())).await;
    let b = user_with_policy(&app, &admin, "bob", Some(approver_policy())).await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    ok(
        &app,
        &admin,
        "CreatePipeline",
        json!({"pipeline": approval_pipeline("quorum", &path,
        gate("Gate", json!({"RequiredApprovals": "2"})))}),
    )
    .await;
    let id = first_execution(&app, &admin, "quorum").await;
    let token = token_of(&app, &admin, "quorum").await;
    let (code, out) = put(
        &app,
        &a,
        answer("quorum", "Gate", &token, "Approved", "one"),
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["approvals"], 1);
    assert_eq!(out["requiredApprovals"], 2);
    let still = waiting(&app, &admin, "quorum", "Approve", "Gate").await;
    assert_eq!(still["summary"], "1 of 2 approvals");
    // The same person again does not count twice.
    let (code, out) = put(
        &app,
        &a,
        answer("quorum", "Gate", &token, "Approved", "again"),
    )
    .await;
    assert_eq!(code, 400, "{out}");
    assert_eq!(out["__type"], "ValidationException");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("answered this approval already"),
        "{out}"
    );
    let (code, out) = put(
        &app,
        &b,
        answer("quorum", "Gate", &token, "Approved", "two"),
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert!(out.get("approvals").is_none(), "{out}");
    assert_eq!(
        wait_for_end(&app, &admin, "quorum", &id).await["status"],
        "Succeeded"
    );

    // A second execution: one rejection after an approval rejects.
    let second = ok(
        &app,
        &admin,
        "StartPipelineExecution",
        json!({"name": "quorum"}),
    )
    .await["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    let token = token_of(&app, &admin, "quorum").await;
    put(
        &app,
        &a,
        answer("quorum", "Gate", &token, "Approved", "fine"),
    )
    .await;
    let (code, out) = put(&app, &b, answer("quorum", "Gate", &token, "Rejected", "no")).await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(
        wait_for_end(&app, &admin, "quorum", &second).await["status"],
        "Failed"
    );
}

#[tokio::test]
async fn only_members_of_the_approver_groups_count() {
    let (app, admin) = workers_app().await;
    let outsider = user_with_policy(&app, &admin, "outsider", Some(approver_policy())).await;
    let manager = user_with_policy(&app, &admin, "manager", Some(approver_policy())).await;
    add_to_group(&app, &admin, "Release-Managers", &["manager"]).await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    ok(
        &app,
        &admin,
        "CreatePipeline",
        json!({"pipeline": approval_pipeline("grouped", &path,
        gate("Gate", json!({"ApproverGroups": "release-managers, qa"})))}),
    )
    .await;
    let id = first_execution(&app, &admin, "grouped").await;
    let token = token_of(&app, &admin, "grouped").await;
    for status in ["Approved", "Rejected"] {
        let (code, out) = put(
            &app,
            &outsider,
            answer("grouped", "Gate", &token, status, ""),
        )
        .await;
        assert_eq!(code, 400, "{out}");
        assert!(
            out["message"]
                .as_str()
                .unwrap()
                .contains("only members of release-managers, qa count"),
            "{out}"
        );
    }
    let (code, out) = put(
        &app,
        &manager,
        answer("grouped", "Gate", &token, "Approved", ""),
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(
        wait_for_end(&app, &admin, "grouped", &id).await["status"],
        "Succeeded"
    );
}

#[tokio::test]
async fn the_starter_cannot_approve_their_own_execution_and_a_comment_can_be_required() {
    let (app, admin) = workers_app().await;
    let starter = user_with_policy(&app, &admin, "starter", Some(approver_policy())).await;
    let reviewer = user_with_policy(&app, &admin, "reviewer", Some(approver_policy())).await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    ok(
        &app,
        &admin,
        "CreatePipeline",
        json!({"pipeline": approval_pipeline("own", &path,
        gate("Gate", json!({"ForbidSelfApproval": "true", "RequireComment": "true"})))}),
    )
    .await;
    let first = first_execution(&app, &admin, "own").await;
    let token = token_of(&app, &admin, "own").await;
    // The administrator started the first execution (CreatePipeline).
    let (code, out) = put(
        &app,
        &admin,
        answer("own", "Gate", &token, "Approved", "mine"),
    )
    .await;
    assert_eq!(code, 400, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("you started this execution"),
        "{out}"
    );
    let (code, out) = put(
        &app,
        &reviewer,
        answer("own", "Gate", &token, "Approved", "  "),
    )
    .await;
    assert_eq!(code, 400, "{out}");
    assert!(
        out["message"].as_str().unwrap().contains("needs a comment"),
        "{out}"
    );
    let (code, out) = put(
        &app,
        &reviewer,
        answer("own", "Gate", &token, "Approved", "reviewed"),
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(
        wait_for_end(&app, &admin, "own", &first).await["status"],
        "Succeeded"
    );

    // An execution the user started: they may reject it, not approve it.
    let second = ok(
        &app,
        &starter,
        "StartPipelineExecution",
        json!({"name": "own"}),
    )
    .await["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    let token = token_of(&app, &admin, "own").await;
    let (code, out) = put(
        &app,
        &starter,
        answer("own", "Gate", &token, "Approved", "mine"),
    )
    .await;
    assert_eq!(code, 400, "{out}");
    let (code, out) = put(
        &app,
        &starter,
        answer("own", "Gate", &token, "Rejected", "changed my mind"),
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(
        wait_for_end(&app, &admin, "own", &second).await["status"],
        "Failed"
    );
}

#[tokio::test]
async fn the_author_of_the_revision_cannot_approve_it() {
    let (app, admin) = workers_app().await;
    // The repository's commit is by Ada Lovelace <ada@example.com>.
    let ada = user_with_policy(&app, &admin, "ada@example.com", Some(approver_policy())).await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    ok(
        &app,
        &admin,
        "CreatePipeline",
        json!({"pipeline": approval_pipeline("authored", &path,
        gate("Gate", json!({"ForbidSelfApproval": "true"})))}),
    )
    .await;
    let _ = first_execution(&app, &admin, "authored").await;
    let token = token_of(&app, &admin, "authored").await;
    let (code, out) = put(
        &app,
        &ada,
        answer("authored", "Gate", &token, "Approved", ""),
    )
    .await;
    assert_eq!(code, 400, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("you wrote a revision"),
        "{out}"
    );
}

#[tokio::test]
async fn rule_values_are_refused_at_validation_with_their_paths() {
    let (app, t) = workers_app().await;
    let cases = [
        ("RequiredApprovals", "two"),
        ("RequiredApprovals", "0"),
        ("RequiredApprovals", "#{SourceVariables.N}"),
        ("ApproverGroups", "ops, not a group"),
        ("ForbidSelfApproval", "yes"),
        ("RequireComment", "True"),
    ];
    for (key, value) in cases {
        let decl = approval_pipeline("ruled", "/tmp/x", gate("Gate", json!({key: value})));
        let (code, out) = call(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
        assert_eq!(code, 400, "{key}={value}: {out}");
        assert_eq!(out["__type"], "InvalidActionDeclarationException", "{out}");
        let message = out["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("stages[1].actions[0].configuration.{key}")),
            "{key}={value}: {message}"
        );
    }
    let (code, _) = call(&app, &t, "GetPipeline", json!({"name": "ruled"})).await;
    assert_eq!(code, 400);
}

// ---- The console -------------------------------------------------------------------------------

async fn page(app: &TestApp, client: &reqwest::Client, path: &str) -> (u16, String) {
    let res = client.get(app.url(path)).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The review links on a page (`/pipelines/…/approvals/<id>`), in order.
fn review_links(html: &str) -> Vec<String> {
    let mut links: Vec<String> = html
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.contains("/approvals/") && !href.contains("count"))
        .map(|href| href.split('?').next().unwrap().to_string())
        .collect();
    links.dedup();
    links
}

#[tokio::test]
async fn the_inbox_lists_exactly_what_each_user_may_answer() {
    let (app, admin) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, commit) = repository(repo.path());
    for name in ["alpha", "beta"] {
        let mut decl =
            approval_pipeline(name, &path, gate("Gate", json!({"ApproverGroups": "ops"})));
        decl["stages"][1]["actions"]
            .as_array_mut()
            .unwrap()
            .push(gate("Other", json!({})));
        ok(&app, &admin, "CreatePipeline", json!({"pipeline": decl})).await;
    }
    add_to_group(&app, &admin, "ops", &["admin"]).await;
    // Allowed on alpha's Gate only.
    user_with_policy(&app, &admin, "one", Some(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["codepipeline:PutApprovalResult", "codepipeline:GetPipelineState"],
         "Resource": ["arn:sluice:codepipeline:::alpha/Approve/Gate", "arn:sluice:codepipeline:::alpha"]}]}))).await;
    add_to_group(&app, &admin, "ops", &["one"]).await;
    // Allowed everywhere, but not in ops: the Gates' rules do not count them.
    user_with_policy(&app, &admin, "wide", Some(approver_policy())).await;
    // Allowed to read only.
    user_with_policy(&app, &admin, "reader", Some(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["codepipeline:Get*", "codepipeline:List*"], "Resource": "*"}]}))).await;
    for name in ["alpha", "beta"] {
        waiting(&app, &admin, name, "Approve", "Gate").await;
        waiting(&app, &admin, name, "Approve", "Other").await;
    }
    let one = app.sign_in("one", crate::harness::USER_PASSWORD).await;
    let (status, html) = page(&app, &one, "/approvals").await;
    assert_eq!(status, 200);
    let links = review_links(&html);
    assert_eq!(links.len(), 1, "{links:?}");
    assert!(
        links[0].starts_with("/pipelines/alpha/approvals/"),
        "{links:?}"
    );
    assert!(html.contains(&commit[..12]), "what it promotes");
    assert!(html.contains("First commit"));
    let (_, count) = page(&app, &one, "/approvals/count").await;
    assert!(count.contains(">1<"), "{count}");

    let wide = app.sign_in("wide", crate::harness::USER_PASSWORD).await;
    let (_, html) = page(&app, &wide, "/approvals").await;
    let links = review_links(&html);
    assert_eq!(links.len(), 2, "the two Others: {links:?}");

    let reader = app.sign_in("reader", crate::harness::USER_PASSWORD).await;
    let (_, html) = page(&app, &reader, "/approvals").await;
    assert!(review_links(&html).is_empty());
    assert!(html.contains("Nothing is waiting for you."));
    let (_, count) = page(&app, &reader, "/approvals/count").await;
    assert!(count.trim().is_empty(), "{count:?}");
    // The reader sees the approval's state on the pipeline, but no Review button.
    let (_, view) = page(&app, &reader, "/pipelines/alpha").await;
    assert!(view.contains("Waiting for approval until"), "{view}");
    assert!(review_links(&view).is_empty());

    // The administrator (in ops, allowed everything) sees all four, oldest first.
    let (_, html) = page(&app, &app.client, "/approvals").await;
    assert_eq!(review_links(&html).len(), 4);
}

#[tokio::test]
async fn answering_in_the_console_is_put_approval_result_with_its_refusals() {
    let (app, admin) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    ok(&app, &admin, "CreatePipeline", json!({"pipeline": approval_pipeline("console", &path,
        gate("Gate", json!({"RequireComment": "true", "CustomData": "Check the <b>release notes</b>"})))})).await;
    let id = first_execution(&app, &admin, "console").await;
    let token = token_of(&app, &admin, "console").await;
    user_with_policy(&app, &admin, "reader", Some(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["codepipeline:Get*", "codepipeline:List*"], "Resource": "*"}]}))).await;
    let (_, view) = page(&app, &app.client, "/pipelines/console").await;
    let review = review_links(&view)
        .pop()
        .expect("a Review button for the administrator");

    // The plain page (no JavaScript needed) and the dialog htmx loads.
    let (status, html) = page(&app, &app.client, &review).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Check the &#60;b&#62;release notes&#60;/b&#62;"),
        "escaped CustomData: {html}"
    );
    assert!(html.contains("every answer needs a comment"));
    assert!(html.contains("No earlier execution was approved here."));
    let dialog = app
        .client
        .get(app.url(&format!("{review}?dialog=1")))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(dialog.trim_start().starts_with("<dialog open"), "{dialog}");
    assert!(dialog.contains("name=\"decision\" value=\"Approved\""));

    // A reader posting anyway: 403 and one AccessDenied event.
    let reader = app.sign_in("reader", crate::harness::USER_PASSWORD).await;
    let (status, html) = page(&app, &reader, &review).await;
    assert_eq!(status, 200);
    assert!(!html.contains("name=\"decision\""), "no form for a reader");
    let fields = [
        ("stage", "Approve"),
        ("action", "Gate"),
        ("token", token.as_str()),
        ("decision", "Approved"),
        ("comment", "sneaky"),
    ];
    let res = app.post_form(&reader, &review, &fields).await;
    assert_eq!(res.status(), 403);
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let denied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE event_name = 'codepipeline:PutApprovalResult' AND outcome = 'AccessDenied' AND user_name = 'reader'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(denied, 1);

    // No comment: refused, the review again with a message; then approved with a comment.
    let no_comment = [
        ("stage", "Approve"),
        ("action", "Gate"),
        ("token", token.as_str()),
        ("decision", "Approved"),
        ("comment", "  "),
    ];
    let res = app.post_form(&app.client, &review, &no_comment).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("needs a comment"));
    let multi_line = "Release notes read.\r\nShip it.";
    let good = [
        ("stage", "Approve"),
        ("action", "Gate"),
        ("token", token.as_str()),
        ("decision", "Approved"),
        ("comment", multi_line),
    ];
    let res = app.post_form(&app.client, &review, &good).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/pipelines/console?approval=Approved"
    );
    assert_eq!(
        wait_for_end(&app, &admin, "console", &id).await["status"],
        "Succeeded"
    );
    let state = ok(&app, &admin, "GetPipelineState", json!({"name": "console"})).await;
    assert_eq!(
        state["stageStates"][1]["actionStates"][0]["latestExecution"]["summary"],
        "Release notes read.\nShip it."
    );
    // The execution's page shows who approved, from where, with the comment.
    let (_, html) = page(
        &app,
        &app.client,
        &format!("/pipelines/console/executions/{id}"),
    )
    .await;
    assert!(html.contains("Approved by admin at"), "{html}");
    assert!(html.contains("from 127.0.0.1: Release notes read."));
}

#[tokio::test]
async fn name_variants_never_reach_a_denied_gate() {
    let (app, admin) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    ok(
        &app,
        &admin,
        "CreatePipeline",
        json!({"pipeline": approval_pipeline("Prod", &path, gate("Gate", json!({})))}),
    )
    .await;
    let denied = user_with_policy(&app, &admin, "denied", Some(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "codepipeline:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "codepipeline:PutApprovalResult", "Resource": "arn:sluice:codepipeline:::Prod/Approve/Gate"}]}))).await;
    let id = first_execution(&app, &admin, "Prod").await;
    let token = token_of(&app, &admin, "Prod").await;
    let variants = [
        ("Prod", "Approve", "gate"),
        ("Prod", "approve", "Gate"),
        ("prod", "Approve", "Gate"),
        ("Prod", "Approve", "Gate "),
        ("Prod", " Approve", "Gate"),
        ("Prod", "Approve", "Ｇate"),
        ("Prod", "Approve", "GATE"),
        ("Prod", "Approve", "Gate\u{200b}"),
    ];
    for (p, s, a) in variants {
        let body = json!({"pipelineName": p, "stageName": s, "actionName": a,
            "result": {"status": "Approved", "summary": ""}, "token": token});
        let (code, out) = put(&app, &denied, body).await;
        assert_ne!(code, 200, "{p}/{s}/{a}: {out}");
    }
    let (code, out) = put(
        &app,
        &denied,
        answer("Prod", "Gate", &token, "Approved", ""),
    )
    .await;
    assert_eq!(out["__type"], "AccessDeniedException", "{code} {out}");
    // Still waiting, with the same token.
    assert_eq!(
        waiting(&app, &admin, "Prod", "Approve", "Gate").await["token"],
        token.as_str()
    );
    let (code, _) = put(&app, &admin, answer("Prod", "Gate", &token, "Approved", "")).await;
    assert_eq!(code, 200);
    assert_eq!(
        wait_for_end(&app, &admin, "Prod", &id).await["status"],
        "Succeeded"
    );
}

fn commit(dir: &std::path::Path, message: &str) -> String {
    let git = |args: &[&str]| crate::executions::git(dir, args);
    std::fs::write(dir.join("app.txt"), message).unwrap();
    git(&["add", "."]);
    git(&[
        "-c",
        "user.name=Grace Hopper",
        "-c",
        "user.email=grace@example.com",
        "commit",
        "--quiet",
        "-m",
        message,
    ]);
    git(&["rev-parse", "HEAD"])
}

#[tokio::test]
async fn the_review_lists_the_commits_since_the_last_approval_at_the_gate() {
    let (app, admin) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, first) = repository(repo.path());
    ok(
        &app,
        &admin,
        "CreatePipeline",
        json!({"pipeline": approval_pipeline("since", &path, gate("Gate", json!({})))}),
    )
    .await;
    let id = first_execution(&app, &admin, "since").await;
    let token = token_of(&app, &admin, "since").await;
    put(
        &app,
        &admin,
        answer("since", "Gate", &token, "Approved", ""),
    )
    .await;
    wait_for_end(&app, &admin, "since", &id).await;
    let second = commit(repo.path(), "Second change");
    let third = commit(repo.path(), "Third change");
    let next = ok(
        &app,
        &admin,
        "StartPipelineExecution",
        json!({"name": "since"}),
    )
    .await["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    waiting(&app, &admin, "since", "Approve", "Gate").await;
    let (_, view) = page(&app, &app.client, "/pipelines/since").await;
    let review = review_links(&view).pop().unwrap();
    let (_, html) = page(&app, &app.client, &review).await;
    assert!(
        html.contains(&format!("2 new commits since {}", &first[..12])),
        "{html}"
    );
    let at_third = html.find(&third[..12]).expect("the newest commit");
    let at_second = html
        .find(&format!("{}</span> Second change", &second[..12]))
        .expect("the one before");
    assert!(at_third < at_second, "newest first");
    assert!(html.contains("Grace Hopper"));
    assert!(
        !html.contains(&format!("{}</span> First commit", &first[..12])),
        "the approved one is not new"
    );
    let token = token_of(&app, &admin, "since").await;
    put(
        &app,
        &admin,
        answer("since", "Gate", &token, "Approved", ""),
    )
    .await;
    assert_eq!(
        wait_for_end(&app, &admin, "since", &next).await["status"],
        "Succeeded"
    );
}

#[tokio::test]
async fn an_abandoned_execution_closes_its_approval_and_an_unresolvable_one_fails_at_once() {
    let (app, admin) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    ok(
        &app,
        &admin,
        "CreatePipeline",
        json!({"pipeline": approval_pipeline("stopped", &path, gate("Gate", json!({})))}),
    )
    .await;
    let id = first_execution(&app, &admin, "stopped").await;
    let token = token_of(&app, &admin, "stopped").await;
    let (_, inbox) = page(&app, &app.client, "/approvals").await;
    assert_eq!(review_links(&inbox).len(), 1);
    ok(
        &app,
        &admin,
        "StopPipelineExecution",
        json!({"pipelineName": "stopped", "pipelineExecutionId": id,
        "abandon": true, "reason": "not now"}),
    )
    .await;
    assert_eq!(
        wait_for_end(&app, &admin, "stopped", &id).await["status"],
        "Stopped"
    );
    let (_, inbox) = page(&app, &app.client, "/approvals").await;
    assert!(review_links(&inbox).is_empty(), "closed with its attempt");
    let (code, out) = put(
        &app,
        &admin,
        answer("stopped", "Gate", &token, "Approved", ""),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(out["__type"], "InvalidApprovalTokenException", "{out}");

    // A reference that resolves to nothing (a build that exports no such variable): the action
    // fails when it is reached.
    let mut decl = approval_pipeline(
        "unresolved",
        &path,
        gate("Gate", json!({"CustomData": "#{BuildVars.Missing}"})),
    );
    let mut build = command(
        "Build",
        "Build",
        &["Src"],
        None,
        json!({"BuildSpec": SHIP_SPEC}),
    );
    build["namespace"] = json!("BuildVars");
    decl["stages"][1]["actions"]
        .as_array_mut()
        .unwrap()
        .insert(0, build);
    decl["stages"][1]["actions"][1]["runOrder"] = json!(2);
    ok(&app, &admin, "CreatePipeline", json!({"pipeline": decl})).await;
    let id = first_execution(&app, &admin, "unresolved").await;
    assert_eq!(
        wait_for_end(&app, &admin, "unresolved", &id).await["status"],
        "Failed"
    );
    let state = ok(
        &app,
        &admin,
        "GetPipelineState",
        json!({"name": "unresolved"}),
    )
    .await;
    let latest = &state["stageStates"][1]["actionStates"][1]["latestExecution"];
    assert_eq!(latest["status"], "Failed");
    assert!(
        latest["summary"].as_str().unwrap().contains("Missing"),
        "{latest}"
    );
    let (_, inbox) = page(&app, &app.client, "/approvals").await;
    assert!(review_links(&inbox).is_empty());
}

#[tokio::test]
async fn the_inbox_pages_oldest_first_and_leaves_out_what_the_user_answered() {
    let (app, admin) = workers_app().await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    let mut decl = approval_pipeline(
        "many",
        &path,
        gate("Gate", json!({"RequiredApprovals": "2"})),
    );
    decl["executionMode"] = json!("PARALLEL");
    ok(&app, &admin, "CreatePipeline", json!({"pipeline": decl})).await;
    for _ in 0..51 {
        ok(
            &app,
            &admin,
            "StartPipelineExecution",
            json!({"name": "many"}),
        )
        .await;
    }
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    for _ in 0..600 {
        let open: i64 = sqlx::query_scalar("SELECT count(*) FROM approvals WHERE outcome IS NULL")
            .fetch_one(&mut c)
            .await
            .unwrap();
        if open == 52 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, first) = page(&app, &app.client, "/approvals").await;
    let links = review_links(&first);
    assert_eq!(links.len(), 50);
    assert!(first.contains("(52)"), "the total");
    let next = first
        .split("href=\"/approvals?after=")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a next page");
    let (_, second) = page(&app, &app.client, &format!("/approvals?after={next}")).await;
    let more = review_links(&second);
    assert_eq!(more.len(), 2);
    assert!(more.iter().all(|l| !links.contains(l)));
    // Oldest first: the requests' order in the database.
    let ordered: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT action_execution_id FROM approvals WHERE outcome IS NULL ORDER BY requested_at, action_execution_id",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let shown: Vec<String> = links
        .iter()
        .chain(more.iter())
        .map(|l| l.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(
        shown,
        ordered.iter().map(|u| u.to_string()).collect::<Vec<_>>()
    );

    // One approval of two: it leaves the administrator's inbox, and stays in another's.
    user_with_policy(&app, &admin, "other", Some(approver_policy())).await;
    let (token,): (uuid::Uuid,) =
        sqlx::query_as("SELECT token FROM approvals WHERE action_execution_id = $1")
            .bind(ordered[0])
            .fetch_one(&mut c)
            .await
            .unwrap();
    let (code, out) = put(
        &app,
        &admin,
        answer("many", "Gate", &token.to_string(), "Approved", ""),
    )
    .await;
    assert_eq!(code, 200, "{out}");
    let (_, count) = page(&app, &app.client, "/approvals/count").await;
    assert!(count.contains(">51<"), "{count}");
    let other_client = app.sign_in("other", crate::harness::USER_PASSWORD).await;
    let (_, count) = page(&app, &other_client, "/approvals/count").await;
    assert!(count.contains(">52<"), "{count}");
    let (_, html) = page(&app, &other_client, "/approvals").await;
    assert!(html.contains("1 of 2 approvals"));
}

#[tokio::test]
async fn editing_one_rule_of_a_gate_keeps_its_multi_line_note_byte_identical() {
    let (app, admin) = crate::harness::admin_api().await;
    let note = "Check the release notes.\n  Then the dashboards   \n";
    let decl = approval_pipeline(
        "edited",
        "/srv/git/app.git",
        gate("Gate", json!({"CustomData": note})),
    );
    let res = app
        .post_form(
            &app.client,
            "/pipelines/import",
            &[("document", &json!({"pipeline": decl}).to_string())],
        )
        .await;
    assert_eq!(res.status(), 303);
    let html = app
        .get("/pipelines/edited/edit")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"name="config.CustomData""#) && html.contains("config.RequiredApprovals")
    );
    let crlf = |s: &str| s.replace('\n', "\r\n");
    let gate_form = |required: &str| {
        vec![
            ("op", "edit_action".to_string()),
            ("stage", "1".into()),
            ("action", "0".into()),
            ("action_name", "Gate".into()),
            ("run_order", "1".into()),
            ("namespace", "".into()),
            ("config.CustomData", crlf(note)),
            ("config.ExternalEntityLink", "".into()),
            ("config.NotificationArn", "".into()),
            ("config.RequiredApprovals", required.to_string()),
            ("config.ApproverGroups", "".into()),
            ("config.ForbidSelfApproval", "".into()),
            ("config.RequireComment", "".into()),
        ]
    };
    // A rule value that is not a number: refused with its path, what was typed kept.
    let (status, refused) =
        crate::console_pipelines::editor_post(&app, "edited", gate_form("two"), html.clone()).await;
    assert!(status == 200 || status == 400, "{status}");
    let (status, saved) =
        crate::console_pipelines::editor_post(&app, "edited", vec![("op", "save".into())], refused)
            .await;
    assert_eq!(status, 400, "{saved}");
    assert!(saved.contains("configuration.RequiredApprovals"), "{saved}");
    assert!(saved.contains("must be a whole number from 1 to 20"));
    // The same with a valid value saves a version in which only that rule changed.
    let (status, edited) =
        crate::console_pipelines::editor_post(&app, "edited", gate_form("2"), html).await;
    assert_eq!(status, 200, "{edited}");
    let (status, _) =
        crate::console_pipelines::editor_post(&app, "edited", vec![("op", "save".into())], edited)
            .await;
    assert_eq!(status, 303);
    let v2 = ok(&app, &admin, "GetPipeline", json!({"name": "edited"})).await["pipeline"].clone();
    assert_eq!(
        v2["stages"][1]["actions"][0]["configuration"],
        json!({"CustomData": note, "RequiredApprovals": "2"})
    );
}
