//! Importing an AWS CodePipeline: each AWS action type mapped to the Sluice type that plays its
//! role (a CodeCommit, GitHub or connection source becomes a Git source, CodeBuild a Command
//! build, Lambda a Webhook call, CodeDeploy and the other deploys a Directory deploy), carrying
//! over what the AWS configuration says and naming, as a hint, what it cannot know (the URL a
//! Lambda function's work now lives at, the directory a CodeDeploy group installed into). Pure.
//!
//! The mapped declaration is not yet valid where a hint says something is missing; the console
//! shows the validation's problems with the hint for the same place beside each.

use std::collections::BTreeMap;

use serde_json::Value;

use super::wire::{ActionDeclaration, ActionTypeId, PipelineDeclaration};

/// What became of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// `stages[i].actions[j]`, as validation problems name it.
    pub path: String,
    pub action: String,
    /// The AWS type, `Category/Owner/Provider/Version`.
    pub from: String,
    /// The Sluice type's name in the console ("Git source"); `None` when Sluice has none.
    pub to: Option<&'static str>,
    /// Already a type Sluice runs (its own, or AWS's manual approval): nothing to map.
    pub unchanged: bool,
}

/// Something the user must check or supply, at a path of the mapped declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct Mapped {
    pub mappings: Vec<Mapping>,
    pub hints: Vec<Hint>,
}

impl Mapped {
    /// Whether any action would change (the console offers the mapping only then).
    pub fn changes_anything(&self) -> bool {
        self.mappings.iter().any(|m| !m.unchanged && m.to.is_some())
    }

    /// The hint for a validation problem at `path`: the one at the longest path that contains
    /// it (a hint on a property first, else the one on its action).
    pub fn hint_for(&self, path: &str) -> Option<&str> {
        self.hints
            .iter()
            .filter(|h| {
                path == h.path
                    || path.starts_with(&format!("{}.", h.path))
                    || path.starts_with(&format!("{}[", h.path))
            })
            .max_by_key(|h| h.path.len())
            .map(|h| h.message.as_str())
    }
}

fn id(a: &ActionDeclaration) -> String {
    let t = &a.action_type_id;
    format!("{}/{}/{}/{}", t.category, t.owner, t.provider, t.version)
}

fn sluice(category: &str, provider: &str) -> ActionTypeId {
    ActionTypeId {
        category: category.into(),
        owner: "Sluice".into(),
        provider: provider.into(),
        version: "1".into(),
    }
}

/// A string quoted for YAML (JSON's quoting is YAML's double-quoted style).
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The AWS action types Sluice maps, and what it maps them to, in place. Returns the Sluice type's
/// console name, or `None` (left as it is, with a hint) when Sluice has no counterpart.
fn map_action(
    a: &mut ActionDeclaration,
    path: &str,
    hints: &mut Vec<Hint>,
) -> Option<&'static str> {
    let old: BTreeMap<String, String> = a.configuration.clone().unwrap_or_default();
    let get = |key: &str| old.get(key).cloned().unwrap_or_default();
    let mut hint = |at: &str, message: String| {
        hints.push(Hint {
            path: if at.is_empty() {
                path.to_string()
            } else {
                format!("{path}.{at}")
            },
            message,
        })
    };
    let mut config = BTreeMap::new();
    let t = &a.action_type_id;
    let (category, provider) = match (t.category.as_str(), t.owner.as_str(), t.provider.as_str()) {
        ("Source", "AWS", "CodeCommit") => {
            let repo = get("RepositoryName");
            let region = a.region.clone().unwrap_or_else(|| "us-east-1".into());
            config.insert(
                "RepositoryUrl".into(),
                format!("https://git-codecommit.{region}.amazonaws.com/v1/repos/{repo}"),
            );
            config.insert("Branch".into(), get("BranchName"));
            hint(
                "configuration.RepositoryUrl",
                format!(
                    "was CodeCommit repository {repo}: check the clone URL, and give a ConnectionName for its credentials"
                ),
            );
            ("Source", "Git")
        }
        ("Source", "ThirdParty", "GitHub") => {
            config.insert(
                "RepositoryUrl".into(),
                format!("https://github.com/{}/{}.git", get("Owner"), get("Repo")),
            );
            config.insert("Branch".into(), get("Branch"));
            hint(
                "configuration.RepositoryUrl",
                "was a GitHub (OAuth) source: its token is not imported; a private repository needs a ConnectionName".into(),
            );
            ("Source", "Git")
        }
        ("Source", "AWS", "CodeStarSourceConnection") => {
            config.insert(
                "RepositoryUrl".into(),
                format!("https://github.com/{}.git", get("FullRepositoryId")),
            );
            config.insert("Branch".into(), get("BranchName"));
            hint(
                "configuration.RepositoryUrl",
                "was a connection source: the host is taken to be GitHub; change the URL for GitLab or Bitbucket, and give a ConnectionName for a private repository".into(),
            );
            ("Source", "Git")
        }
        ("Source", "AWS", "S3") => {
            config.insert("Bucket".into(), get("S3Bucket"));
            config.insert("ObjectKey".into(), get("S3ObjectKey"));
            hint(
                "",
                "was an S3 source: upload new versions of the object to Sluice to start the pipeline".into(),
            );
            ("Source", "Upload")
        }
        (category @ ("Build" | "Test"), "AWS", "CodeBuild") => {
            if let Some(primary) = old.get("PrimarySource") {
                config.insert("PrimarySource".into(), primary.clone());
            }
            if let Some(env) = old.get("EnvironmentVariables") {
                let plain: Vec<Value> = serde_json::from_str::<Vec<Value>>(env)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|v| {
                        v.get("type")
                            .and_then(Value::as_str)
                            .is_none_or(|t| t == "PLAINTEXT")
                    })
                    .map(|v| serde_json::json!({"name": v.get("name"), "value": v.get("value")}))
                    .collect();
                if !plain.is_empty() {
                    config.insert(
                        "EnvironmentVariables".into(),
                        Value::Array(plain).to_string(),
                    );
                }
                hint(
                    "configuration.EnvironmentVariables",
                    "plain-text variables came over; Parameter Store and Secrets Manager ones did not (put secrets in Secrets)".into(),
                );
            }
            hint(
                "",
                format!(
                    "was CodeBuild project {}: its settings are not part of the pipeline; the commands come from buildspec.yml in the input (or set BuildSpec)",
                    get("ProjectName")
                ),
            );
            (category, "Command")
        }
        ("Compute", "AWS", "Commands") => {
            let commands: Vec<String> = a
                .commands
                .take()
                .and_then(|c| serde_json::from_value(c).ok())
                .unwrap_or_default();
            let mut spec = String::from("version: 0.2\n");
            let exported: Vec<String> = a
                .output_variables
                .take()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            if !exported.is_empty() {
                spec.push_str("env:\n  exported-variables:\n");
                for name in &exported {
                    spec.push_str(&format!("    - {}\n", yaml_string(name)));
                }
            }
            spec.push_str("phases:\n  build:\n    commands:\n");
            for command in &commands {
                spec.push_str(&format!("      - {}\n", yaml_string(command)));
            }
            config.insert("BuildSpec".into(), spec);
            a.environment_variables = None;
            hint(
                "configuration.BuildSpec",
                "was a Commands action: its commands became this buildspec".into(),
            );
            ("Build", "Command")
        }
        ("Invoke", "AWS", "Lambda") => {
            config.insert("Url".into(), String::new());
            if let Some(p) = old.get("UserParameters") {
                config.insert("UserParameters".into(), p.clone());
            }
            hint(
                "configuration.Url",
                format!(
                    "was Lambda function {}: give the URL of an endpoint that does its work",
                    get("FunctionName")
                ),
            );
            ("Invoke", "Webhook")
        }
        (
            "Deploy",
            "AWS",
            provider @ ("CodeDeploy" | "ElasticBeanstalk" | "ECS" | "S3" | "CodeDeployToECS"),
        ) => {
            config.insert("TargetDirectory".into(), String::new());
            let what = match provider {
                "CodeDeploy" | "CodeDeployToECS" => format!(
                    "CodeDeploy application {} (group {})",
                    get("ApplicationName"),
                    get("DeploymentGroupName")
                ),
                "ElasticBeanstalk" => format!(
                    "Elastic Beanstalk environment {} of {}",
                    get("EnvironmentName"),
                    get("ApplicationName")
                ),
                "ECS" => format!(
                    "ECS service {} of cluster {}",
                    get("ServiceName"),
                    get("ClusterName")
                ),
                _ => format!("S3 bucket {}", get("BucketName")),
            };
            hint(
                "configuration.TargetDirectory",
                format!("was {what}: give the directory on the worker's host to deploy into"),
            );
            ("Deploy", "Directory")
        }
        // Types Sluice runs as they are.
        ("Approval", "AWS", "Manual") | (_, "Sluice", _) => {
            return super::action_types::find(&t.category, &t.owner, &t.provider, &t.version)
                .map(|t| t.title);
        }
        _ => {
            hint(
                "actionTypeId",
                format!(
                    "Sluice has no counterpart for {}; replace it (a Command build can run the tool's CLI) or remove it",
                    id(a)
                ),
            );
            return None;
        }
    };
    let title = super::action_types::find(category, "Sluice", provider, "1").map(|t| t.title);
    a.action_type_id = sluice(category, provider);
    a.configuration = Some(config);
    // AWS-only placement: Sluice runs everything where its workers are.
    a.region = None;
    a.role_arn = None;
    title
}

/// Maps every action of an AWS pipeline to its Sluice counterpart, in place.
pub fn map_aws(decl: &mut PipelineDeclaration) -> Mapped {
    let mut mapped = Mapped::default();
    for (si, stage) in decl.stages.iter_mut().enumerate() {
        for (ai, action) in stage.actions.iter_mut().enumerate() {
            let path = format!("stages[{si}].actions[{ai}]");
            let from = id(action);
            let to = map_action(action, &path, &mut mapped.hints);
            let unchanged = from.contains("/Sluice/") || from == "Approval/AWS/Manual/1";
            mapped.mappings.push(Mapping {
                path,
                action: action.name.clone(),
                from,
                to,
                unchanged,
            });
        }
    }
    mapped
}

/// A free name for an import whose name is taken: `name-2`, `name-3` …, the base shortened so
/// the result stays within 100 characters. `taken` answers for each candidate.
pub fn renamed(name: &str, taken: impl Fn(&str) -> bool) -> Option<String> {
    rename_candidates(name).find(|candidate| !taken(candidate))
}

/// The names [`renamed`] tries, in order.
pub fn rename_candidates(name: &str) -> impl Iterator<Item = String> + '_ {
    (2..=99).map(move |n| {
        let suffix = format!("-{n}");
        let base: String = name.chars().take(100 - suffix.len()).collect();
        format!("{base}{suffix}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn aws_pipeline() -> PipelineDeclaration {
        serde_json::from_value(json!({
            "name": "web",
            "roleArn": "arn:aws:iam::123456789012:role/cp",
            "artifactStore": {"type": "S3", "location": "bucket"},
            "stages": [
                {"name": "Source", "actions": [{"name": "Src",
                    "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "CodeStarSourceConnection", "version": "1"},
                    "configuration": {"ConnectionArn": "arn:aws:codeconnections:eu-west-1:1:connection/x", "FullRepositoryId": "acme/web", "BranchName": "main"},
                    "outputArtifacts": [{"name": "SourceArtifact"}]}]},
                {"name": "Build", "actions": [
                    {"name": "Compile",
                     "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
                     "configuration": {"ProjectName": "web-build", "EnvironmentVariables": "[{\"name\":\"MODE\",\"value\":\"prod\",\"type\":\"PLAINTEXT\"},{\"name\":\"TOKEN\",\"value\":\"/ssm/token\",\"type\":\"PARAMETER_STORE\"}]"},
                     "inputArtifacts": [{"name": "SourceArtifact"}], "outputArtifacts": [{"name": "BuildArtifact"}]},
                    {"name": "Lint",
                     "actionTypeId": {"category": "Compute", "owner": "AWS", "provider": "Commands", "version": "1"},
                     "commands": ["npm ci", "echo \"it's: done\""], "outputVariables": ["RESULT"],
                     "inputArtifacts": [{"name": "SourceArtifact"}]}
                ]},
                {"name": "Approve", "actions": [{"name": "Gate",
                    "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"}}]},
                {"name": "Deploy", "actions": [
                    {"name": "Ship",
                     "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeploy", "version": "1"},
                     "configuration": {"ApplicationName": "web", "DeploymentGroupName": "prod"},
                     "inputArtifacts": [{"name": "BuildArtifact"}]},
                    {"name": "Notify",
                     "actionTypeId": {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"},
                     "configuration": {"FunctionName": "notify", "UserParameters": "{\"to\": \"ops\"}"}, "runOrder": 2},
                    {"name": "Stack",
                     "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CloudFormation", "version": "1"},
                     "configuration": {"ActionMode": "CREATE_UPDATE", "StackName": "s"}, "runOrder": 3}
                ]}
            ]
        }))
        .unwrap()
    }

    fn problem_paths(decl: PipelineDeclaration) -> Vec<String> {
        match crate::pipeline::validate(decl) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.all().iter().map(|p| p.path.clone()).collect(),
        }
    }

    #[test]
    fn each_aws_action_becomes_its_sluice_counterpart() {
        let mut decl = aws_pipeline();
        let mapped = map_aws(&mut decl);
        let to: Vec<(&str, Option<&str>, bool)> = mapped
            .mappings
            .iter()
            .map(|m| (m.action.as_str(), m.to, m.unchanged))
            .collect();
        assert_eq!(
            to,
            [
                ("Src", Some("Git source"), false),
                ("Compile", Some("Command build"), false),
                ("Lint", Some("Command build"), false),
                ("Gate", Some("Manual approval"), true),
                ("Ship", Some("Directory deploy"), false),
                ("Notify", Some("Webhook call"), false),
                ("Stack", None, false),
            ]
        );
        assert!(mapped.changes_anything());
        let src = &decl.stages[0].actions[0];
        assert_eq!(src.action_type_id, sluice("Source", "Git"));
        let config = src.configuration.as_ref().unwrap();
        assert_eq!(config["RepositoryUrl"], "https://github.com/acme/web.git");
        assert_eq!(config["Branch"], "main");
        assert!(!config.contains_key("ConnectionArn"));
        let compile = decl.stages[1].actions[0].configuration.as_ref().unwrap();
        assert_eq!(
            compile["EnvironmentVariables"], r#"[{"name":"MODE","value":"prod"}]"#,
            "plain-text variables only"
        );
        let lint = &decl.stages[1].actions[1];
        assert!(lint.commands.is_none() && lint.output_variables.is_none());
        let spec = &lint.configuration.as_ref().unwrap()["BuildSpec"];
        assert!(
            crate::pipeline::check_format(super::super::action_types::Format::BuildSpec, spec)
                .is_ok(),
            "{spec}"
        );
        assert!(spec.contains(r#"- "echo \"it's: done\"""#), "{spec}");
        assert!(spec.contains("exported-variables:\n    - \"RESULT\""));
    }

    #[test]
    fn what_is_left_to_do_is_exactly_what_the_hints_point_at() {
        let mut decl = aws_pipeline();
        let mapped = map_aws(&mut decl);
        let problems = problem_paths(decl);
        assert!(!problems.is_empty());
        // Every remaining problem has a hint beside it.
        for path in &problems {
            assert!(
                mapped.hint_for(path).is_some(),
                "no hint for {path}: {problems:?}"
            );
        }
        assert!(
            mapped
                .hint_for("stages[3].actions[1].configuration.Url")
                .unwrap()
                .contains("Lambda function notify")
        );
        assert!(
            mapped
                .hint_for("stages[3].actions[2].actionTypeId")
                .unwrap()
                .contains("no counterpart")
        );
        // Supplying what the hints ask for leaves a valid pipeline.
        let mut decl = aws_pipeline();
        map_aws(&mut decl);
        let deploy = &mut decl.stages[3];
        deploy.actions.pop();
        let config = |a: &mut ActionDeclaration, key: &str, value: &str| {
            a.configuration
                .as_mut()
                .unwrap()
                .insert(key.into(), value.into());
        };
        config(&mut deploy.actions[0], "TargetDirectory", "/srv/web");
        config(
            &mut deploy.actions[1],
            "Url",
            "https://hooks.example.com/notify",
        );
        assert_eq!(problem_paths(decl), Vec::<String>::new());
    }

    #[test]
    fn a_sluice_pipeline_maps_to_itself() {
        let mut decl: PipelineDeclaration = serde_json::from_value(json!({
            "name": "p", "stages": [
                {"name": "Source", "actions": [{"name": "S", "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
                    "configuration": {"RepositoryUrl": "https://git.example.com/p.git", "Branch": "main"}, "outputArtifacts": [{"name": "A"}]}]},
                {"name": "Gate", "actions": [{"name": "G", "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"}}]}
            ]
        }))
        .unwrap();
        let before = decl.clone();
        let mapped = map_aws(&mut decl);
        assert!(!mapped.changes_anything());
        assert_eq!(
            serde_json::to_value(&decl).unwrap(),
            serde_json::to_value(&before).unwrap()
        );
    }

    #[test]
    fn a_taken_name_gets_the_first_free_number_within_100_characters() {
        assert_eq!(renamed("web", |n| n == "web-2").as_deref(), Some("web-3"));
        let long = "a".repeat(100);
        let free = renamed(&long, |_| false).unwrap();
        assert_eq!(free.chars().count(), 100);
        assert!(free.ends_with("-2"));
        assert_eq!(renamed("web", |_| true), None);
    }
}
