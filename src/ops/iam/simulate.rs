//! The policy simulator: what a user's policies decide for actions on resources.

use serde_json::json;
use uuid::Uuid;

use crate::access::{self, Action, Decision, DenyReason, MatchedStatement, Resource};
use crate::db::users::UserRow;
use crate::error::AppError;
use crate::ops::{Caller, Credential, Kind, Op, Services};

/// One (action, resource) pair of a simulation.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub action: String,
    pub resource: String,
    /// `allowed`, `explicitDeny` or `implicitDeny`.
    pub decision: &'static str,
    pub matched: Vec<MatchedStatement>,
}

pub async fn simulate(
    s: &Services,
    caller: &Caller,
    user: &str,
    actions: &[String],
    resources: &[String],
) -> Result<Vec<Simulation>, AppError> {
    Op::run_on(
        s,
        caller,
        Kind::Read,
        Action::SimulatePrincipalPolicy,
        user,
        json!({"userName": user, "actionNames": actions, "resourceArns": resources}),
        async |op, u: UserRow| {
            if actions.is_empty() {
                return Err(AppError::validation(
                    "actionNames",
                    "name at least one action",
                ));
            }
            if actions.len() > 100 || resources.len() > 100 {
                return Err(AppError::validation(
                    "actionNames",
                    "at most 100 actions and 100 resources",
                ));
            }
            let parsed_actions = actions
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    a.parse::<Action>().map_err(|e| {
                        AppError::validation(&format!("actionNames[{i}]"), e.to_string())
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let parsed_resources = if resources.is_empty() {
                vec![Resource::All]
            } else {
                resources
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        Resource::parse(r)
                            .map_err(|m| AppError::validation(&format!("resourceArns[{i}]"), m))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
            let subject = Caller::load(
                op.conn(),
                u.id,
                &u.user_name,
                Credential::Session(Uuid::nil()),
                None,
                Default::default(),
            )
            .await?;
            let mut out = Vec::new();
            for action in &parsed_actions {
                for resource in &parsed_resources {
                    let decision = match access::authorize(&subject.principal, *action, resource) {
                        Decision::Allowed => "allowed",
                        Decision::Denied(d) => match d.reason {
                            DenyReason::ExplicitDeny(_)
                            | DenyReason::TokenExplicitDeny(_)
                            | DenyReason::UnreadablePolicy(_) => "explicitDeny",
                            DenyReason::NoAllow | DenyReason::TokenNoAllow => "implicitDeny",
                        },
                    };
                    out.push(Simulation {
                        action: action.as_str().to_string(),
                        resource: resource.to_string(),
                        decision,
                        matched: subject
                            .principal
                            .policies()
                            .matching_statements(*action, resource),
                    });
                }
            }
            Ok(out)
        },
    )
    .await
}
