//! The catalog of actions Sluice authorizes, and the kind of resource each one is checked against
//! (`docs/access-control.md`, "Actions and the resource each one is checked against").
//!
//! New features add their actions here, in the same change that first uses them, and to the table
//! in `docs/access-control.md`.

use std::fmt;
use std::str::FromStr;

/// A service prefix of action names and ARNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    CodePipeline,
    CodeConnections,
    Iam,
    Sluice,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::CodePipeline,
        Service::CodeConnections,
        Service::Iam,
        Service::Sluice,
    ];

    /// The prefix as written in actions and ARNs (`codepipeline`, `iam`, `sluice`).
    pub fn prefix(self) -> &'static str {
        match self {
            Service::CodePipeline => "codepipeline",
            Service::CodeConnections => "codeconnections",
            Service::Iam => "iam",
            Service::Sluice => "sluice",
        }
    }

    /// Parses a prefix, case-insensitively.
    pub fn from_prefix(prefix: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.prefix().eq_ignore_ascii_case(prefix))
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// What an action's resource ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// `PIPELINE`
    Pipeline,
    /// `PIPELINE/STAGE`
    Stage,
    /// `PIPELINE/STAGE/ACTION`
    PipelineAction,
    /// `actiontype:OWNER/CATEGORY/PROVIDER/VERSION`
    ActionType,
    /// `user/NAME`
    User,
    /// `group/NAME`
    Group,
    /// `policy/NAME`
    Policy,
    /// `connection/NAME`
    Connection,
    /// `bucket/NAME` (an upload bucket)
    Bucket,
    /// No resource-level permissions: checked against `*`.
    All,
}

macro_rules! actions {
    ($($variant:ident => $service:ident, $name:literal, $kind:ident;)+) => {
        /// An action Sluice authorizes. Every request is checked against exactly one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum Action {
            $($variant,)+
        }

        impl Action {
            /// Every action, in catalog order.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)+];

            /// The service the action belongs to.
            pub fn service(self) -> Service {
                match self {
                    $(Action::$variant => Service::$service,)+
                }
            }

            /// The operation name (`GetPipeline`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)+
                }
            }

            /// The full name (`codepipeline:GetPipeline`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Action::$variant => actions!(@full $service, $name),)+
                }
            }

            /// What the action's resource names.
            pub fn resource_kind(self) -> ResourceKind {
                match self {
                    $(Action::$variant => ResourceKind::$kind,)+
                }
            }
        }
    };
    (@full CodePipeline, $name:literal) => { concat!("codepipeline:", $name) };
    (@full CodeConnections, $name:literal) => { concat!("codeconnections:", $name) };
    (@full Iam, $name:literal) => { concat!("iam:", $name) };
    (@full Sluice, $name:literal) => { concat!("sluice:", $name) };
}

actions! {
    CreatePipeline => CodePipeline, "CreatePipeline", Pipeline;
    GetPipeline => CodePipeline, "GetPipeline", Pipeline;
    UpdatePipeline => CodePipeline, "UpdatePipeline", Pipeline;
    DeletePipeline => CodePipeline, "DeletePipeline", Pipeline;
    GetPipelineState => CodePipeline, "GetPipelineState", Pipeline;
    GetPipelineExecution => CodePipeline, "GetPipelineExecution", Pipeline;
    ListPipelineExecutions => CodePipeline, "ListPipelineExecutions", Pipeline;
    ListActionExecutions => CodePipeline, "ListActionExecutions", Pipeline;
    StartPipelineExecution => CodePipeline, "StartPipelineExecution", Pipeline;
    StopPipelineExecution => CodePipeline, "StopPipelineExecution", Pipeline;
    RetryStageExecution => CodePipeline, "RetryStageExecution", Stage;
    EnableStageTransition => CodePipeline, "EnableStageTransition", Stage;
    DisableStageTransition => CodePipeline, "DisableStageTransition", Stage;
    RollbackStage => CodePipeline, "RollbackStage", Stage;
    PutApprovalResult => CodePipeline, "PutApprovalResult", PipelineAction;
    PutActionRevision => CodePipeline, "PutActionRevision", PipelineAction;
    PutWebhook => CodePipeline, "PutWebhook", Pipeline;
    ListPipelines => CodePipeline, "ListPipelines", All;
    ListActionTypes => CodePipeline, "ListActionTypes", All;
    CreateCustomActionType => CodePipeline, "CreateCustomActionType", ActionType;
    DeleteCustomActionType => CodePipeline, "DeleteCustomActionType", ActionType;
    PollForJobs => CodePipeline, "PollForJobs", ActionType;
    AcknowledgeJob => CodePipeline, "AcknowledgeJob", All;
    GetJobDetails => CodePipeline, "GetJobDetails", All;
    PutJobSuccessResult => CodePipeline, "PutJobSuccessResult", All;
    PutJobFailureResult => CodePipeline, "PutJobFailureResult", All;
    TagResource => CodePipeline, "TagResource", Pipeline;
    UntagResource => CodePipeline, "UntagResource", Pipeline;
    ListTagsForResource => CodePipeline, "ListTagsForResource", Pipeline;

    CreateConnection => CodeConnections, "CreateConnection", Connection;
    GetConnection => CodeConnections, "GetConnection", Connection;
    UpdateConnection => CodeConnections, "UpdateConnection", Connection;
    DeleteConnection => CodeConnections, "DeleteConnection", Connection;
    PassConnection => CodeConnections, "PassConnection", Connection;
    ListConnections => CodeConnections, "ListConnections", All;

    CreateUser => Iam, "CreateUser", User;
    GetUser => Iam, "GetUser", User;
    UpdateUser => Iam, "UpdateUser", User;
    DeleteUser => Iam, "DeleteUser", User;
    ChangePassword => Iam, "ChangePassword", User;
    ResetPassword => Iam, "ResetPassword", User;
    CreateAccessKey => Iam, "CreateAccessKey", User;
    ListAccessKeys => Iam, "ListAccessKeys", User;
    DeleteAccessKey => Iam, "DeleteAccessKey", User;
    ListSessions => Iam, "ListSessions", User;
    DeleteSession => Iam, "DeleteSession", User;
    AttachUserPolicy => Iam, "AttachUserPolicy", User;
    DetachUserPolicy => Iam, "DetachUserPolicy", User;
    ListAttachedUserPolicies => Iam, "ListAttachedUserPolicies", User;
    SimulatePrincipalPolicy => Iam, "SimulatePrincipalPolicy", User;
    CreateGroup => Iam, "CreateGroup", Group;
    GetGroup => Iam, "GetGroup", Group;
    DeleteGroup => Iam, "DeleteGroup", Group;
    AddUserToGroup => Iam, "AddUserToGroup", Group;
    RemoveUserFromGroup => Iam, "RemoveUserFromGroup", Group;
    AttachGroupPolicy => Iam, "AttachGroupPolicy", Group;
    DetachGroupPolicy => Iam, "DetachGroupPolicy", Group;
    ListAttachedGroupPolicies => Iam, "ListAttachedGroupPolicies", Group;
    CreatePolicy => Iam, "CreatePolicy", Policy;
    GetPolicy => Iam, "GetPolicy", Policy;
    UpdatePolicy => Iam, "UpdatePolicy", Policy;
    DeletePolicy => Iam, "DeletePolicy", Policy;
    ListUsers => Iam, "ListUsers", All;
    ListGroups => Iam, "ListGroups", All;
    ListPolicies => Iam, "ListPolicies", All;

    LookupAuditEvents => Sluice, "LookupAuditEvents", All;
    ClearSignInThrottle => Sluice, "ClearSignInThrottle", User;
    GetServerStatus => Sluice, "GetServerStatus", All;
    ListWorkers => Sluice, "ListWorkers", All;
    CreateBucket => Sluice, "CreateBucket", Bucket;
    DeleteBucket => Sluice, "DeleteBucket", Bucket;
    ListBuckets => Sluice, "ListBuckets", All;
    PutObject => Sluice, "PutObject", Bucket;
    ListObjectVersions => Sluice, "ListObjectVersions", Bucket;
    GetMetrics => Sluice, "GetMetrics", All;
    RotateKeys => Sluice, "RotateKeys", All;
}

/// Events the audit log records that are not authorized actions: a sign-in has no principal yet,
/// and a CSRF refusal happens before any operation is known. Their names live here, beside the
/// actions, so every event name comes from one catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionEvent {
    ConsoleLogin,
    ConsoleLogout,
    CsrfCheck,
}

impl SessionEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEvent::ConsoleLogin => "sluice:ConsoleLogin",
            SessionEvent::ConsoleLogout => "sluice:ConsoleLogout",
            SessionEvent::CsrfCheck => "sluice:CsrfCheck",
        }
    }
}

/// The name of an audit event: an action of the catalog, or a session event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventName {
    Action(Action),
    Session(SessionEvent),
}

impl EventName {
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::Action(a) => a.as_str(),
            EventName::Session(e) => e.as_str(),
        }
    }
}

impl From<Action> for EventName {
    fn from(a: Action) -> Self {
        EventName::Action(a)
    }
}

impl From<SessionEvent> for EventName {
    fn from(e: SessionEvent) -> Self {
        EventName::Session(e)
    }
}

impl Action {
    /// The operation name in lower case, for case-insensitive matching without allocating.
    pub fn lowercase_name(self) -> &'static str {
        static NAMES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            Action::ALL
                .iter()
                .map(|a| a.name().to_ascii_lowercase())
                .collect()
        });
        &NAMES[self.index()]
    }

    /// The catalog position, for dense per-action tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Actions a signed-in user may always perform on their own `user/NAME`, unless a policy
    /// explicitly denies them (the contract's self-service rule).
    pub fn is_self_service(self) -> bool {
        matches!(
            self,
            Action::ChangePassword
                | Action::ListSessions
                | Action::DeleteSession
                | Action::CreateAccessKey
                | Action::ListAccessKeys
                | Action::DeleteAccessKey
        )
    }

    /// The catalog action with this service and (case-insensitive) operation name.
    pub fn lookup(service: Service, name: &str) -> Option<Action> {
        Self::ALL
            .iter()
            .copied()
            .find(|a| a.service() == service && a.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a known action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownAction {
    #[error("{0:?} is not of the form service:Operation")]
    Malformed(String),
    #[error("{0:?} names an unknown service (known: codepipeline, iam, sluice)")]
    UnknownService(String),
    #[error("{0:?} is not an action Sluice knows")]
    UnknownOperation(String),
}

impl FromStr for Action {
    type Err = UnknownAction;

    /// Parses `service:Operation`, case-insensitively.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (service, name) = text
            .split_once(':')
            .ok_or_else(|| UnknownAction::Malformed(text.to_string()))?;
        let service = Service::from_prefix(service)
            .ok_or_else(|| UnknownAction::UnknownService(text.to_string()))?;
        Action::lookup(service, name)
            .ok_or_else(|| UnknownAction::UnknownOperation(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_insensitively() {
        for &action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
            assert_eq!(action.as_str().to_lowercase().parse::<Action>(), Ok(action));
            assert_eq!(
                action.as_str(),
                format!("{}:{}", action.service(), action.name())
            );
        }
    }

    #[test]
    fn catalog_positions_are_dense() {
        for (i, &action) in Action::ALL.iter().enumerate() {
            assert_eq!(action.index(), i);
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = Action::ALL
            .iter()
            .map(|a| a.as_str().to_lowercase())
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len());
    }

    #[test]
    fn unknown_actions_say_why() {
        assert!(matches!(
            "GetPipeline".parse::<Action>(),
            Err(UnknownAction::Malformed(_))
        ));
        assert!(matches!(
            "s3:GetObject".parse::<Action>(),
            Err(UnknownAction::UnknownService(_))
        ));
        assert!(matches!(
            "codepipeline:TagResources".parse::<Action>(),
            Err(UnknownAction::UnknownOperation(_))
        ));
    }

    #[test]
    fn resource_kinds_follow_the_contract() {
        assert_eq!(
            Action::PutApprovalResult.resource_kind(),
            ResourceKind::PipelineAction
        );
        assert_eq!(
            Action::RetryStageExecution.resource_kind(),
            ResourceKind::Stage
        );
        assert_eq!(Action::ListPipelines.resource_kind(), ResourceKind::All);
        assert_eq!(
            Action::PollForJobs.resource_kind(),
            ResourceKind::ActionType
        );
        assert_eq!(Action::AddUserToGroup.resource_kind(), ResourceKind::Group);
        assert_eq!(Action::LookupAuditEvents.resource_kind(), ResourceKind::All);
    }
}
