//! The built-in, read-only managed policies (the contract's "Managed policies" table).

use std::sync::LazyLock;

use super::policy::PolicyDocument;

/// A managed policy: a fixed name, a description and a document.
#[derive(Debug)]
pub struct ManagedPolicy {
    pub name: &'static str,
    pub description: &'static str,
    pub document: PolicyDocument,
}

/// The policy the first administrator gets at set-up.
pub const ADMINISTRATOR_ACCESS: &str = "AdministratorAccess";

const DEFINITIONS: &[(&str, &str, &str)] = &[
    (
        ADMINISTRATOR_ACCESS,
        "Full access to everything in Sluice.",
        r#"{
  "Version": "2012-10-17",
  "Statement": [
    { "Effect": "Allow", "Action": "*", "Resource": "*" }
  ]
}"#,
    ),
    (
        "AWSCodePipeline_FullAccess",
        "Full access to pipelines, executions, approvals and custom actions; sees connections (passing one to a pipeline needs codeconnections:PassConnection).",
        r#"{
  "Version": "2012-10-17",
  "Statement": [
    { "Effect": "Allow", "Action": "codepipeline:*", "Resource": "*" },
    {
      "Effect": "Allow",
      "Action": ["codeconnections:ListConnections", "codeconnections:GetConnection"],
      "Resource": "*"
    }
  ]
}"#,
    ),
    (
        "AWSCodePipeline_ReadOnlyAccess",
        "Read-only access to pipelines and their executions.",
        r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "codepipeline:GetPipeline",
        "codepipeline:GetPipelineState",
        "codepipeline:GetPipelineExecution",
        "codepipeline:ListPipelineExecutions",
        "codepipeline:ListActionExecutions",
        "codepipeline:ListActionTypes",
        "codepipeline:ListPipelines"
      ],
      "Resource": "*"
    }
  ]
}"#,
    ),
    (
        "AWSCodePipelineApproverAccess",
        "View pipelines and approve or reject manual approval actions.",
        r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "codepipeline:GetPipeline",
        "codepipeline:GetPipelineState",
        "codepipeline:GetPipelineExecution",
        "codepipeline:ListPipelineExecutions",
        "codepipeline:ListPipelines",
        "codepipeline:PutApprovalResult"
      ],
      "Resource": "*"
    }
  ]
}"#,
    ),
    (
        "AWSCodePipelineCustomActionAccess",
        "For job workers of custom actions: poll for jobs and report their results.",
        r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "codepipeline:AcknowledgeJob",
        "codepipeline:GetJobDetails",
        "codepipeline:PollForJobs",
        "codepipeline:PutJobFailureResult",
        "codepipeline:PutJobSuccessResult"
      ],
      "Resource": "*"
    }
  ]
}"#,
    ),
];

/// Every managed policy, in a fixed order.
pub fn all() -> &'static [ManagedPolicy] {
    static POLICIES: LazyLock<Vec<ManagedPolicy>> = LazyLock::new(|| {
        DEFINITIONS
            .iter()
            .map(|&(name, description, text)| ManagedPolicy {
                name,
                description,
                // The definitions are constants checked by the tests below.
                document: PolicyDocument::parse(text)
                    .unwrap_or_else(|e| panic!("managed policy {name} is invalid: {e}")),
            })
            .collect()
    });
    &POLICIES
}

/// The managed policy with this name (exact, as IAM's names are).
pub fn get(name: &str) -> Option<&'static ManagedPolicy> {
    all().iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_managed_policies_parse() {
        let names: Vec<_> = all().iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "AdministratorAccess",
                "AWSCodePipeline_FullAccess",
                "AWSCodePipeline_ReadOnlyAccess",
                "AWSCodePipelineApproverAccess",
                "AWSCodePipelineCustomActionAccess",
            ]
        );
        assert!(get("AdministratorAccess").is_some());
        assert!(get("administratoraccess").is_none());
    }
}
