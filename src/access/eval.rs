//! The decision: `authorize(principal, action, resource)`. Pure: no IO, no clock, no globals.
//!
//! Evaluation follows the contract: explicit deny beats allow beats implicit deny; a narrowed API
//! token needs both its user's policies and its own policy to allow; a user may always act on their
//! own password, sessions and tokens unless a policy explicitly denies it.
//!
//! The action catalog is finite, so a [`PolicySet`] expands every statement's action part
//! (wildcards and `NotAction` included) into the catalog actions it matches, once. A decision then
//! looks only at the statements that apply to its action and checks their resources.

use std::fmt;
use std::sync::Arc;

use super::action::Action;
use super::arn::Resource;
use super::policy::{Effect, PolicyDocument, Statement};

/// A policy as attached to a principal: its name and its document.
#[derive(Debug, Clone)]
pub struct NamedPolicy {
    pub name: String,
    pub document: Arc<PolicyDocument>,
}

/// Where a matching statement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct StatementRef {
    policy: u32,
    statement: u32,
}

/// A matching statement, for explanations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedStatement {
    pub policy_name: String,
    pub sid: Option<String>,
    pub statement_index: usize,
    pub effect: Effect,
}

/// The outcome of evaluating one set of policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluation {
    Allowed(MatchedStatement),
    ExplicitDeny(MatchedStatement),
    ImplicitDeny,
}

/// An [`Evaluation`] before its statement is described.
#[derive(Debug, Clone, Copy)]
enum Found {
    Allowed(StatementRef),
    ExplicitDeny(StatementRef),
    ImplicitDeny,
}

/// The policies that apply to a principal (its own and its groups'), indexed for evaluation.
#[derive(Debug, Clone)]
pub struct PolicySet {
    policies: Vec<NamedPolicy>,
    /// Per catalog action, in attachment and document order: the Deny statements whose action
    /// part matches it.
    denies: Vec<Vec<StatementRef>>,
    /// The same for Allow statements. Kept apart so a decision checks every deny (few, in real
    /// policies) and then only the allows up to the first that matches.
    allows: Vec<Vec<StatementRef>>,
}

impl PolicySet {
    /// Indexes the policies. Duplicate attachments (the same policy through a user and a group)
    /// are harmless.
    pub fn new(policies: Vec<NamedPolicy>) -> Self {
        let mut denies = vec![Vec::new(); Action::ALL.len()];
        let mut allows = vec![Vec::new(); Action::ALL.len()];
        for (p, policy) in policies.iter().enumerate() {
            for (s, statement) in policy.document.statements().iter().enumerate() {
                let at = StatementRef {
                    policy: p as u32,
                    statement: s as u32,
                };
                let lists = match statement.effect() {
                    Effect::Deny => &mut denies,
                    Effect::Allow => &mut allows,
                };
                for &action in Action::ALL {
                    if statement.matches_action(action) {
                        lists[action.index()].push(at);
                    }
                }
            }
        }
        Self {
            policies,
            denies,
            allows,
        }
    }

    /// An empty set: denies everything.
    pub fn empty() -> Self {
        Self::new(Vec::new())
    }

    /// The attached policies.
    pub fn policies(&self) -> &[NamedPolicy] {
        &self.policies
    }

    fn statement(&self, at: StatementRef) -> &Statement {
        &self.policies[at.policy as usize].document.statements()[at.statement as usize]
    }

    fn describe(&self, at: StatementRef) -> MatchedStatement {
        let statement = self.statement(at);
        MatchedStatement {
            policy_name: self.policies[at.policy as usize].name.clone(),
            sid: statement.sid().map(str::to_string),
            statement_index: at.statement as usize,
            effect: statement.effect(),
        }
    }

    /// Explicit deny > allow > implicit deny. The statement reported is the first matching one in
    /// attachment and document order, so explanations are stable.
    pub fn evaluate(&self, action: Action, resource: &Resource) -> Evaluation {
        match self.find(action, resource) {
            Found::ExplicitDeny(at) => Evaluation::ExplicitDeny(self.describe(at)),
            Found::Allowed(at) => Evaluation::Allowed(self.describe(at)),
            Found::ImplicitDeny => Evaluation::ImplicitDeny,
        }
    }

    /// [`evaluate`](Self::evaluate) without the explanation, which costs allocations that a
    /// question asked for every button of every live stream should not pay.
    fn find(&self, action: Action, resource: &Resource) -> Found {
        let first_match = |lists: &[Vec<StatementRef>]| {
            lists[action.index()]
                .iter()
                .copied()
                .find(|&at| self.statement(at).matches_resource(action, resource))
        };
        if let Some(deny) = first_match(&self.denies) {
            return Found::ExplicitDeny(deny);
        }
        match first_match(&self.allows) {
            Some(allow) => Found::Allowed(allow),
            None => Found::ImplicitDeny,
        }
    }

    /// Every statement that matches, in attachment and document order (for the policy simulator).
    pub fn matching_statements(
        &self,
        action: Action,
        resource: &Resource,
    ) -> Vec<MatchedStatement> {
        let mut refs: Vec<StatementRef> = self.denies[action.index()]
            .iter()
            .chain(&self.allows[action.index()])
            .copied()
            .filter(|&at| self.statement(at).matches_resource(action, resource))
            .collect();
        refs.sort();
        refs.into_iter().map(|at| self.describe(at)).collect()
    }
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Principal {
    user_name: String,
    /// The policies of the user and of the user's groups.
    policies: Arc<PolicySet>,
    /// The narrowing policy of the API token in use, if it has one.
    token_policy: Option<Arc<PolicySet>>,
    /// What this principal is beyond its policies.
    standing: Standing,
}

/// Whether a principal is decided by its policies, refused everything, or is Sluice itself.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Standing {
    /// Decided by the policies.
    Policies,
    /// One of the user's stored policies no longer parses: its Deny statements cannot be known,
    /// so nothing is allowed (fail closed). Holds the policy's name.
    Unreadable(String),
    /// Work no person started (the execution engine, periodic maintenance, `sluice admin`):
    /// allowed everything. Only code can build one; no credential resolves to it.
    System,
}

impl Principal {
    /// A user acting with their own permissions (a console session, or a token without a
    /// narrowing policy).
    pub fn user(user_name: impl Into<String>, policies: Arc<PolicySet>) -> Self {
        Self {
            user_name: user_name.into(),
            policies,
            token_policy: None,
            standing: Standing::Policies,
        }
    }

    /// A user one of whose stored policies no longer parses (`policy`): refused everything, with
    /// a reason that names the policy, until an administrator repairs or detaches it.
    pub fn unreadable(user_name: impl Into<String>, policy: impl Into<String>) -> Self {
        Self {
            user_name: user_name.into(),
            policies: Arc::new(PolicySet::empty()),
            token_policy: None,
            standing: Standing::Unreadable(policy.into()),
        }
    }

    /// Sluice itself (`label` says which part: `engine`, `maintenance`, `sluice-admin`).
    pub fn system(label: impl Into<String>) -> Self {
        Self {
            user_name: label.into(),
            policies: Arc::new(PolicySet::empty()),
            token_policy: None,
            standing: Standing::System,
        }
    }

    pub fn is_system(&self) -> bool {
        self.standing == Standing::System
    }

    /// A user acting through an API token narrowed by its own policy.
    pub fn narrowed(
        user_name: impl Into<String>,
        policies: Arc<PolicySet>,
        token_policy: Arc<PolicySet>,
    ) -> Self {
        Self {
            user_name: user_name.into(),
            policies,
            token_policy: Some(token_policy),
            standing: Standing::Policies,
        }
    }

    pub fn user_name(&self) -> &str {
        &self.user_name
    }

    /// `arn:sluice:iam:::user/NAME` (`arn:sluice:iam:::system/LABEL` for Sluice itself).
    pub fn arn(&self) -> String {
        match self.standing {
            Standing::System => format!("arn:sluice:iam:::system/{}", self.user_name),
            _ => Resource::user(&self.user_name).to_string(),
        }
    }

    /// The user's policy set (without any token narrowing).
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The token's narrowing policy set, when acting through a narrowed token.
    pub fn token_policies(&self) -> Option<&PolicySet> {
        self.token_policy.as_deref()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    /// A statement of the user's (or their groups') policies denies it.
    ExplicitDeny(MatchedStatement),
    /// No statement of the user's policies allows it.
    NoAllow,
    /// The token's narrowing policy denies it explicitly.
    TokenExplicitDeny(MatchedStatement),
    /// The token's narrowing policy does not allow it.
    TokenNoAllow,
    /// A stored policy of the user no longer parses (named here), so nothing is allowed.
    UnreadablePolicy(String),
}

/// A refusal, with what was refused and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub principal_arn: String,
    pub action: Action,
    pub resource: Resource,
    pub reason: DenyReason,
}

impl Denied {
    /// The sentence the console shows.
    pub fn console_message(&self) -> String {
        format!(
            "You are not allowed to perform {} on {}",
            self.action, self.resource
        )
    }

    /// AWS's `AccessDeniedException` message.
    pub fn api_message(&self) -> String {
        format!(
            "User: {} is not authorized to perform: {} on resource: {}",
            self.principal_arn, self.action, self.resource
        )
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.api_message())
    }
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied(Box<Denied>),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed)
    }

    /// `Ok(())` or the refusal, for `?` in handlers.
    pub fn into_result(self) -> Result<(), Box<Denied>> {
        match self {
            Decision::Allowed => Ok(()),
            Decision::Denied(d) => Err(d),
        }
    }
}

/// The one authorization function. Every console route and API operation calls it before acting.
pub fn authorize(principal: &Principal, action: Action, resource: &Resource) -> Decision {
    let reason = match decide(principal, action, resource) {
        Verdict::Allowed => return Decision::Allowed,
        Verdict::Unreadable(policy) => DenyReason::UnreadablePolicy(policy.to_string()),
        Verdict::ExplicitDeny(at) => DenyReason::ExplicitDeny(principal.policies.describe(at)),
        Verdict::NoAllow => DenyReason::NoAllow,
        Verdict::TokenExplicitDeny(token, at) => DenyReason::TokenExplicitDeny(token.describe(at)),
        Verdict::TokenNoAllow => DenyReason::TokenNoAllow,
    };
    Decision::Denied(Box::new(Denied {
        principal_arn: principal.arn(),
        action,
        resource: resource.clone(),
        reason,
    }))
}

/// [`authorize`]'s answer alone, without building the refusal's explanation: for the questions a
/// page asks to decide which links and buttons to show.
pub fn is_allowed(principal: &Principal, action: Action, resource: &Resource) -> bool {
    matches!(decide(principal, action, resource), Verdict::Allowed)
}

/// The decision [`authorize`] and [`is_allowed`] both give, with where to find its reason.
enum Verdict<'a> {
    Allowed,
    Unreadable(&'a str),
    ExplicitDeny(StatementRef),
    NoAllow,
    TokenExplicitDeny(&'a PolicySet, StatementRef),
    TokenNoAllow,
}

fn decide<'a>(principal: &'a Principal, action: Action, resource: &Resource) -> Verdict<'a> {
    match &principal.standing {
        Standing::System => return Verdict::Allowed,
        Standing::Unreadable(policy) => return Verdict::Unreadable(policy),
        Standing::Policies => {}
    }
    let own = action.is_self_service() && *resource == Resource::user(&principal.user_name);
    match principal.policies.find(action, resource) {
        Found::ExplicitDeny(at) => return Verdict::ExplicitDeny(at),
        Found::ImplicitDeny if !own => return Verdict::NoAllow,
        Found::Allowed(_) | Found::ImplicitDeny => {}
    }
    // A narrowed token gets no self-service grant: it could otherwise mint an unnarrowed token.
    if let Some(token) = &principal.token_policy {
        match token.find(action, resource) {
            Found::Allowed(_) => {}
            Found::ExplicitDeny(at) => return Verdict::TokenExplicitDeny(token, at),
            Found::ImplicitDeny => return Verdict::TokenNoAllow,
        }
    }
    Verdict::Allowed
}
