//! Operations: what a caller can do, shared by the console and the API.
//!
//! Every operation follows one shape, enforced by [`Op`]: authorize first (a refusal is audited
//! and nothing else happens), do the work in one transaction, and write the audit event of a
//! change in that same transaction; a failed change is rolled back and audited on its own.

pub mod auth;
pub mod iam;
pub mod pipelines;

use std::sync::Arc;

use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::access::{self, Action, NamedPolicy, PolicyDocument, PolicySet, Principal, Resource};
use crate::audit::{self, Actor};
use crate::clock::Clock;
use crate::db;
use crate::error::AppError;
use crate::identity::PasswordHasher;
use crate::secrets::MasterKey;

/// Session lifetimes (ASVS level 2 defaults: 30 minutes idle, 12 hours in all).
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub idle: Duration,
    pub absolute: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle: Duration::minutes(30),
            absolute: Duration::hours(12),
        }
    }
}

/// What operations need: the database, the password hasher, the clock, session limits.
#[derive(Clone)]
pub struct Services {
    pub pool: PgPool,
    pub hasher: PasswordHasher,
    pub clock: Clock,
    pub sessions: SessionLimits,
    /// Seals secret configuration values before they are stored.
    pub master_key: Arc<MasterKey>,
    /// Pipeline versions already read, as shown (secrets masked). Versions never change, so
    /// entries never go stale; deleting a pipeline leaves unreachable entries until the cache is
    /// emptied when full.
    pub declarations: Arc<pipelines::DeclarationCache>,
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Session(Uuid),
    Token(Uuid),
}

/// An authenticated caller: who, with which permissions, and the audit facts of the request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub principal: Principal,
    pub credential: Credential,
    pub actor: Actor,
}

impl Caller {
    /// Loads the user's effective policies (own and groups') and, for a narrowed token, the
    /// token's policy.
    pub async fn load(
        conn: &mut PgConnection,
        user_id: Uuid,
        user_name: &str,
        credential: Credential,
        token_policy: Option<&str>,
        actor: Actor,
    ) -> Result<Self, AppError> {
        let attached = db::policies::effective_for_user(conn, user_id).await?;
        Ok(Self::from_attached(
            user_id,
            user_name,
            credential,
            token_policy,
            actor,
            attached,
        ))
    }

    /// Builds a caller from the policies already loaded for its user.
    pub fn from_attached(
        user_id: Uuid,
        user_name: &str,
        credential: Credential,
        token_policy: Option<&str>,
        actor: Actor,
        attached: Vec<db::policies::AttachedPolicy>,
    ) -> Self {
        let policies = attached
            .into_iter()
            .filter_map(|p| match PolicyDocument::parse(&p.document) {
                Ok(document) => Some(NamedPolicy {
                    name: p.policy_name,
                    document: Arc::new(document),
                }),
                Err(e) => {
                    // Stored documents were valid when saved; one that no longer parses grants
                    // nothing rather than failing every request of the user.
                    tracing::error!(policy = %p.policy_name, error = %e, "stored policy no longer parses; ignoring it");
                    None
                }
            })
            .collect();
        let set = Arc::new(PolicySet::new(policies));
        let principal = match token_policy {
            None => Principal::user(user_name, set),
            Some(text) => {
                let narrowing = PolicyDocument::parse(text)
                    .map(|d| {
                        vec![NamedPolicy {
                            name: "token policy".into(),
                            document: Arc::new(d),
                        }]
                    })
                    .unwrap_or_default();
                Principal::narrowed(user_name, set, Arc::new(PolicySet::new(narrowing)))
            }
        };
        Self {
            user_id,
            principal,
            credential,
            actor,
        }
    }

    pub fn user_name(&self) -> &str {
        self.principal.user_name()
    }

    /// Whether the caller may do `action` on `resource` (for showing links and buttons).
    pub fn can(&self, action: Action, resource: &Resource) -> bool {
        access::authorize(&self.principal, action, resource).is_allowed()
    }

    pub fn session_id(&self) -> Option<Uuid> {
        match self.credential {
            Credential::Session(id) => Some(id),
            Credential::Token(_) => None,
        }
    }
}

/// Whether an operation changes state (and so is audited when it succeeds or fails) or only
/// reads (audited only when refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Change,
    Read,
}

/// One authorized operation in progress. See the module documentation.
pub struct Op<'a> {
    services: &'a Services,
    caller: &'a Caller,
    action: Action,
    resource: Resource,
    params: Value,
    kind: Kind,
    conn: OpConnection,
}

/// A change works in a transaction; a read needs none (one statement at a time is enough, and it
/// saves the BEGIN and COMMIT round trips on every page view).
enum OpConnection {
    Transaction(Transaction<'static, Postgres>),
    Plain(sqlx::pool::PoolConnection<Postgres>),
}

impl<'a> Op<'a> {
    /// Authorizes `action` on `resource`; on refusal records the denial and returns
    /// [`AppError::AccessDenied`]. Otherwise opens the operation's transaction.
    pub async fn begin(
        services: &'a Services,
        caller: &'a Caller,
        kind: Kind,
        action: Action,
        resource: Resource,
        params: Value,
    ) -> Result<Op<'a>, AppError> {
        if let Err(denied) = access::authorize(&caller.principal, action, &resource).into_result() {
            audit::record_alone(
                &services.pool,
                audit::Event {
                    actor: &caller.actor,
                    event_name: action.as_str(),
                    resource_arn: Some(resource.to_string()),
                    request_parameters: params,
                    outcome: "AccessDenied",
                    error_message: Some(denied.api_message()),
                },
                services.clock.now(),
            )
            .await?;
            return Err(AppError::AccessDenied(denied));
        }
        let conn = match kind {
            Kind::Change => OpConnection::Transaction(services.pool.begin().await?),
            Kind::Read => OpConnection::Plain(services.pool.acquire().await?),
        };
        Ok(Self {
            services,
            caller,
            action,
            resource,
            params,
            kind,
            conn,
        })
    }

    /// The operation's transaction.
    pub fn conn(&mut self) -> &mut PgConnection {
        match &mut self.conn {
            OpConnection::Transaction(tx) => tx,
            OpConnection::Plain(conn) => conn,
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        self.services.clock.now()
    }

    pub fn caller(&self) -> &Caller {
        self.caller
    }

    pub fn services(&self) -> &Services {
        self.services
    }

    /// Commits with the success event, or rolls back and records the failure.
    pub async fn finish<T>(self, result: Result<T, AppError>) -> Result<T, AppError> {
        let now = self.now();
        match result {
            Ok(value) => {
                let OpConnection::Transaction(mut tx) = self.conn else {
                    return Ok(value);
                };
                if self.kind == Kind::Change {
                    audit::record(
                        &mut tx,
                        audit::Event {
                            actor: &self.caller.actor,
                            event_name: self.action.as_str(),
                            resource_arn: Some(self.resource.to_string()),
                            request_parameters: self.params,
                            outcome: audit::SUCCESS,
                            error_message: None,
                        },
                        now,
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(value)
            }
            Err(error) => {
                drop(self.conn);
                if self.kind == Kind::Change && !matches!(error, AppError::Internal(_)) {
                    audit::record_alone(
                        &self.services.pool,
                        audit::Event {
                            actor: &self.caller.actor,
                            event_name: self.action.as_str(),
                            resource_arn: Some(self.resource.to_string()),
                            request_parameters: self.params,
                            outcome: error.code(),
                            error_message: Some(error.public_message()),
                        },
                        now,
                    )
                    .await?;
                }
                Err(error)
            }
        }
    }
}

/// Pagination: at most `max` items (1-1000, default 100) after the marker `next`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub next: Option<String>,
    pub max: Option<i64>,
}

impl Page {
    pub fn limit(&self) -> Result<i64, AppError> {
        match self.max {
            None => Ok(100),
            Some(n) if (1..=1000).contains(&n) => Ok(n),
            Some(_) => Err(AppError::validation(
                "maxResults",
                "must be between 1 and 1000",
            )),
        }
    }
}

/// A page of results and the marker of the next page, if any.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Paged<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra one only says there is more.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, marker: impl Fn(&T) -> String) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(&marker) } else { None };
        Self { items: rows, next }
    }
}
