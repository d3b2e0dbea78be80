//! Validation: a case for every rule, with its exception and path; defaults; the quotas; and the
//! round trip of generated valid declarations.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::wire::PipelineDeclaration;
use super::*;

fn parse(value: Value) -> PipelineDeclaration {
    serde_json::from_value(value).expect("well-formed declaration")
}

fn problems(value: Value) -> Vec<(ProblemKind, String)> {
    match validate(parse(value)) {
        Ok(_) => Vec::new(),
        Err(p) => p.all().iter().map(|p| (p.kind, p.path.clone())).collect(),
    }
}

fn message_of(value: Value, path: &str) -> String {
    let err = validate(parse(value)).unwrap_err();
    err.all()
        .iter()
        .find(|p| p.path == path)
        .unwrap_or_else(|| panic!("no problem at {path}: {err}"))
        .message
        .clone()
}

fn git(name: &str, out: &str) -> Value {
    json!({
        "name": name,
        "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
        "namespace": "SourceVariables",
        "configuration": {"RepositoryUrl": "https://git.example.com/app.git", "Branch": "main"},
        "outputArtifacts": [{"name": out}]
    })
}

fn build(name: &str, input: &str, output: Option<&str>) -> Value {
    let mut a = json!({
        "name": name,
        "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
        "configuration": {"BuildSpec": "version: 0.2\nphases: {build: {commands: [make]}}"},
        "inputArtifacts": [{"name": input}]
    });
    if let Some(o) = output {
        a["outputArtifacts"] = json!([{"name": o}]);
    }
    a
}

fn approval(name: &str) -> Value {
    json!({
        "name": name,
        "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"},
        "configuration": {"CustomData": "Release #{SourceVariables.CommitId}?"},
        "timeoutInMinutes": 60
    })
}

fn deploy(name: &str, input: &str) -> Value {
    json!({
        "name": name,
        "actionTypeId": {"category": "Deploy", "owner": "Sluice", "provider": "Directory", "version": "1"},
        "configuration": {"TargetDirectory": "/srv/app"},
        "inputArtifacts": [{"name": input}]
    })
}

/// A valid four-stage pipeline.
fn valid() -> Value {
    json!({
        "name": "web-app",
        "stages": [
            {"name": "Source", "actions": [git("Checkout", "SourceArtifact")]},
            {"name": "Build", "actions": [build("Compile", "SourceArtifact", Some("BuildArtifact"))]},
            {"name": "Approve", "actions": [approval("ReleaseGate")]},
            {"name": "Deploy", "actions": [deploy("Install", "BuildArtifact")]}
        ]
    })
}

#[test]
fn a_valid_pipeline_gets_codepipelines_defaults() {
    let pipeline = validate(parse(valid())).unwrap();
    assert_eq!(pipeline.name(), "web-app");
    assert_eq!(pipeline.execution_mode(), ExecutionMode::Superseded);
    assert_eq!(pipeline.pipeline_type(), PipelineType::V2);
    let out = serde_json::to_value(pipeline.declaration()).unwrap();
    assert_eq!(out["executionMode"], "SUPERSEDED");
    assert_eq!(out["pipelineType"], "V2");
    let approve = &out["stages"][2]["actions"][0];
    assert_eq!(approve["runOrder"], 1);
    assert_eq!(approve["inputArtifacts"], json!([]));
    assert_eq!(approve["outputArtifacts"], json!([]));
    let deploy = &out["stages"][3]["actions"][0];
    assert_eq!(deploy["outputArtifacts"], json!([]));
}

#[test]
fn the_documented_example_adapted_to_sluice_validates() {
    let mut example = valid();
    example["pipelineType"] = json!("V2");
    example["executionMode"] = json!("QUEUED");
    example["roleArn"] = json!("arn:aws:iam::111122223333:role/CodePipelineServiceRole");
    example["artifactStore"] =
        json!({"type": "S3", "location": "codepipeline-us-east-1-111122223333"});
    example["variables"] =
        json!([{"name": "DeployEnv", "defaultValue": "prod", "description": "target"}]);
    example["triggers"] = json!([{
        "providerType": "CodeStarSourceConnection",
        "gitConfiguration": {
            "sourceActionName": "Checkout",
            "push": [{"branches": {"includes": ["main", "release/**"]}, "filePaths": {"excludes": ["docs/**"]}}],
            "pullRequest": [{"events": ["OPEN", "UPDATED"], "branches": {"includes": ["main"]}}]
        }
    }]);
    example["stages"][3]["actions"][0]["configuration"]["TargetDirectory"] =
        json!("/srv/#{variables.DeployEnv}");
    example["stages"][1]["onFailure"] =
        json!({"result": "RETRY", "retryConfiguration": {"retryMode": "FAILED_ACTIONS"}});
    validate(parse(example)).unwrap();
}

#[test]
fn names_patterns_and_lengths() {
    let mut v = valid();
    v["name"] = json!("has space");
    v["stages"][1]["name"] = json!("x".repeat(101));
    v["stages"][1]["actions"][0]["name"] = json!("");
    assert_eq!(
        problems(v),
        [
            (ProblemKind::Validation, "name".into()),
            (ProblemKind::Validation, "stages[1].name".into()),
            (ProblemKind::Validation, "stages[1].actions[0].name".into()),
        ]
    );
    let mut v = valid();
    v["name"] = json!("n".repeat(10_000));
    assert!(message_of(v, "name").contains("1-100 characters"));
}

#[test]
fn two_to_fifty_stages() {
    let mut v = valid();
    v["stages"] = json!([v["stages"][0]]);
    let msg = message_of(v.clone(), "stages");
    assert_eq!(
        msg,
        "Pipeline has only 1 stage(s). There should be a minimum of 2 stages in a pipeline"
    );
    assert!(problems(v).contains(&(ProblemKind::InvalidStructure, "stages".into())));
}

#[test]
fn the_first_stage_holds_only_sources_and_sources_appear_only_there() {
    let mut v = valid();
    v["stages"][0]["actions"]
        .as_array_mut()
        .unwrap()
        .push(approval("TooEarly"));
    assert_eq!(
        message_of(v, "stages[0].actions[1].actionTypeId.category"),
        "Pipeline should start with a stage that only contains source actions."
    );
    let mut v = valid();
    v["stages"][1]["actions"]
        .as_array_mut()
        .unwrap()
        .push(git("Late", "Other"));
    assert!(problems(v).contains(&(
        ProblemKind::InvalidStructure,
        "stages[1].actions[1].actionTypeId.category".into()
    )));
    let only_sources = json!({"name": "p", "stages": [
        {"name": "A", "actions": [git("One", "X")]},
        {"name": "B", "actions": [{"name": "Two", "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Upload", "version": "1"},
            "configuration": {"Bucket": "b", "ObjectKey": "k"}, "outputArtifacts": [{"name": "Y"}]}]}
    ]});
    let found = problems(only_sources);
    assert!(
        found.contains(&(ProblemKind::InvalidStructure, "stages".into())),
        "{found:?}"
    );
}

#[test]
fn one_to_fifty_actions_per_stage_and_unique_names() {
    let mut v = valid();
    v["stages"][2]["actions"] = json!([]);
    assert!(problems(v).contains(&(
        ProblemKind::InvalidStageDeclaration,
        "stages[2].actions".into()
    )));
    let mut v = valid();
    v["stages"][2]["name"] = json!("Build");
    assert!(problems(v).contains(&(ProblemKind::InvalidStructure, "stages[2].name".into())));
    let mut v = valid();
    v["stages"][2]["actions"]
        .as_array_mut()
        .unwrap()
        .push(approval("ReleaseGate"));
    assert!(problems(v).contains(&(
        ProblemKind::InvalidStageDeclaration,
        "stages[2].actions[1].name".into()
    )));
}

#[test]
fn artifacts_are_unique_and_produced_before_they_are_consumed() {
    let mut v = valid();
    v["stages"][1]["actions"][0]["outputArtifacts"] = json!([{"name": "SourceArtifact"}]);
    let msg = message_of(v, "stages[1].actions[0].outputArtifacts[0].name");
    assert!(msg.contains("must be unique within the pipeline"), "{msg}");

    let mut v = valid();
    v["stages"][3]["actions"][0]["inputArtifacts"] = json!([{"name": "Nowhere"}]);
    assert_eq!(
        problems(v),
        [(
            ProblemKind::InvalidActionDeclaration,
            "stages[3].actions[0].inputArtifacts[0]".into()
        )]
    );

    // Same stage: only a lower runOrder counts as "before".
    let mut v = valid();
    let stage = v["stages"][1]["actions"].as_array_mut().unwrap();
    stage.push(build("Package", "BuildArtifact", Some("Package")));
    assert!(problems(v.clone()).contains(&(
        ProblemKind::InvalidActionDeclaration,
        "stages[1].actions[1].inputArtifacts[0]".into()
    )));
    v["stages"][1]["actions"][1]["runOrder"] = json!(2);
    assert_eq!(problems(v), []);
}

#[test]
fn artifact_counts_follow_the_action_type() {
    let mut v = valid();
    v["stages"][1]["actions"][0]["inputArtifacts"] = json!([]);
    let msg = message_of(v, "stages[1].actions[0].inputArtifacts");
    assert_eq!(
        msg,
        "Action Compile declares 0 input artifacts which is less than the minimum count (1)"
    );
    let mut v = valid();
    v["stages"][2]["actions"][0]["outputArtifacts"] = json!([{"name": "Extra"}]);
    assert!(
        message_of(v, "stages[2].actions[0].outputArtifacts")
            .contains("more than the maximum count (0)")
    );
}

#[test]
fn configuration_keys_are_checked_against_the_registry() {
    let mut v = valid();
    v["stages"][0]["actions"][0]["configuration"] = json!({"Branch": "main", "Colour": "red"});
    let found = problems(v.clone());
    assert!(found.contains(&(
        ProblemKind::InvalidActionDeclaration,
        "stages[0].actions[0].configuration.Colour".into()
    )));
    assert!(found.contains(&(
        ProblemKind::InvalidActionDeclaration,
        "stages[0].actions[0].configuration".into()
    )));
    assert!(message_of(v, "stages[0].actions[0].configuration").contains("RepositoryUrl"));
    let mut v = valid();
    v["stages"][3]["actions"][0]["configuration"]["TargetDirectory"] = json!("");
    assert!(problems(v).contains(&(
        ProblemKind::Validation,
        "stages[3].actions[0].configuration.TargetDirectory".into()
    )));
}

#[test]
fn unknown_and_aws_only_action_types_say_what_to_use() {
    let mut v = valid();
    v["stages"][1]["actions"][0]["actionTypeId"] =
        json!({"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"});
    let msg = message_of(v, "stages[1].actions[0].actionTypeId");
    assert!(
        msg.contains("Build/AWS/CodeBuild/1") && msg.contains("Build/Sluice/Command/1"),
        "{msg}"
    );
    let mut v = valid();
    v["stages"][1]["actions"][0]["actionTypeId"]["provider"] = json!("Nope");
    assert!(message_of(v, "stages[1].actions[0].actionTypeId").contains("does not exist"));
    let mut v = valid();
    v["stages"][1]["actions"][0]["actionTypeId"]["category"] = json!("Cook");
    assert!(problems(v).contains(&(
        ProblemKind::Validation,
        "stages[1].actions[0].actionTypeId.category".into()
    )));
}

#[test]
fn namespaces_are_unique_and_differ_from_artifact_names() {
    let mut v = valid();
    v["stages"][1]["actions"][0]["namespace"] = json!("SourceVariables");
    assert!(message_of(v, "stages[1].actions[0].namespace").contains("Namespaces must be unique"));
    let mut v = valid();
    v["stages"][1]["actions"][0]["namespace"] = json!("BuildArtifact");
    assert!(problems(v).contains(&(
        ProblemKind::InvalidActionDeclaration,
        "stages[1].actions[0].namespace".into()
    )));
    let mut v = valid();
    v["stages"][1]["actions"][0]["namespace"] = json!("has.dot");
    assert!(problems(v).contains(&(
        ProblemKind::Validation,
        "stages[1].actions[0].namespace".into()
    )));
}

#[test]
fn variable_references_must_resolve_to_something_that_runs_earlier() {
    let set = |v: &mut Value, text: &str| {
        v["stages"][2]["actions"][0]["configuration"]["CustomData"] = json!(text);
    };
    let path = "stages[2].actions[0].configuration.CustomData";
    for (text, ok) in [
        ("#{SourceVariables.CommitId}", true),
        ("#{codepipeline.PipelineExecutionId}", true),
        ("#{codepipeline.Other}", false),
        ("#{variables.Missing}", false),
        ("#{Nobody.CommitId}", false),
        ("#{SourceVariables.NotAVariable}", false),
        ("#{NoDot}", false),
    ] {
        let mut v = valid();
        set(&mut v, text);
        let found = problems(v);
        assert_eq!(found.is_empty(), ok, "{text}: {found:?}");
        if !ok {
            assert_eq!(
                found,
                [(ProblemKind::InvalidActionDeclaration, path.to_string())],
                "{text}"
            );
        }
    }
    // A namespace of a later stage is not guaranteed to have run.
    let mut v = valid();
    v["stages"][3]["actions"][0]["namespace"] = json!("DeployVars");
    set(&mut v, "#{DeployVars.Anything}");
    assert!(message_of(v, path).contains("not guaranteed to run before"));
}

#[test]
fn run_order_and_timeouts() {
    let mut v = valid();
    v["stages"][1]["actions"][0]["runOrder"] = json!(1000);
    assert!(problems(v).contains(&(
        ProblemKind::Validation,
        "stages[1].actions[0].runOrder".into()
    )));
    let mut v = valid();
    v["stages"][2]["actions"][0]["timeoutInMinutes"] = json!(4);
    assert!(problems(v).contains(&(
        ProblemKind::Validation,
        "stages[2].actions[0].timeoutInMinutes".into()
    )));
    let mut v = valid();
    v["stages"][1]["actions"][0]["timeoutInMinutes"] = json!(60);
    assert!(problems(v).contains(&(
        ProblemKind::InvalidActionDeclaration,
        "stages[1].actions[0].timeoutInMinutes".into()
    )));
}

#[test]
fn v2_features_on_a_v1_pipeline_are_refused() {
    let mut v = valid();
    v["pipelineType"] = json!("V1");
    v["executionMode"] = json!("QUEUED");
    v["variables"] = json!([{"name": "Env", "defaultValue": "prod"}]);
    v["stages"][1]["onFailure"] = json!({"result": "RETRY"});
    v["triggers"] = json!([{"providerType": "CodeStarSourceConnection", "gitConfiguration": {"sourceActionName": "Checkout", "push": [{"branches": {"includes": ["main"]}}]}}]);
    let found = problems(v);
    for path in [
        "executionMode",
        "variables",
        "stages[1].onFailure",
        "triggers",
    ] {
        assert!(
            found.contains(&(ProblemKind::InvalidStructure, path.to_string())),
            "{path}: {found:?}"
        );
    }
}

#[test]
fn what_sluice_does_not_support_is_refused_not_ignored() {
    let mut v = valid();
    v["stages"][1]["blockers"] = json!([{"name": "b", "type": "Schedule"}]);
    v["stages"][1]["beforeEntry"] = json!({"conditions": []});
    v["stages"][1]["actions"][0]["commands"] = json!(["make"]);
    v["stages"][1]["actions"][0]["region"] = json!("us-east-1");
    v["artifactStores"] = json!({"us-east-1": {"type": "S3", "location": "bucket"}});
    let found = problems(v);
    for (kind, path) in [
        (ProblemKind::InvalidBlockerDeclaration, "stages[1].blockers"),
        (
            ProblemKind::InvalidStageDeclaration,
            "stages[1].beforeEntry",
        ),
        (
            ProblemKind::InvalidActionDeclaration,
            "stages[1].actions[0].commands",
        ),
        (
            ProblemKind::InvalidActionDeclaration,
            "stages[1].actions[0].region",
        ),
        (ProblemKind::InvalidStructure, "artifactStores"),
    ] {
        assert!(
            found.contains(&(kind, path.to_string())),
            "{path}: {found:?}"
        );
    }
}

#[test]
fn triggers_name_a_git_source_once() {
    let mut v = valid();
    v["triggers"] = json!([
        {"providerType": "CodeStarSourceConnection", "gitConfiguration": {"sourceActionName": "Nope", "push": [{"branches": {"includes": ["main"]}}]}},
        {"providerType": "GitHub", "gitConfiguration": {"sourceActionName": "Checkout", "pullRequest": [{"events": ["MERGED"], "branches": {"includes": ["main"]}}]}}
    ]);
    let found = problems(v);
    for (kind, path) in [
        (
            ProblemKind::InvalidStructure,
            "triggers[0].gitConfiguration.sourceActionName",
        ),
        (ProblemKind::Validation, "triggers[1].providerType"),
        (
            ProblemKind::Validation,
            "triggers[1].gitConfiguration.pullRequest[0].events",
        ),
    ] {
        assert!(
            found.contains(&(kind, path.to_string())),
            "{path}: {found:?}"
        );
    }
}

#[test]
fn every_problem_is_reported_at_once_shape_problems_first() {
    let mut v = valid();
    v["stages"][3]["actions"][0]["inputArtifacts"] = json!([{"name": "Nowhere"}]);
    v["stages"][1]["actions"][0]["runOrder"] = json!(0);
    let err = validate(parse(v)).unwrap_err();
    assert_eq!(err.all().len(), 2);
    assert_eq!(err.exception(), "ValidationException");
    assert!(
        err.to_string()
            .starts_with("2 problems found: stages[1].actions[0].runOrder"),
        "{err}"
    );
}

/// The largest pipeline CodePipeline's quotas allow: 50 stages, 500 actions, 50 in one stage.
fn largest(extra_action: bool) -> Value {
    let mut stages = vec![json!({"name": "Source", "actions": [git("Checkout", "Src")]})];
    // Stage 1: 50 actions side by side.
    let wide: Vec<Value> = (0..50)
        .map(|i| build(&format!("Wide{i}"), "Src", None))
        .collect();
    stages.push(json!({"name": "Wide", "actions": wide}));
    // 48 more stages of 9 or 10 actions: 1 + 50 + 449 = 500.
    let mut remaining = 449;
    for s in 0..48 {
        let n = if s < 17 { 10 } else { 9 };
        let n = n.min(remaining);
        remaining -= n;
        let actions: Vec<Value> = (0..n)
            .map(|i| build(&format!("S{s}A{i}"), "Src", None))
            .collect();
        stages.push(json!({"name": format!("Stage{s}"), "actions": actions}));
    }
    assert_eq!(remaining, 0);
    if extra_action {
        stages[2]["actions"]
            .as_array_mut()
            .unwrap()
            .push(build("OneTooMany", "Src", None));
    }
    json!({"name": "largest", "stages": stages})
}

#[test]
fn the_largest_legal_pipeline_validates_and_one_more_action_is_refused() {
    let decl = largest(false);
    let count: usize = decl["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["actions"].as_array().unwrap().len())
        .sum();
    assert_eq!(count, 500);
    assert_eq!(decl["stages"].as_array().unwrap().len(), 50);
    validate(parse(decl)).unwrap();
    let found = problems(largest(true));
    assert_eq!(found, [(ProblemKind::LimitExceeded, "stages".to_string())]);
}

#[test]
fn variable_references_are_found_in_text() {
    assert_eq!(
        references("a #{X.y} b #{codepipeline.PipelineExecutionId}"),
        ["X.y", "codepipeline.PipelineExecutionId"]
    );
    assert_eq!(references("no refs, #{unclosed"), Vec::<&str>::new());
}

// ---- Round trip ----------------------------------------------------------------------------

/// Generated valid declarations: a Git source, then 1-6 stages of builds, tests, approvals and
/// deploys wired to earlier artifacts, with optional fields present or absent.
fn arb_declaration() -> impl Strategy<Value = Value> {
    let stage = prop::collection::vec((0..4u8, any::<bool>(), 1..4i64), 1..4);
    (
        prop::collection::vec(stage, 1..6),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec![
            "SUPERSEDED",
            "QUEUED",
            "PARALLEL",
        ])),
    )
        .prop_map(|(stages, with_variables, mode)| {
            let mut out = vec![json!({"name": "Source", "actions": [git("Checkout", "A0")]})];
            let mut artifacts = vec!["A0".to_string()];
            let mut counter = 0;
            for (si, actions) in stages.iter().enumerate() {
                let mut list = Vec::new();
                for (kind, explicit, run_order) in actions {
                    counter += 1;
                    let input = artifacts[counter % artifacts.len()].clone();
                    let name = format!("Act{counter}");
                    let mut action = match kind {
                        0 => {
                            let output = format!("A{counter}");
                            build(&name, &input, Some(&output))
                        }
                        1 => {
                            let mut t = build(&name, &input, None);
                            t["actionTypeId"]["category"] = json!("Test");
                            t
                        }
                        2 => approval(&name),
                        _ => deploy(&name, &input),
                    };
                    if *explicit {
                        action["runOrder"] = json!(1);
                        action
                            .as_object_mut()
                            .unwrap()
                            .entry("outputArtifacts")
                            .or_insert(json!([]));
                    }
                    let _ = run_order;
                    list.push(action);
                }
                // Outputs of this stage are usable from the next stage on.
                for a in &list {
                    if let Some(outs) = a["outputArtifacts"].as_array() {
                        for o in outs {
                            artifacts.push(o["name"].as_str().unwrap().to_string());
                        }
                    }
                }
                out.push(json!({"name": format!("Stage{si}"), "actions": list}));
            }
            let mut decl = json!({"name": "generated", "stages": out});
            if with_variables {
                decl["variables"] = json!([{"name": "Env", "defaultValue": "dev"}]);
            }
            if let Some(mode) = mode {
                decl["executionMode"] = json!(mode);
            }
            decl
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn valid_declarations_survive_json_domain_json(decl in arb_declaration()) {
        let pipeline = validate(parse(decl.clone())).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let out = serde_json::to_value(pipeline.declaration()).unwrap();
        // Parsing the output again gives the same pipeline, and the output is a fixed point.
        let again = validate(parse(out.clone())).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&again, &pipeline);
        prop_assert_eq!(serde_json::to_value(again.declaration()).unwrap(), out.clone());
        // Nothing the input said is lost: every input member is in the output with the same value.
        prop_assert!(contains(&out, &decl), "{} lost something of {}", out, decl);
    }
}

/// Whether `big` has every member of `small` (objects), element by element (arrays).
fn contains(big: &Value, small: &Value) -> bool {
    match (big, small) {
        (Value::Object(b), Value::Object(s)) => s
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|bv| contains(bv, v))),
        (Value::Array(b), Value::Array(s)) => {
            b.len() == s.len() && b.iter().zip(s).all(|(x, y)| contains(x, y))
        }
        (b, s) => b == s,
    }
}

#[test]
fn the_benchmarks_declaration_is_the_largest_legal_one() {
    let decl = crate::bench::largest_declaration();
    let actions: usize = decl["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["actions"].as_array().unwrap().len())
        .sum();
    assert_eq!(actions, MAX_ACTIONS);
    validate(parse(decl)).unwrap();
}

/// Sets one configuration value of the valid pipeline and returns the problem at its path, if any.
fn config_problem(stage: usize, key: &str, value: &str) -> Option<String> {
    let mut v = valid();
    v["stages"][stage]["actions"][0]["configuration"][key] = json!(value);
    let path = format!("stages[{stage}].actions[0].configuration.{key}");
    match validate(parse(v)) {
        Ok(_) => None,
        Err(p) => p
            .all()
            .iter()
            .find(|p| p.path == path)
            .map(|p| p.message.clone()),
    }
}

#[test]
fn repository_urls_are_https_ssh_scp_like_or_absolute_paths() {
    for good in [
        "https://git.example.com/team/app.git",
        "ssh://git@git.example.com:2222/team/app.git",
        "git@github.com:team/app.git",
        "/srv/git/app.git",
    ] {
        assert_eq!(config_problem(0, "RepositoryUrl", good), None, "{good}");
    }
    for bad in [
        "app.git",
        "http://git.example.com/app.git",
        "ftp://x/y",
        "git@:path",
        "relative/path",
        "/srv/../etc",
    ] {
        let m = config_problem(0, "RepositoryUrl", bad).unwrap_or_else(|| panic!("{bad}"));
        assert!(!m.contains(bad), "messages do not quote values: {m}");
    }
}

#[test]
fn a_deploy_to_a_group_names_one_label_and_a_codedeploy_configuration() {
    let with_group = |key: &str, value: &str| {
        let mut v = valid();
        let config = &mut v["stages"][3]["actions"][0]["configuration"];
        config["DeploymentGroup"] = json!("web");
        config[key] = json!(value);
        let path = format!("stages[3].actions[0].configuration.{key}");
        match validate(parse(v)) {
            Ok(_) => None,
            Err(p) => p
                .all()
                .iter()
                .find(|p| p.path == path)
                .map(|p| p.message.clone()),
        }
    };
    assert_eq!(config_problem(3, "DeploymentGroup", "Web"), None);
    for bad in ["web,eu", "bad label", "<b>x</b>", " "] {
        let m = config_problem(3, "DeploymentGroup", bad).unwrap_or_else(|| panic!("{bad}"));
        assert!(m.contains("one worker label"), "{m}");
        assert!(bad.trim().is_empty() || !m.contains(bad), "{m}");
    }
    for good in ["OneAtATime", "HalfAtATime", "CodeDeployDefault.AllAtOnce"] {
        assert_eq!(with_group("DeploymentConfig", good), None, "{good}");
    }
    assert!(
        with_group("DeploymentConfig", "Fast")
            .unwrap()
            .contains("OneAtATime")
    );
    assert_eq!(with_group("MinimumHealthyHosts", "75%"), None);
    assert_eq!(with_group("MinimumHealthyHosts", "2"), None);
    assert!(with_group("MinimumHealthyHosts", "100%").is_some());
    assert!(with_group("MinimumHealthyHosts", "some").is_some());
    assert_eq!(with_group("AutoRollback", "false"), None);
    assert!(with_group("AutoRollback", "no").is_some());
    // Without a group, the rollout's settings mean nothing and are refused.
    for (key, value) in [
        ("DeploymentConfig", "AllAtOnce"),
        ("MinimumHealthyHosts", "1"),
        ("AutoRollback", "true"),
    ] {
        assert!(
            config_problem(3, key, value)
                .unwrap()
                .contains("name the DeploymentGroup"),
            "{key}"
        );
    }
}

#[test]
fn directories_are_absolute_and_urls_are_http() {
    assert!(
        config_problem(3, "TargetDirectory", "srv/app")
            .unwrap()
            .contains("absolute")
    );
    assert!(config_problem(3, "TargetDirectory", "/srv/../etc").is_some());
    assert_eq!(config_problem(3, "TargetDirectory", "/srv/app-2"), None);
    assert!(
        config_problem(3, "KeepReleases", "many")
            .unwrap()
            .contains("0 to 100")
    );
    assert_eq!(config_problem(3, "KeepReleases", "5"), None);
    assert!(config_problem(1, "TimeoutInMinutes", "1").is_some());
    let mut v = valid();
    v["stages"][2]["actions"][0]["configuration"]["ExternalEntityLink"] =
        json!("javascript:alert(1)");
    assert!(
        message_of(v, "stages[2].actions[0].configuration.ExternalEntityLink").contains("http")
    );
    assert_eq!(
        config_problem(2, "ExternalEntityLink", "#{SourceVariables.CommitId}"),
        None,
        "a reference is checked once resolved"
    );
}

#[test]
fn an_inline_buildspec_must_be_a_buildspec() {
    let ok = "version: 0.2\nphases:\n  build:\n    commands:\n      - make\n";
    assert_eq!(config_problem(1, "BuildSpec", ok), None);
    assert_eq!(
        config_problem(
            1,
            "BuildSpec",
            "version: \"0.2\"\nphases: {build: {commands: [make]}}"
        ),
        None
    );
    assert!(
        config_problem(1, "BuildSpec", "phases: {build: {commands: [make]}}")
            .unwrap()
            .contains("version: 0.2")
    );
    assert!(
        config_problem(1, "BuildSpec", "version: 0.2")
            .unwrap()
            .contains("phases")
    );
    let flattened = "version: 0.2 phases: build: commands: - make";
    assert!(
        config_problem(1, "BuildSpec", flattened).is_some(),
        "a flattened buildspec is refused"
    );
    assert!(
        config_problem(1, "BuildSpec", "version: 0.2\nphases: [\n")
            .unwrap()
            .contains("line")
    );
    assert!(
        config_problem(
            1,
            "EnvironmentVariables",
            r#"[{"name": "A", "value": "1"}]"#
        )
        .is_none()
    );
    assert!(config_problem(1, "EnvironmentVariables", "A=1").is_some());
    assert!(
        config_problem(
            1,
            "EnvironmentVariables",
            r#"[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]"#
        )
        .unwrap()
        .contains("twice")
    );
}

#[test]
fn a_secret_is_never_quoted_nor_read_for_references() {
    let mut v = valid();
    v["stages"].as_array_mut().unwrap().push(json!({"name": "Notify", "actions": [{
        "name": "Hook",
        "actionTypeId": {"category": "Invoke", "owner": "Sluice", "provider": "Webhook", "version": "1"},
        "configuration": {"Url": "ftp://nope", "Secret": "#{hunter2.x}"}
    }]}));
    let err = validate(parse(v)).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(
        err.all()
            .iter()
            .any(|p| p.path == "stages[4].actions[0].configuration.Url")
    );
}
