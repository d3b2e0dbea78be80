//! Decision tables and properties of `authorize`.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;

fn doc(text: &str) -> Arc<PolicyDocument> {
    Arc::new(PolicyDocument::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}")))
}

fn named(name: &str, text: &str) -> NamedPolicy {
    NamedPolicy {
        name: name.to_string(),
        document: doc(text),
    }
}

fn managed(name: &str) -> NamedPolicy {
    let policy = managed::get(name).expect("managed policy");
    NamedPolicy {
        name: policy.name.to_string(),
        document: Arc::new(policy.document.clone()),
    }
}

fn user(name: &str, policies: Vec<NamedPolicy>) -> Principal {
    Principal::user(name, Arc::new(PolicySet::new(policies)))
}

fn allowed(p: &Principal, action: Action, resource: &Resource) -> bool {
    authorize(p, action, resource).is_allowed()
}

/// The AWS approver example: approve one action, see the pipeline, nothing else.
const APPROVER: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    { "Sid": "Approve", "Effect": "Allow", "Action": "codepipeline:PutApprovalResult",
      "Resource": "arn:aws:codepipeline:us-east-2:80398EXAMPLE:MyPipeline/MyApprovalStage/MyApprovalAction" },
    { "Sid": "See", "Effect": "Allow",
      "Action": ["codepipeline:ListPipelines", "codepipeline:GetPipeline", "codepipeline:GetPipelineState"],
      "Resource": "*" }
  ]
}"#;

#[test]
fn the_aws_approver_example() {
    let alice = user("alice", vec![named("Approver", APPROVER)]);
    let gate = Resource::pipeline_action("MyPipeline", "MyApprovalStage", "MyApprovalAction");
    let sibling = Resource::pipeline_action("MyPipeline", "MyApprovalStage", "OtherApproval");
    let stage = Resource::stage("MyPipeline", "MyApprovalStage");
    let other_pipeline = Resource::pipeline_action("Other", "MyApprovalStage", "MyApprovalAction");

    let table = [
        (Action::PutApprovalResult, &gate, true),
        (Action::PutApprovalResult, &sibling, false),
        (Action::PutApprovalResult, &stage, false),
        (Action::PutApprovalResult, &other_pipeline, false),
        (Action::RetryStageExecution, &stage, false),
        (Action::GetPipeline, &Resource::pipeline("MyPipeline"), true),
        (Action::ListPipelines, &Resource::All, true),
        (
            Action::DeletePipeline,
            &Resource::pipeline("MyPipeline"),
            false,
        ),
        (Action::CreateUser, &Resource::user("mallory"), false),
    ];
    for (action, resource, expected) in table {
        assert_eq!(
            allowed(&alice, action, resource),
            expected,
            "{action} on {resource}"
        );
    }
}

#[test]
fn denials_say_why() {
    let alice = user("alice", vec![named("Approver", APPROVER)]);
    let Decision::Denied(denied) = authorize(
        &alice,
        Action::DeletePipeline,
        &Resource::pipeline("web-app"),
    ) else {
        panic!("must be denied")
    };
    assert_eq!(denied.reason, DenyReason::NoAllow);
    assert_eq!(
        denied.api_message(),
        "User: arn:sluice:iam:::user/alice is not authorized to perform: codepipeline:DeletePipeline on resource: arn:sluice:codepipeline:::web-app"
    );
    assert_eq!(
        denied.console_message(),
        "You are not allowed to perform codepipeline:DeletePipeline on arn:sluice:codepipeline:::web-app"
    );

    let bob = user(
        "bob",
        vec![
            managed("AWSCodePipeline_FullAccess"),
            named(
                "NoDeletes",
                r#"{"Statement":[{"Sid":"KeepProd","Effect":"Deny","Action":"codepipeline:Delete*","Resource":"arn:sluice:codepipeline:::prod-*"}]}"#,
            ),
        ],
    );
    let Decision::Denied(denied) = authorize(
        &bob,
        Action::DeletePipeline,
        &Resource::pipeline("prod-web"),
    ) else {
        panic!("must be denied")
    };
    match &denied.reason {
        DenyReason::ExplicitDeny(m) => {
            assert_eq!(m.policy_name, "NoDeletes");
            assert_eq!(m.sid.as_deref(), Some("KeepProd"));
            assert_eq!(m.statement_index, 0);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(allowed(
        &bob,
        Action::DeletePipeline,
        &Resource::pipeline("staging-web")
    ));
}

#[test]
fn managed_policies_grant_what_their_table_says() {
    let pipeline = Resource::pipeline("web-app");
    let gate = Resource::pipeline_action("web-app", "Prod", "Gate");
    let admin = user("root", vec![managed("AdministratorAccess")]);
    let full = user("dev", vec![managed("AWSCodePipeline_FullAccess")]);
    let read = user("viewer", vec![managed("AWSCodePipeline_ReadOnlyAccess")]);
    let approver = user("approver", vec![managed("AWSCodePipelineApproverAccess")]);
    let worker = user(
        "jenkins",
        vec![managed("AWSCodePipelineCustomActionAccess")],
    );

    for &action in Action::ALL {
        assert!(allowed(&admin, action, &Resource::All), "admin: {action}");
    }
    assert!(allowed(&full, Action::DeletePipeline, &pipeline));
    assert!(!allowed(&full, Action::CreateUser, &Resource::user("x")));
    assert!(!allowed(&full, Action::LookupAuditEvents, &Resource::All));

    assert!(allowed(&read, Action::GetPipeline, &pipeline));
    assert!(allowed(&read, Action::ListPipelines, &Resource::All));
    assert!(allowed(&read, Action::ListActionExecutions, &pipeline));
    assert!(!allowed(&read, Action::StartPipelineExecution, &pipeline));
    assert!(!allowed(&read, Action::PutApprovalResult, &gate));

    assert!(allowed(&approver, Action::PutApprovalResult, &gate));
    assert!(allowed(&approver, Action::GetPipelineState, &pipeline));
    assert!(!allowed(&approver, Action::ListActionExecutions, &pipeline));
    assert!(!allowed(&approver, Action::UpdatePipeline, &pipeline));

    let jobs = Resource::action_type("Custom", "Build", "Jenkins", "1");
    assert!(allowed(&worker, Action::PollForJobs, &jobs));
    assert!(allowed(
        &worker,
        Action::PutJobSuccessResult,
        &Resource::All
    ));
    assert!(!allowed(&worker, Action::GetPipeline, &pipeline));
}

#[test]
fn no_policies_means_no_access() {
    let nobody = user("nobody", vec![]);
    for &action in Action::ALL {
        if !action.is_self_service() {
            assert!(!allowed(&nobody, action, &Resource::All), "{action}");
        }
    }
}

#[test]
fn not_action_and_not_resource() {
    let p = user(
        "p",
        vec![named(
            "AllButIam",
            r#"{"Statement":[
                {"Effect":"Allow","NotAction":"iam:*","Resource":"*"},
                {"Effect":"Allow","Action":"codepipeline:DeletePipeline","NotResource":"arn:sluice:codepipeline:::prod-*"}
            ]}"#,
        )],
    );
    assert!(allowed(&p, Action::LookupAuditEvents, &Resource::All));
    assert!(allowed(&p, Action::GetPipeline, &Resource::pipeline("x")));
    assert!(!allowed(&p, Action::CreateUser, &Resource::user("x")));

    let q = user(
        "q",
        vec![named(
            "DeleteNonProd",
            r#"{"Statement":[{"Effect":"Allow","Action":"codepipeline:DeletePipeline","NotResource":"arn:sluice:codepipeline:::prod-*"}]}"#,
        )],
    );
    assert!(allowed(
        &q,
        Action::DeletePipeline,
        &Resource::pipeline("dev-web")
    ));
    assert!(!allowed(
        &q,
        Action::DeletePipeline,
        &Resource::pipeline("prod-web")
    ));
}

#[test]
fn groups_are_just_more_attached_policies() {
    // A principal's set is its own policies plus its groups'; an explicit deny from a group wins.
    let p = user(
        "carol",
        vec![
            managed("AWSCodePipeline_FullAccess"),
            named(
                "group:Contractors/NoProd",
                r#"{"Statement":[{"Effect":"Deny","Action":"codepipeline:*","Resource":"arn:sluice:codepipeline:::prod*"}]}"#,
            ),
        ],
    );
    assert!(!allowed(
        &p,
        Action::StartPipelineExecution,
        &Resource::pipeline("prod")
    ));
    assert!(allowed(
        &p,
        Action::StartPipelineExecution,
        &Resource::pipeline("dev")
    ));
}

#[test]
fn self_service_on_ones_own_user_unless_explicitly_denied() {
    let dave = user("dave", vec![managed("AWSCodePipeline_ReadOnlyAccess")]);
    for action in [
        Action::ChangePassword,
        Action::ListSessions,
        Action::DeleteSession,
        Action::CreateAccessKey,
        Action::ListAccessKeys,
        Action::DeleteAccessKey,
    ] {
        assert!(
            allowed(&dave, action, &Resource::user("dave")),
            "{action} on self"
        );
        assert!(
            !allowed(&dave, action, &Resource::user("erin")),
            "{action} on another"
        );
    }
    assert!(
        !allowed(&dave, Action::ResetPassword, &Resource::user("dave")),
        "not self-service"
    );
    assert!(
        !allowed(&dave, Action::AttachUserPolicy, &Resource::user("dave")),
        "no self-escalation"
    );

    let locked = user(
        "frank",
        vec![named(
            "NoTokens",
            r#"{"Statement":[{"Effect":"Deny","Action":"iam:CreateAccessKey","Resource":"arn:sluice:iam:::user/frank"}]}"#,
        )],
    );
    assert!(!allowed(
        &locked,
        Action::CreateAccessKey,
        &Resource::user("frank")
    ));
    assert!(allowed(
        &locked,
        Action::ChangePassword,
        &Resource::user("frank")
    ));
}

#[test]
fn a_narrowed_token_can_do_only_what_both_allow() {
    let full = Arc::new(PolicySet::new(vec![managed("AWSCodePipeline_FullAccess")]));
    let narrowing = Arc::new(PolicySet::new(vec![named(
        "token",
        r#"{"Statement":[{"Effect":"Allow","Action":["codepipeline:PollForJobs","codepipeline:PutJob*"],"Resource":"*"}]}"#,
    )]));
    let token = Principal::narrowed("jenkins", full, narrowing);
    let jobs = Resource::action_type("Custom", "Build", "Jenkins", "1");
    assert!(allowed(&token, Action::PollForJobs, &jobs));
    assert!(allowed(&token, Action::PutJobFailureResult, &Resource::All));
    let Decision::Denied(d) = authorize(&token, Action::DeletePipeline, &Resource::pipeline("x"))
    else {
        panic!("narrowing must refuse what the token policy does not allow");
    };
    assert_eq!(d.reason, DenyReason::TokenNoAllow);
    // Narrowing never widens: the token policy allows nothing the user lacks.
    let broad = Arc::new(PolicySet::new(vec![managed("AdministratorAccess")]));
    let weak_user = Principal::narrowed(
        "viewer",
        Arc::new(PolicySet::new(vec![managed(
            "AWSCodePipeline_ReadOnlyAccess",
        )])),
        broad,
    );
    assert!(!allowed(
        &weak_user,
        Action::DeletePipeline,
        &Resource::pipeline("x")
    ));
    // And a narrowed token gets no self-service grant.
    assert!(!allowed(
        &token,
        Action::CreateAccessKey,
        &Resource::user("jenkins")
    ));
}

#[test]
fn actions_match_case_insensitively_and_resources_case_sensitively() {
    let p = user(
        "p",
        vec![named(
            "mixed",
            r#"{"Statement":[{"Effect":"Allow","Action":"CODEPIPELINE:getpipeline","Resource":"arn:sluice:codepipeline:::Web"}]}"#,
        )],
    );
    assert!(allowed(&p, Action::GetPipeline, &Resource::pipeline("Web")));
    assert!(!allowed(
        &p,
        Action::GetPipeline,
        &Resource::pipeline("web")
    ));
}

#[test]
fn the_simulator_lists_every_matching_statement_in_order() {
    let set = PolicySet::new(vec![
        managed("AWSCodePipeline_FullAccess"),
        named(
            "Extra",
            r#"{"Statement":[
                {"Sid":"One","Effect":"Allow","Action":"codepipeline:GetPipeline","Resource":"*"},
                {"Sid":"Two","Effect":"Deny","Action":"codepipeline:Get*","Resource":"arn:sluice:codepipeline:::secret"}
            ]}"#,
        ),
    ]);
    let matched = set.matching_statements(Action::GetPipeline, &Resource::pipeline("secret"));
    let names: Vec<_> = matched
        .iter()
        .map(|m| (m.policy_name.as_str(), m.sid.as_deref(), m.effect))
        .collect();
    assert_eq!(
        names,
        [
            ("AWSCodePipeline_FullAccess", None, Effect::Allow),
            ("Extra", Some("One"), Effect::Allow),
            ("Extra", Some("Two"), Effect::Deny),
        ]
    );
    assert!(matches!(
        set.evaluate(Action::GetPipeline, &Resource::pipeline("secret")),
        Evaluation::ExplicitDeny(ref m) if m.sid.as_deref() == Some("Two")
    ));
}

#[test]
fn the_readme_examples_mean_what_the_readme_says() {
    let readme = include_str!("../../README.md");
    let docs: Vec<&str> = readme
        .split("```json\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap())
        .collect();
    assert_eq!(docs.len(), 2, "the approver and the read-only team");
    let approver = user("ann", vec![named("Approver", docs[0])]);
    assert!(allowed(
        &approver,
        Action::PutApprovalResult,
        &Resource::pipeline_action("web-app", "Prod", "ReleaseGate")
    ));
    assert!(!allowed(
        &approver,
        Action::PutApprovalResult,
        &Resource::pipeline_action("web-app", "Prod", "Other")
    ));
    assert!(allowed(
        &approver,
        Action::GetPipelineState,
        &Resource::pipeline("web-app")
    ));
    assert!(!allowed(
        &approver,
        Action::StartPipelineExecution,
        &Resource::pipeline("web-app")
    ));

    let team = user("tim", vec![named("Team", docs[1])]);
    assert!(allowed(&team, Action::ListPipelines, &Resource::All));
    assert!(allowed(
        &team,
        Action::GetPipeline,
        &Resource::pipeline("payments-api")
    ));
    assert!(!allowed(
        &team,
        Action::GetPipeline,
        &Resource::pipeline("payments-prod")
    ));
    assert!(!allowed(
        &team,
        Action::GetPipeline,
        &Resource::pipeline("search-api")
    ));
    assert!(!allowed(
        &team,
        Action::StartPipelineExecution,
        &Resource::pipeline("payments-api")
    ));
}

// ---- Properties -------------------------------------------------------------------------------

const ACTION_PATTERNS: &[&str] = &[
    "*",
    "codepipeline:*",
    "codepipeline:Get*",
    "codepipeline:GetPipeline",
    "codepipeline:PutApprovalResult",
    "codepipeline:?etPipeline",
    "codepipeline:List*",
    "iam:*",
    "iam:CreateUser",
    "iam:ChangePassword",
    "sluice:LookupAuditEvents",
];

const RESOURCE_PATTERNS: &[&str] = &[
    "*",
    "arn:sluice:codepipeline:::*",
    "arn:sluice:codepipeline:::web",
    "arn:sluice:codepipeline:::web/*",
    "arn:aws:codepipeline:us-east-1:111122223333:web/Prod/Gate",
    "arn:sluice:codepipeline:::api*",
    "arn:sluice:iam:::user/*",
    "arn:sluice:iam:::user/alice",
];

fn resources() -> Vec<Resource> {
    vec![
        Resource::All,
        Resource::pipeline("web"),
        Resource::pipeline("api"),
        Resource::stage("web", "Prod"),
        Resource::pipeline_action("web", "Prod", "Gate"),
        Resource::pipeline_action("web", "Prod", "Other"),
        Resource::user("alice"),
        Resource::user("bob"),
        Resource::group("ops"),
    ]
}

#[derive(Debug, Clone)]
struct ArbStatement {
    deny: bool,
    not_action: bool,
    actions: Vec<usize>,
    not_resource: bool,
    resources: Vec<usize>,
}

impl ArbStatement {
    fn json(&self) -> String {
        let list = |items: Vec<&str>| {
            items
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            r#"{{"Effect":"{}","{}":[{}],"{}":[{}]}}"#,
            if self.deny { "Deny" } else { "Allow" },
            if self.not_action {
                "NotAction"
            } else {
                "Action"
            },
            list(self.actions.iter().map(|&i| ACTION_PATTERNS[i]).collect()),
            if self.not_resource {
                "NotResource"
            } else {
                "Resource"
            },
            list(
                self.resources
                    .iter()
                    .map(|&i| RESOURCE_PATTERNS[i])
                    .collect()
            ),
        )
    }
}

fn arb_statement() -> impl Strategy<Value = ArbStatement> {
    (
        any::<bool>(),
        prop::bool::weighted(0.15),
        prop::collection::vec(0..ACTION_PATTERNS.len(), 1..4),
        prop::bool::weighted(0.15),
        prop::collection::vec(0..RESOURCE_PATTERNS.len(), 1..3),
    )
        .prop_map(
            |(deny, not_action, actions, not_resource, resources)| ArbStatement {
                deny,
                not_action,
                actions,
                not_resource,
                resources,
            },
        )
}

fn arb_policies() -> impl Strategy<Value = Vec<Vec<ArbStatement>>> {
    prop::collection::vec(prop::collection::vec(arb_statement(), 1..5), 0..5)
}

fn policy_set(policies: &[Vec<ArbStatement>]) -> PolicySet {
    PolicySet::new(
        policies
            .iter()
            .enumerate()
            .map(|(i, statements)| {
                let body = statements
                    .iter()
                    .map(ArbStatement::json)
                    .collect::<Vec<_>>()
                    .join(",");
                named(
                    &format!("p{i}"),
                    &format!(r#"{{"Version":"2012-10-17","Statement":[{body}]}}"#),
                )
            })
            .collect(),
    )
}

/// The decision by brute force over every statement, straight from the contract's rules.
fn reference_decision(set: &PolicySet, action: Action, resource: &Resource) -> bool {
    let statements: Vec<&Statement> = set
        .policies()
        .iter()
        .flat_map(|p| p.document.statements())
        .collect();
    let matching: Vec<&&Statement> = statements
        .iter()
        .filter(|s| s.matches(action, resource))
        .collect();
    !matching.iter().any(|s| s.effect() == Effect::Deny)
        && matching.iter().any(|s| s.effect() == Effect::Allow)
}

fn decide(set: PolicySet, action: Action, resource: &Resource) -> bool {
    // A user name no resource above names, so self-service never applies.
    authorize(&Principal::user("zed", Arc::new(set)), action, resource).is_allowed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_index_agrees_with_brute_force(policies in arb_policies()) {
        let set = Arc::new(policy_set(&policies));
        for &action in Action::ALL {
            for resource in resources() {
                let fast = authorize(&Principal::user("zed", set.clone()), action, &resource).is_allowed();
                prop_assert_eq!(fast, reference_decision(&set, action, &resource), "{} on {}", action, resource);
            }
        }
    }

    #[test]
    fn the_answer_alone_is_the_decisions_answer(policies in arb_policies(), token in arb_policies()) {
        let set = Arc::new(policy_set(&policies));
        let token = Arc::new(policy_set(&token));
        // "alice" is a resource below, so self-service grants are asked too.
        let principals = [
            Principal::user("alice", set.clone()),
            Principal::narrowed("alice", set.clone(), token),
            Principal::unreadable("alice", "broken"),
            Principal::system("engine"),
        ];
        for principal in &principals {
            for &action in Action::ALL {
                for resource in resources() {
                    prop_assert_eq!(
                        is_allowed(principal, action, &resource),
                        authorize(principal, action, &resource).is_allowed(),
                        "{} on {}", action, resource
                    );
                }
            }
        }
    }

    #[test]
    fn a_matching_deny_always_wins(policies in arb_policies(), action_i in 0..Action::ALL.len(), resource_i in 0..9usize) {
        let action = Action::ALL[action_i];
        let resource = resources()[resource_i].clone();
        // A Deny naming exactly this action and resource (or `*` for the all-resource).
        let exact_resource = match &resource {
            Resource::All => "*".to_string(),
            Resource::Arn(arn) => arn.to_string(),
        };
        let deny = named("deny", &format!(
            r#"{{"Statement":[{{"Effect":"Deny","Action":"{}","Resource":"{}"}}]}}"#,
            action, exact_resource
        ));
        let mut named_policies: Vec<NamedPolicy> = policy_set(&policies).policies().to_vec();
        named_policies.insert(0, deny.clone());
        prop_assert!(!decide(PolicySet::new(named_policies.clone()), action, &resource));
        named_policies.remove(0);
        named_policies.push(deny);
        prop_assert!(!decide(PolicySet::new(named_policies), action, &resource));
    }

    #[test]
    fn statement_order_never_matters(policies in arb_policies(), seed in any::<u64>()) {
        let original = policy_set(&policies);
        // Reverse the policies and rotate each policy's statements by a seed-dependent amount.
        let mut shuffled: Vec<Vec<ArbStatement>> = policies.iter().rev().cloned().collect();
        for (i, statements) in shuffled.iter_mut().enumerate() {
            let n = statements.len();
            statements.rotate_left((seed as usize + i) % n);
        }
        let shuffled = policy_set(&shuffled);
        for &action in Action::ALL {
            for resource in resources() {
                prop_assert_eq!(
                    decide(original.clone(), action, &resource),
                    decide(shuffled.clone(), action, &resource),
                    "{} on {}", action, resource
                );
            }
        }
    }

    #[test]
    fn adding_an_allow_never_removes_access(policies in arb_policies(), extra in arb_statement()) {
        let before = policy_set(&policies);
        let allow = ArbStatement { deny: false, ..extra };
        let mut more = policies.clone();
        more.push(vec![allow]);
        let after = policy_set(&more);
        for &action in Action::ALL {
            for resource in resources() {
                if decide(before.clone(), action, &resource) {
                    prop_assert!(decide(after.clone(), action, &resource), "{} on {}", action, resource);
                }
            }
        }
    }

    #[test]
    fn star_matches_every_action_and_resource(policies in arb_policies()) {
        // Allow * on * plus any set of Allow-only statements: everything is allowed.
        let allows: Vec<Vec<ArbStatement>> = policies
            .into_iter()
            .map(|p| p.into_iter().map(|s| ArbStatement { deny: false, ..s }).collect())
            .collect();
        let mut set = policy_set(&allows).policies().to_vec();
        set.push(named("star", r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#));
        let set = PolicySet::new(set);
        for &action in Action::ALL {
            for resource in resources() {
                prop_assert!(decide(set.clone(), action, &resource), "{} on {}", action, resource);
            }
        }
    }
}
