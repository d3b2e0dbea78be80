//! The registry of built-in action types: identity, configuration properties, artifact bounds and
//! output variables. Validation, the console's forms and `ListActionTypes` all read it.

/// What a configuration property holds: how it is checked, shown and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line of text.
    Line,
    /// Text that may span lines (a textarea; its newlines are kept byte for byte).
    MultiLine,
    /// Stored encrypted, never returned (shown as `****`), never quoted in a message.
    Secret,
    /// An `http://` or `https://` URL.
    HttpUrl,
    /// A Git remote: `https://`, `ssh://`, `user@host:path`, or an absolute local path.
    RepositoryUrl,
    /// An absolute path on the worker's host.
    AbsolutePath,
    /// An inline buildspec: YAML with `version: 0.2` and `phases` (multi-line).
    BuildSpec,
    /// A JSON list of `{"name": …, "value": …}` objects (multi-line).
    EnvironmentVariables,
    /// A whole number in the range.
    Number { min: u32, max: u32 },
    /// A whole number in the range, never a `#{…}` reference (an approval rule: read when the
    /// approval is requested).
    Count { min: u32, max: u32 },
    /// `true` or `false`, never a reference (an approval rule).
    Flag,
    /// Group names separated by commas, never a reference (an approval rule).
    GroupNames,
    /// One worker label: the deployment group a deploy goes to.
    DeploymentGroup,
    /// `OneAtATime`, `HalfAtATime` or `AllAtOnce` (`CodeDeployDefault.` in front allowed).
    DeploymentConfig,
    /// A number of hosts (`2`) or a percentage of the group (`75%`).
    MinimumHealthyHosts,
}

/// One configuration property of an action type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Property {
    pub name: &'static str,
    pub required: bool,
    pub format: Format,
    /// The action's secrets are sent where this property says (a webhook's `Url`): a stored
    /// secret is kept only while this value stays the same.
    pub sends_secrets: bool,
    pub description: &'static str,
}

impl Property {
    pub fn secret(&self) -> bool {
        self.format == Format::Secret
    }

    /// Shown in a textarea rather than a one-line input.
    pub fn multi_line(&self) -> bool {
        matches!(
            self.format,
            Format::MultiLine | Format::BuildSpec | Format::EnvironmentVariables
        )
    }

    const fn of(self, format: Format) -> Self {
        Property { format, ..self }
    }

    const fn sending_secrets(self) -> Self {
        Property {
            sends_secrets: true,
            ..self
        }
    }
}

/// What output variables an action type produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputVariables {
    /// Exactly these names.
    Fixed(&'static [&'static str]),
    /// Whatever the action exports at run time (a buildspec's exported variables, a webhook's reply).
    Dynamic,
}

/// A built-in action type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionType {
    pub category: &'static str,
    pub owner: &'static str,
    pub provider: &'static str,
    pub version: &'static str,
    pub properties: &'static [Property],
    /// Input artifacts allowed (min, max).
    pub inputs: (usize, usize),
    /// Output artifacts allowed (min, max).
    pub outputs: (usize, usize),
    pub output_variables: OutputVariables,
    /// What the type does, for the console.
    pub summary: &'static str,
    /// The type's name in the console's pickers ("Git source", "Command build").
    pub title: &'static str,
}

impl ActionType {
    /// `Category/Owner/Provider/Version`.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.category, self.owner, self.provider, self.version
        )
    }

    /// Whether a stage may hold an action of this type: source actions, and only they, go in
    /// the first stage (CodePipeline's rule).
    pub fn fits_stage(&self, first: bool) -> bool {
        (self.category == "Source") == first
    }

    pub fn property(&self, name: &str) -> Option<&'static Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// Whether the type produces the output variable `name`.
    pub fn produces_variable(&self, name: &str) -> bool {
        match self.output_variables {
            OutputVariables::Fixed(names) => names.contains(&name),
            OutputVariables::Dynamic => true,
        }
    }
}

const fn req(name: &'static str, description: &'static str) -> Property {
    Property {
        name,
        required: true,
        format: Format::Line,
        sends_secrets: false,
        description,
    }
}

const fn opt(name: &'static str, description: &'static str) -> Property {
    Property {
        required: false,
        ..req(name, description)
    }
}

const COMMAND_PROPERTIES: &[Property] = &[
    // The buildspec decides what its commands do with the action's Secrets: whoever changes it
    // must type the secrets again.
    opt(
        "BuildSpec",
        "An inline buildspec (YAML); overrides BuildSpecPath.",
    )
    .of(Format::BuildSpec)
    .sending_secrets(),
    opt(
        "BuildSpecPath",
        "Path of the buildspec in the primary input artifact (default buildspec.yml).",
    )
    .sending_secrets(),
    opt(
        "EnvironmentVariables",
        "A JSON list of {\"name\", \"value\"} objects.",
    )
    .of(Format::EnvironmentVariables),
    opt(
        "PrimarySource",
        "The input artifact the commands run in, when there are several.",
    ),
    opt("TimeoutInMinutes", "How long the commands may run (5-480).")
        .of(Format::Number { min: 5, max: 480 }),
    opt(
        "Secrets",
        "A JSON object of secret names to values, for the buildspec's env.secrets; stored encrypted, masked in logs.",
    )
    .of(Format::Secret),
];

/// Every built-in action type.
pub const BUILT_IN: &[ActionType] = &[
    ActionType {
        category: "Source",
        owner: "Sluice",
        provider: "Git",
        version: "1",
        properties: &[
            req(
                "RepositoryUrl",
                "The repository to clone (https, ssh, git@host:path or an absolute local path).",
            )
            .of(Format::RepositoryUrl),
            req("Branch", "The branch to build."),
            opt("ConnectionName", "Stored credentials to clone with."),
            opt(
                "PollForSourceChanges",
                "Start the pipeline when the branch moves, looking every minute (true or false; default true for V1 pipelines, false for V2).",
            )
            .of(Format::Flag),
        ],
        inputs: (0, 0),
        outputs: (1, 1),
        output_variables: OutputVariables::Fixed(&[
            "CommitId",
            "CommitMessage",
            "BranchName",
            "AuthorName",
            "AuthorEmail",
            "AuthorDate",
            "RepositoryUrl",
        ]),
        summary: "Checks out a branch of a Git repository (CodeCommit's and GitHub's role).",
        title: "Git source",
    },
    ActionType {
        category: "Source",
        owner: "Sluice",
        provider: "Upload",
        version: "1",
        properties: &[
            req("Bucket", "The upload bucket."),
            req("ObjectKey", "The object whose versions start the pipeline."),
        ],
        inputs: (0, 0),
        outputs: (1, 1),
        output_variables: OutputVariables::Fixed(&["VersionId", "ETag"]),
        summary: "A versioned uploaded file (the S3 source's role).",
        title: "Upload source",
    },
    ActionType {
        category: "Build",
        owner: "Sluice",
        provider: "Command",
        version: "1",
        properties: COMMAND_PROPERTIES,
        inputs: (1, 5),
        outputs: (0, 5),
        output_variables: OutputVariables::Dynamic,
        summary: "Runs a buildspec's commands (CodeBuild's role).",
        title: "Command build",
    },
    ActionType {
        category: "Test",
        owner: "Sluice",
        provider: "Command",
        version: "1",
        properties: COMMAND_PROPERTIES,
        inputs: (1, 5),
        outputs: (0, 5),
        output_variables: OutputVariables::Dynamic,
        summary: "Runs a buildspec's test commands (CodeBuild's role).",
        title: "Command test",
    },
    ActionType {
        category: "Deploy",
        owner: "Sluice",
        provider: "Directory",
        version: "1",
        properties: &[
            req(
                "TargetDirectory",
                "Where to deploy, on the worker's host (an absolute path).",
            )
            .of(Format::AbsolutePath),
            opt(
                "KeepReleases",
                "How many earlier releases to keep besides the current one (0-100, default 5).",
            )
                .of(Format::Number { min: 0, max: 100 }),
            opt(
                "DeploymentGroup",
                "Deploy on every live worker started with this label (sluice worker --labels web); without it, on whichever worker runs the action.",
            )
            .of(Format::DeploymentGroup),
            opt(
                "DeploymentConfig",
                "How many hosts of the group at a time: OneAtATime (default), HalfAtATime or AllAtOnce.",
            )
            .of(Format::DeploymentConfig),
            opt(
                "MinimumHealthyHosts",
                "Hosts of the group never deployed to at the same time: a number (2) or a percentage (75%); overrides DeploymentConfig's.",
            )
            .of(Format::MinimumHealthyHosts),
            opt(
                "AutoRollback",
                "When a host fails, switch every host that took the new release back (true, the default, or false).",
            )
            .of(Format::Flag),
        ],
        inputs: (1, 1),
        outputs: (0, 0),
        output_variables: OutputVariables::Fixed(&[]),
        summary: "Deploys an artifact as a release in a directory of the worker's host, running its appspec.yml hooks around the switch of the current link (CodeDeploy's and Elastic Beanstalk's role).",
        title: "Directory deploy",
    },
    ActionType {
        category: "Invoke",
        owner: "Sluice",
        provider: "Webhook",
        version: "1",
        properties: &[
            req("Url", "The endpoint to call (http or https).")
                .of(Format::HttpUrl)
                .sending_secrets(),
            opt(
                "Secret",
                "Signs the request (HMAC); stored encrypted, never shown.",
            )
            .of(Format::Secret),
            opt("UserParameters", "Passed to the endpoint as is.").of(Format::MultiLine),
        ],
        inputs: (0, 5),
        // The endpoint answers with variables; it has nowhere to put artifacts.
        outputs: (0, 0),
        output_variables: OutputVariables::Dynamic,
        summary: "Calls an HTTP endpoint and waits for its answer (Lambda's role).",
        title: "Webhook call",
    },
    ActionType {
        category: "Approval",
        owner: "AWS",
        provider: "Manual",
        version: "1",
        properties: &[
            opt("CustomData", "Text shown to approvers.").of(Format::MultiLine),
            opt(
                "ExternalEntityLink",
                "A link for approvers to review (http or https).",
            )
            .of(Format::HttpUrl),
            opt("NotificationArn", "Where to announce the approval request."),
            opt(
                "RequiredApprovals",
                "Sluice: how many different people must approve (default 1); one rejection rejects.",
            )
            .of(Format::Count { min: 1, max: 20 }),
            opt(
                "ApproverGroups",
                "Sluice: only members of these groups (comma-separated) count.",
            )
            .of(Format::GroupNames),
            opt(
                "ForbidSelfApproval",
                "Sluice: true keeps whoever started the execution or wrote its revision from approving it.",
            )
            .of(Format::Flag),
            opt(
                "RequireComment",
                "Sluice: true refuses an answer without a comment.",
            )
            .of(Format::Flag),
        ],
        inputs: (0, 0),
        outputs: (0, 0),
        output_variables: OutputVariables::Fixed(&[]),
        summary: "Waits for a person to approve or reject (exactly CodePipeline's).",
        title: "Manual approval",
    },
];

/// The built-in type with this identity.
pub fn find(
    category: &str,
    owner: &str,
    provider: &str,
    version: &str,
) -> Option<&'static ActionType> {
    BUILT_IN.iter().find(|t| {
        t.category == category && t.owner == owner && t.provider == provider && t.version == version
    })
}

/// For an AWS action type Sluice cannot run, the Sluice type that plays its part.
pub fn sluice_equivalent(category: &str, owner: &str, provider: &str) -> Option<&'static str> {
    Some(match (category, owner, provider) {
        ("Source", "AWS", "CodeCommit" | "CodeStarSourceConnection")
        | ("Source", "ThirdParty", "GitHub") => "Source/Sluice/Git/1",
        ("Source", "AWS", "S3" | "ECR") => "Source/Sluice/Upload/1",
        ("Build", "AWS", "CodeBuild") | ("Build", "Custom", _) => "Build/Sluice/Command/1",
        ("Test", "AWS", "CodeBuild") | ("Test", "Custom", _) => "Test/Sluice/Command/1",
        ("Deploy", "AWS", _) => "Deploy/Sluice/Directory/1",
        ("Invoke", "AWS", _) => "Invoke/Sluice/Webhook/1",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_unique_and_findable() {
        let mut ids: Vec<String> = BUILT_IN.iter().map(ActionType::id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), BUILT_IN.len());
        for t in BUILT_IN {
            assert_eq!(find(t.category, t.owner, t.provider, t.version), Some(t));
        }
        assert!(find("Build", "AWS", "CodeBuild", "1").is_none());
    }

    #[test]
    fn aws_types_point_at_their_sluice_counterparts() {
        assert_eq!(
            sluice_equivalent("Build", "AWS", "CodeBuild"),
            Some("Build/Sluice/Command/1")
        );
        assert_eq!(
            sluice_equivalent("Source", "ThirdParty", "GitHub"),
            Some("Source/Sluice/Git/1")
        );
        assert_eq!(
            sluice_equivalent("Invoke", "AWS", "Lambda"),
            Some("Invoke/Sluice/Webhook/1")
        );
        assert_eq!(sluice_equivalent("Approval", "AWS", "Whatever"), None);
    }

    #[test]
    fn only_the_webhook_secret_and_build_secrets_are_secret() {
        let secrets: Vec<String> = BUILT_IN
            .iter()
            .flat_map(|t| {
                t.properties
                    .iter()
                    .filter(|p| p.secret())
                    .map(move |p| format!("{}:{}", t.id(), p.name))
            })
            .collect();
        assert_eq!(
            secrets,
            [
                "Build/Sluice/Command/1:Secrets",
                "Test/Sluice/Command/1:Secrets",
                "Invoke/Sluice/Webhook/1:Secret"
            ]
        );
    }

    #[test]
    fn every_type_with_a_secret_says_where_it_is_sent() {
        for t in BUILT_IN {
            if t.properties.iter().any(Property::secret) {
                assert!(t.properties.iter().any(|p| p.sends_secrets), "{}", t.id());
            }
        }
    }

    #[test]
    fn the_multi_line_properties_are_the_ones_people_write_on_several_lines() {
        let mut multi: Vec<&str> = BUILT_IN
            .iter()
            .flat_map(|t| {
                t.properties
                    .iter()
                    .filter(|p| p.multi_line())
                    .map(|p| p.name)
            })
            .collect();
        multi.sort();
        multi.dedup();
        assert_eq!(
            multi,
            [
                "BuildSpec",
                "CustomData",
                "EnvironmentVariables",
                "UserParameters"
            ]
        );
    }
}
