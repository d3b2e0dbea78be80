//! Manual approvals' rules, pure: who counts at a gate, and when a gate is decided.
//!
//! CodePipeline's approval is the default: whoever the policies allow answers, once, and the
//! first answer decides. A Manual action may add Sluice's rules in its configuration (each
//! optional, checked when the pipeline is saved):
//!
//! - `RequiredApprovals` (1-20, default 1): that many distinct principals must approve; a single
//!   counted rejection rejects.
//! - `ApproverGroups` (group names, comma-separated): only members of one of these groups count.
//! - `ForbidSelfApproval` (`true`/`false`): whoever started the execution, and the author of a
//!   revision it promotes, cannot approve it (they may still reject it).
//! - `RequireComment` (`true`/`false`): an answer needs a comment.
//!
//! The policies say who may ever answer (`codepipeline:PutApprovalResult` on the action); the
//! rules say whose answer counts here. An answer the rules do not count is refused, never
//! silently ignored.

use std::collections::BTreeMap;

use crate::identity::GroupName;

pub const REQUIRED_APPROVALS: &str = "RequiredApprovals";
pub const APPROVER_GROUPS: &str = "ApproverGroups";
pub const FORBID_SELF_APPROVAL: &str = "ForbidSelfApproval";
pub const REQUIRE_COMMENT: &str = "RequireComment";

/// The most approvals a gate may require.
pub const MAX_REQUIRED_APPROVALS: u32 = 20;
/// The most groups a gate may name.
pub const MAX_APPROVER_GROUPS: usize = 20;

/// The rules of one approval gate. Built only by [`Rules::of_configuration`] (or
/// [`Rules::default`], CodePipeline's behaviour), so its values are always in range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    required: u32,
    groups: Vec<GroupName>,
    forbid_self: bool,
    require_comment: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            required: 1,
            groups: Vec::new(),
            forbid_self: false,
            require_comment: false,
        }
    }
}

impl Rules {
    /// The rules a Manual action's configuration declares; every problem names its key.
    pub fn of_configuration(
        config: &BTreeMap<String, String>,
    ) -> Result<Rules, Vec<(&'static str, String)>> {
        let mut rules = Rules::default();
        let mut problems = Vec::new();
        if let Some(value) = config.get(REQUIRED_APPROVALS) {
            match parse_required(value) {
                Ok(n) => rules.required = n,
                Err(e) => problems.push((REQUIRED_APPROVALS, e)),
            }
        }
        if let Some(value) = config.get(APPROVER_GROUPS) {
            match parse_groups(value) {
                Ok(groups) => rules.groups = groups,
                Err(e) => problems.push((APPROVER_GROUPS, e)),
            }
        }
        for (key, slot) in [
            (FORBID_SELF_APPROVAL, &mut rules.forbid_self),
            (REQUIRE_COMMENT, &mut rules.require_comment),
        ] {
            if let Some(value) = config.get(key) {
                match parse_flag(value) {
                    Ok(flag) => *slot = flag,
                    Err(e) => problems.push((key, e)),
                }
            }
        }
        if problems.is_empty() {
            Ok(rules)
        } else {
            Err(problems)
        }
    }

    /// Rules read back from storage (they were checked when the approval was requested).
    pub fn stored(
        required: i32,
        groups: &[String],
        forbid_self: bool,
        require_comment: bool,
    ) -> Rules {
        Rules {
            required: u32::try_from(required)
                .unwrap_or(1)
                .clamp(1, MAX_REQUIRED_APPROVALS),
            groups: groups
                .iter()
                .filter_map(|g| GroupName::parse(g).ok())
                .collect(),
            forbid_self,
            require_comment,
        }
    }

    pub fn required(&self) -> u32 {
        self.required
    }

    pub fn groups(&self) -> &[GroupName] {
        &self.groups
    }

    pub fn forbid_self(&self) -> bool {
        self.forbid_self
    }

    pub fn require_comment(&self) -> bool {
        self.require_comment
    }

    /// Whether these are CodePipeline's rules (one answer from anyone allowed decides).
    pub fn is_default(&self) -> bool {
        *self == Rules::default()
    }

    /// The rules in words, for approvers.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.required > 1 {
            lines.push(format!(
                "{} approvals from different people are needed; one rejection rejects",
                self.required
            ));
        }
        if !self.groups.is_empty() {
            let names: Vec<&str> = self.groups.iter().map(GroupName::as_str).collect();
            lines.push(format!("only members of {} count", names.join(", ")));
        }
        if self.forbid_self {
            lines.push(
                "whoever started the execution or wrote a revision it promotes cannot approve it"
                    .into(),
            );
        }
        if self.require_comment {
            lines.push("every answer needs a comment".into());
        }
        lines
    }
}

/// `RequiredApprovals`' value: a whole number from 1 to [`MAX_REQUIRED_APPROVALS`].
pub fn parse_required(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(n) if (1..=MAX_REQUIRED_APPROVALS).contains(&n) => Ok(n),
        _ => Err(format!(
            "must be a whole number from 1 to {MAX_REQUIRED_APPROVALS}"
        )),
    }
}

/// `ApproverGroups`' value: group names separated by commas (spaces around them allowed), each
/// named once regardless of case.
pub fn parse_groups(value: &str) -> Result<Vec<GroupName>, String> {
    let mut groups: Vec<GroupName> = Vec::new();
    for part in value.split(',') {
        let name = GroupName::parse(part.trim())
            .map_err(|e| format!("must be group names separated by commas: {e}"))?;
        if groups
            .iter()
            .any(|g| g.as_str().eq_ignore_ascii_case(name.as_str()))
        {
            return Err(format!("names the group {name} twice"));
        }
        groups.push(name);
    }
    if groups.len() > MAX_APPROVER_GROUPS {
        return Err(format!("may name at most {MAX_APPROVER_GROUPS} groups"));
    }
    Ok(groups)
}

/// A `true`/`false` rule value (exactly those, as every CodePipeline boolean-ish value).
pub fn parse_flag(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

/// An answer already recorded at the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The principal's ARN.
    pub principal: String,
    pub approve: bool,
}

/// Who is answering, as the rules need to know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver<'a> {
    /// The principal's ARN (one per user, whichever credential they use).
    pub principal: &'a str,
    /// The groups the user is a member of, as stored.
    pub groups: &'a [String],
    /// The user started the execution.
    pub started_execution: bool,
    /// The user wrote a revision the execution promotes.
    pub authored_revision: bool,
}

/// What happens to the gate after a counted answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Approved, and more approvals are needed: `approvals` of `required` so far.
    Counted { approvals: u32, required: u32 },
    /// The gate is approved: the action succeeds.
    Approved,
    /// The gate is rejected: the action fails.
    Rejected,
}

/// Why an answer does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleRefusal {
    #[error("you have answered this approval already; it needs answers from other people")]
    AlreadyAnswered,
    #[error("only members of {0} count at this approval")]
    NotInGroups(String),
    #[error("you started this execution, and this approval forbids approving your own")]
    StartedIt,
    #[error(
        "you wrote a revision this execution promotes, and this approval forbids approving your own"
    )]
    AuthoredIt,
    #[error("this approval needs a comment with every answer")]
    CommentRequired,
}

/// Decides one answer: whether it counts under `rules`, given the answers `earlier` (all
/// counted, none of them final), and what it does to the gate.
pub fn decide(
    rules: &Rules,
    earlier: &[Recorded],
    approver: &Approver<'_>,
    approve: bool,
    comment: &str,
) -> Result<Verdict, RuleRefusal> {
    if earlier.iter().any(|r| r.principal == approver.principal) {
        return Err(RuleRefusal::AlreadyAnswered);
    }
    if !rules.groups.is_empty()
        && !rules.groups.iter().any(|g| {
            approver
                .groups
                .iter()
                .any(|mine| mine.eq_ignore_ascii_case(g.as_str()))
        })
    {
        let names: Vec<&str> = rules.groups.iter().map(GroupName::as_str).collect();
        return Err(RuleRefusal::NotInGroups(names.join(", ")));
    }
    if approve && rules.forbid_self {
        if approver.started_execution {
            return Err(RuleRefusal::StartedIt);
        }
        if approver.authored_revision {
            return Err(RuleRefusal::AuthoredIt);
        }
    }
    if rules.require_comment && comment.trim().is_empty() {
        return Err(RuleRefusal::CommentRequired);
    }
    if !approve {
        return Ok(Verdict::Rejected);
    }
    let approvals = earlier.iter().filter(|r| r.approve).count() as u32 + 1;
    if approvals >= rules.required {
        Ok(Verdict::Approved)
    } else {
        Ok(Verdict::Counted {
            approvals,
            required: rules.required,
        })
    }
}

/// Whether a commit's author (its name or e-mail address) is the user `user_name`: either is the
/// user's name, regardless of case and surrounding space. A user named like an address's local
/// part is not its author (`alice` did not write `alice@example.com`'s commits).
pub fn is_author(user_name: &str, author_name: &str, author_email: &str) -> bool {
    let user = user_name.trim();
    !user.is_empty()
        && (author_name.trim().eq_ignore_ascii_case(user)
            || author_email.trim().eq_ignore_ascii_case(user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn me<'a>(principal: &'a str, groups: &'a [String]) -> Approver<'a> {
        Approver {
            principal,
            groups,
            started_execution: false,
            authored_revision: false,
        }
    }

    #[test]
    fn no_rules_is_codepipelines_approval() {
        let rules = Rules::of_configuration(&config(&[("CustomData", "x")])).unwrap();
        assert!(rules.is_default());
        assert!(rules.describe().is_empty());
        let a = me("arn:u/a", &[]);
        assert_eq!(decide(&rules, &[], &a, true, ""), Ok(Verdict::Approved));
        assert_eq!(decide(&rules, &[], &a, false, ""), Ok(Verdict::Rejected));
    }

    #[test]
    fn rule_values_are_checked_with_their_keys() {
        let bad = Rules::of_configuration(&config(&[
            ("RequiredApprovals", "two"),
            ("ApproverGroups", "ops, bad name"),
            ("ForbidSelfApproval", "yes"),
            ("RequireComment", "TRUE"),
        ]))
        .unwrap_err();
        let keys: Vec<&str> = bad.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                REQUIRED_APPROVALS,
                APPROVER_GROUPS,
                FORBID_SELF_APPROVAL,
                REQUIRE_COMMENT
            ]
        );
        for value in ["0", "21", "-1", "1.5", "", " 2", "#{v.n}"] {
            assert!(parse_required(value).is_err(), "{value:?}");
        }
        assert_eq!(parse_required("20"), Ok(20));
        for value in ["", ",", "ops,", "ops,,qa", "ops,OPS", "a b", "#{x}"] {
            assert!(parse_groups(value).is_err(), "{value:?}");
        }
        let groups = parse_groups(" ops ,release-managers").unwrap();
        assert_eq!(groups[0].as_str(), "ops");
        assert_eq!(groups[1].as_str(), "release-managers");
        assert!(
            parse_groups(
                &vec!["g"; 21]
                    .iter()
                    .enumerate()
                    .map(|(i, g)| format!("{g}{i}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
            .is_err()
        );
    }

    #[test]
    fn two_of_three_needs_two_distinct_approvals() {
        let rules = Rules::of_configuration(&config(&[("RequiredApprovals", "2")])).unwrap();
        let a = me("arn:u/a", &[]);
        let b = me("arn:u/b", &[]);
        assert_eq!(
            decide(&rules, &[], &a, true, ""),
            Ok(Verdict::Counted {
                approvals: 1,
                required: 2
            })
        );
        let earlier = [Recorded {
            principal: "arn:u/a".into(),
            approve: true,
        }];
        assert_eq!(
            decide(&rules, &earlier, &a, true, ""),
            Err(RuleRefusal::AlreadyAnswered)
        );
        assert_eq!(
            decide(&rules, &earlier, &a, false, ""),
            Err(RuleRefusal::AlreadyAnswered)
        );
        assert_eq!(
            decide(&rules, &earlier, &b, true, ""),
            Ok(Verdict::Approved)
        );
        assert_eq!(
            decide(&rules, &earlier, &b, false, ""),
            Ok(Verdict::Rejected)
        );
    }

    #[test]
    fn only_group_members_count_regardless_of_case() {
        let rules =
            Rules::of_configuration(&config(&[("ApproverGroups", "Release-Managers,qa")])).unwrap();
        let none: Vec<String> = vec!["dev".into()];
        let member: Vec<String> = vec!["dev".into(), "release-managers".into()];
        assert_eq!(
            decide(&rules, &[], &me("arn:u/a", &none), true, ""),
            Err(RuleRefusal::NotInGroups("Release-Managers, qa".into()))
        );
        assert_eq!(
            decide(&rules, &[], &me("arn:u/a", &none), false, ""),
            Err(RuleRefusal::NotInGroups("Release-Managers, qa".into()))
        );
        assert_eq!(
            decide(&rules, &[], &me("arn:u/a", &member), true, ""),
            Ok(Verdict::Approved)
        );
    }

    #[test]
    fn self_approval_is_refused_but_self_rejection_is_not() {
        let rules = Rules::of_configuration(&config(&[("ForbidSelfApproval", "true")])).unwrap();
        let starter = Approver {
            started_execution: true,
            ..me("arn:u/a", &[])
        };
        let author = Approver {
            authored_revision: true,
            ..me("arn:u/a", &[])
        };
        assert_eq!(
            decide(&rules, &[], &starter, true, ""),
            Err(RuleRefusal::StartedIt)
        );
        assert_eq!(
            decide(&rules, &[], &author, true, ""),
            Err(RuleRefusal::AuthoredIt)
        );
        assert_eq!(
            decide(&rules, &[], &starter, false, ""),
            Ok(Verdict::Rejected)
        );
        let off = Rules::of_configuration(&config(&[("ForbidSelfApproval", "false")])).unwrap();
        assert_eq!(decide(&off, &[], &starter, true, ""), Ok(Verdict::Approved));
    }

    #[test]
    fn a_comment_is_required_for_both_answers() {
        let rules = Rules::of_configuration(&config(&[("RequireComment", "true")])).unwrap();
        let a = me("arn:u/a", &[]);
        for blank in ["", "   ", "\n\t"] {
            assert_eq!(
                decide(&rules, &[], &a, true, blank),
                Err(RuleRefusal::CommentRequired)
            );
            assert_eq!(
                decide(&rules, &[], &a, false, blank),
                Err(RuleRefusal::CommentRequired)
            );
        }
        assert_eq!(decide(&rules, &[], &a, true, "ok"), Ok(Verdict::Approved));
    }

    #[test]
    fn authors_match_by_name_or_address() {
        assert!(is_author("alice", "Alice", "alice@example.com"));
        assert!(is_author(
            "alice@example.com",
            "Alice Liddell",
            "Alice@Example.com"
        ));
        assert!(!is_author("alice", "Alice Liddell", "alice@example.com"));
        assert!(!is_author("", "", ""));
    }

    #[test]
    fn stored_rules_read_back() {
        let rules = Rules::of_configuration(&config(&[
            ("RequiredApprovals", "3"),
            ("ApproverGroups", "ops"),
            ("ForbidSelfApproval", "true"),
            ("RequireComment", "true"),
        ]))
        .unwrap();
        let groups: Vec<String> = rules.groups().iter().map(|g| g.to_string()).collect();
        assert_eq!(Rules::stored(3, &groups, true, true), rules);
        assert_eq!(rules.describe().len(), 4);
    }

    proptest! {
        /// However answers arrive, a gate is approved exactly when `required` distinct counted
        /// approvals came before any rejection, and never by one principal twice.
        #[test]
        fn a_gate_is_decided_by_distinct_counted_answers(
            required in 1u32..=5,
            answers in proptest::collection::vec((0usize..6, any::<bool>(), any::<bool>()), 0..20),
        ) {
            let rules = Rules::of_configuration(&config(&[
                ("RequiredApprovals", &required.to_string()),
                ("ApproverGroups", "ops"),
            ])).unwrap();
            let ops: Vec<String> = vec!["ops".into()];
            let others: Vec<String> = vec!["dev".into()];
            let mut recorded: Vec<Recorded> = Vec::new();
            let mut outcome = None;
            for (who, member, approve) in answers {
                if outcome.is_some() {
                    break;
                }
                let principal = format!("arn:u/{who}");
                let groups = if member { &ops } else { &others };
                let approver = me(&principal, groups);
                match decide(&rules, &recorded, &approver, approve, "") {
                    Ok(verdict) => {
                        prop_assert!(member);
                        prop_assert!(!recorded.iter().any(|r| r.principal == principal));
                        recorded.push(Recorded { principal: principal.clone(), approve });
                        match verdict {
                            Verdict::Counted { approvals, required: r } => {
                                prop_assert!(approve);
                                prop_assert_eq!(r, required);
                                prop_assert!(approvals < required);
                                prop_assert_eq!(approvals as usize, recorded.len());
                            }
                            Verdict::Approved => {
                                prop_assert_eq!(recorded.len() as u32, required);
                                outcome = Some(true);
                            }
                            Verdict::Rejected => {
                                prop_assert!(!approve);
                                outcome = Some(false);
                            }
                        }
                    }
                    Err(RuleRefusal::NotInGroups(_)) => prop_assert!(!member),
                    Err(RuleRefusal::AlreadyAnswered) => {
                        prop_assert!(recorded.iter().any(|r| r.principal == principal));
                    }
                    Err(other) => prop_assert!(false, "unexpected refusal {other:?}"),
                }
            }
            let distinct: std::collections::BTreeSet<&str> =
                recorded.iter().map(|r| r.principal.as_str()).collect();
            prop_assert_eq!(distinct.len(), recorded.len());
        }
    }
}
