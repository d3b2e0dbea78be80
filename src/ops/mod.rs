//! Operations: what a caller can do, shared by the console and the API.
//!
//! Every operation follows one shape, enforced by [`Op::run`] and [`Op::run_on`]: authorize first
//! (a refusal is audited and nothing else happens), do the work in one transaction, and write the
//! audit event of a change in that same transaction; a failed change is rolled back and audited
//! on its own. Work no person started runs as [`Caller::engine`], which is allowed everything and
//! not audited as a person's act.

pub mod approvals;
pub mod audit_log;
pub mod auth;
pub mod buckets;
pub mod connections;
pub mod deployments;
pub mod executions;
pub mod hooks;
pub mod iam;
pub mod keys;
pub mod pipelines;
pub mod tags;
pub mod throttle;
pub mod workers;

use std::sync::Arc;

use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::access::{self, Action, NamedPolicy, PolicyDocument, PolicySet, Principal, Resource};
use crate::audit::{self, Actor, ChainKey};
use crate::clock::Clock;
use crate::db;
use crate::error::AppError;
use crate::identity::PasswordHasher;
use crate::sealing::MasterKey;

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
    /// The root key (from the keyring, opened with the master key; see [`keys`]): seals
    /// every secret before it is stored and wraps the pipelines' data keys.
    pub root_key: Arc<MasterKey>,
    /// Keys the audit chain; kept in the keyring, sealed by the master key, so someone with
    /// only the database cannot recompute the chain.
    pub audit_key: Arc<ChainKey>,
    /// Days until a new API token expires when its creator does not choose (`None`: never).
    pub token_default_expiry_days: Option<i64>,
    /// Pipeline versions already read, as shown (secrets masked). Versions never change, so
    /// entries never go stale; deleting a pipeline leaves unreachable entries until the cache is
    /// emptied when full.
    pub declarations: Arc<pipelines::DeclarationCache>,
    /// Where artifacts are kept (`None`: this process stores none, and actions that produce or
    /// consume artifacts fail saying so).
    pub artifacts: Option<Arc<crate::artifacts::store::ArtifactStore>>,
    /// Who builds run as (`--runner-user`).
    pub runner: crate::providers::Runner,
    /// Where this process's deploys go (`--deploy-root`; `None`: TargetDirectory as it is).
    pub deploy_root: Option<std::path::PathBuf>,
    /// The client webhook actions call their endpoints with (`--webhook-allow-private`).
    pub webhooks: crate::providers::webhook::Client,
    /// How often the leader polls the sources that ask for it (`--poll-interval`).
    pub poll_interval: std::time::Duration,
    /// The URL this server is reached at (`None` for a worker process): registered with its
    /// pool, so that workers elsewhere can link artifacts to it.
    pub public_url: Option<String>,
    /// The largest artifact an action may produce (`--max-artifact-bytes`).
    pub artifact_limit: u64,
    /// How long artifacts are kept (`--artifact-retention-days`).
    pub artifact_retention: time::Duration,
    /// Wakes this process's idle workers when a commit here queued work, without waiting for
    /// the NOTIFY to come back from PostgreSQL (other processes still hear the NOTIFY).
    pub wake: Arc<tokio::sync::Notify>,
}

/// The default lifetime of an API token whose creator does not choose one.
pub const DEFAULT_TOKEN_EXPIRY_DAYS: i64 = 90;

impl Services {
    pub fn new(
        pool: PgPool,
        hasher: PasswordHasher,
        clock: Clock,
        sessions: SessionLimits,
        keys: keys::Keys,
    ) -> Self {
        Self {
            pool,
            hasher,
            clock,
            sessions,
            audit_key: Arc::new(keys.chain),
            root_key: Arc::new(keys.root),
            token_default_expiry_days: Some(DEFAULT_TOKEN_EXPIRY_DAYS),
            declarations: Default::default(),
            artifacts: None,
            runner: crate::providers::runner_named(crate::providers::DEFAULT_RUNNER_USER),
            deploy_root: None,
            webhooks: crate::providers::webhook::Client::new(false),
            public_url: None,
            poll_interval: std::time::Duration::from_secs(60),
            artifact_limit: executions::ARTIFACT_LIMIT,
            artifact_retention: time::Duration::days(executions::ARTIFACT_RETENTION_DAYS),
            wake: Default::default(),
        }
    }

    /// Appends an event in a transaction of its own (refusals, failures, sign-in attempts).
    pub async fn audit_alone(&self, event: audit::Event<'_>) -> Result<(), AppError> {
        audit::record_alone(&self.pool, &self.audit_key, event, self.clock.now()).await?;
        Ok(())
    }
}

/// How the caller authenticated, or which part of Sluice acts when no person does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Session(Uuid),
    Token(Uuid),
    /// An operator at the server's command line (`sluice admin …`) or the first-run set-up:
    /// not authorized by policies, but every change is audited.
    Operator,
    /// The engine or periodic maintenance: not authorized by policies and not audited as a
    /// person's act (the engine records its own execution events).
    Engine,
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

    /// Builds a caller from the policies already loaded for its user. A stored policy that no
    /// longer parses makes the caller refused everything: its Deny statements cannot be known,
    /// and skipping it would widen access.
    pub fn from_attached(
        user_id: Uuid,
        user_name: &str,
        credential: Credential,
        token_policy: Option<&str>,
        actor: Actor,
        attached: Vec<db::policies::AttachedPolicy>,
    ) -> Self {
        let mut policies = Vec::with_capacity(attached.len());
        let mut unreadable = None;
        for p in attached {
            match PolicyDocument::parse(&p.document) {
                Ok(document) => policies.push(NamedPolicy {
                    name: p.policy_name,
                    document: Arc::new(document),
                }),
                Err(e) => {
                    tracing::error!(
                        user = user_name,
                        policy = %p.policy_name,
                        error = %e,
                        "a stored policy no longer parses: the user is refused everything until it is repaired or detached"
                    );
                    unreadable.get_or_insert(p.policy_name);
                }
            }
        }
        let principal = if let Some(policy) = unreadable {
            Principal::unreadable(user_name, policy)
        } else {
            let set = Arc::new(PolicySet::new(policies));
            match token_policy {
                None => Principal::user(user_name, set),
                Some(text) => {
                    // A narrowing policy that no longer parses narrows to nothing.
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
            }
        };
        Self {
            user_id,
            principal,
            credential,
            actor,
        }
    }

    /// An operator at the command line or the first-run set-up (audited; see [`Credential`]).
    pub fn operator(actor: Actor) -> Self {
        let label = actor.user_name.clone().unwrap_or_else(|| "operator".into());
        Self {
            user_id: Uuid::nil(),
            principal: Principal::system(label),
            credential: Credential::Operator,
            actor,
        }
    }

    /// The engine or periodic maintenance (`label`: which part).
    pub fn engine(label: &str) -> Self {
        Self {
            user_id: Uuid::nil(),
            principal: Principal::system(label),
            credential: Credential::Engine,
            actor: Actor {
                user_name: Some(format!("(sluice {label})")),
                ..Actor::default()
            },
        }
    }

    pub fn user_name(&self) -> &str {
        self.principal.user_name()
    }

    /// Whether the caller may do `action` on `resource` (for showing links and buttons).
    pub fn can(&self, action: Action, resource: &Resource) -> bool {
        access::is_allowed(&self.principal, action, resource)
    }

    pub fn session_id(&self) -> Option<Uuid> {
        match self.credential {
            Credential::Session(id) => Some(id),
            _ => None,
        }
    }

    /// Whether what this caller changes is written to the audit log.
    fn audited(&self) -> bool {
        self.credential != Credential::Engine
    }
}

/// Refuses unless the caller may do `action` on `resource`, recording the refusal exactly as an
/// operation would. For pages and checks that are not themselves one operation ("may this
/// caller see the admin section").
pub async fn require(
    services: &Services,
    caller: &Caller,
    action: Action,
    resource: &Resource,
    params: Value,
) -> Result<(), AppError> {
    match access::authorize(&caller.principal, action, resource).into_result() {
        Ok(()) => Ok(()),
        Err(denied) => Err(refuse(services, caller, action, resource, params, denied).await),
    }
}

/// Records a refusal in its own transaction and returns the error to answer with. If the event
/// cannot be written, the answer is an internal error, still a refusal.
async fn refuse(
    services: &Services,
    caller: &Caller,
    action: Action,
    resource: &Resource,
    params: Value,
    denied: Box<access::Denied>,
) -> AppError {
    let recorded = services
        .audit_alone(audit::Event {
            actor: &caller.actor,
            event_name: action.into(),
            resource_arn: Some(resource.to_string()),
            request_parameters: audit::summary(params),
            outcome: "AccessDenied",
            error_message: Some(denied.api_message()),
        })
        .await;
    match recorded {
        Ok(()) => AppError::AccessDenied(denied),
        Err(e) => e,
    }
}

/// Whether an operation changes state (and so is audited when it succeeds or fails) or only
/// reads (audited only when refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Change,
    Read,
}

/// A named entity an operation acts on, looked up before the operation is authorized so that
/// the decision is made on its stored, canonical name (a name sent as `ROOT` is checked as the
/// stored `root`, never as written).
pub trait Named: Sized + Send {
    /// Finds the entity by the name as sent (case-insensitively where names are).
    fn find(
        conn: &mut PgConnection,
        name: &str,
    ) -> impl Future<Output = Result<Option<Self>, sqlx::Error>> + Send;
    /// The resource of the stored entity (its canonical name).
    fn resource(&self) -> Resource;
    /// The resource a missing entity is checked against: the name as sent, so a caller who may
    /// not act on that name learns nothing of whether it exists.
    fn resource_named(name: &str) -> Resource;
    /// The error for a missing entity.
    fn not_found(name: &str) -> AppError;
}

/// One authorized operation in progress. See the module documentation.
pub struct Op<'a> {
    services: &'a Services,
    caller: &'a Caller,
    action: Action,
    resource: Resource,
    params: Value,
    kind: Kind,
    /// Opened once the operation is authorized and prepared.
    conn: Option<OpConnection>,
}

/// A change works in a transaction; a read needs none (one statement at a time is enough, and it
/// saves the BEGIN and COMMIT round trips on every page view).
enum OpConnection {
    Transaction(Transaction<'static, Postgres>),
    Plain(sqlx::pool::PoolConnection<Postgres>),
}

impl OpConnection {
    async fn open(services: &Services, kind: Kind) -> Result<Self, AppError> {
        Ok(match kind {
            Kind::Change => OpConnection::Transaction(services.pool.begin().await?),
            Kind::Read => OpConnection::Plain(services.pool.acquire().await?),
        })
    }

    fn conn(&mut self) -> &mut PgConnection {
        match self {
            OpConnection::Transaction(tx) => tx,
            OpConnection::Plain(conn) => conn,
        }
    }
}

impl<'a> Op<'a> {
    fn new(
        services: &'a Services,
        caller: &'a Caller,
        kind: Kind,
        action: Action,
        resource: Resource,
        params: Value,
    ) -> Self {
        Op {
            services,
            caller,
            action,
            resource,
            params,
            kind,
            conn: None,
        }
    }

    /// Runs an operation on a resource known from the request: authorize (a refusal is audited
    /// and nothing else happens), then `work` in the operation's transaction, then the audit
    /// event of the outcome (see [`Op::finish`]).
    pub async fn run<T>(
        services: &'a Services,
        caller: &'a Caller,
        kind: Kind,
        action: Action,
        resource: Resource,
        params: Value,
        work: impl AsyncFnOnce(&mut Op<'a>) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        Self::run_prepared(
            services,
            caller,
            kind,
            action,
            resource,
            params,
            async || Ok(()),
            async |op, ()| work(op).await,
        )
        .await
    }

    /// Like [`Op::run`], with a `prepare` step between authorization and the transaction, for
    /// slow work that must hold no database connection (password hashing). Its errors are the
    /// operation's and audited as such.
    #[allow(clippy::too_many_arguments)]
    pub async fn run_prepared<P, T>(
        services: &'a Services,
        caller: &'a Caller,
        kind: Kind,
        action: Action,
        resource: Resource,
        params: Value,
        prepare: impl AsyncFnOnce() -> Result<P, AppError>,
        work: impl AsyncFnOnce(&mut Op<'a>, P) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        if let Err(denied) = access::authorize(&caller.principal, action, &resource).into_result() {
            return Err(refuse(services, caller, action, &resource, params, denied).await);
        }
        let mut op = Op::new(services, caller, kind, action, resource, params);
        let result = async {
            let prepared = prepare().await?;
            op.conn = Some(OpConnection::open(services, kind).await?);
            work(&mut op, prepared).await
        }
        .await;
        op.finish(result).await
    }

    /// Runs an operation on a named entity: the entity is loaded first and the operation is
    /// authorized against its stored name ([`Named`]); a missing one is authorized against the
    /// name as sent and then reported missing.
    pub async fn run_on<E: Named, T>(
        services: &'a Services,
        caller: &'a Caller,
        kind: Kind,
        action: Action,
        name: &str,
        params: Value,
        work: impl AsyncFnOnce(&mut Op<'a>, E) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let mut conn = OpConnection::open(services, kind).await?;
        let found = E::find(conn.conn(), name).await?;
        let resource = found
            .as_ref()
            .map_or_else(|| E::resource_named(name), E::resource);
        if let Err(denied) = access::authorize(&caller.principal, action, &resource).into_result() {
            drop(conn);
            return Err(refuse(services, caller, action, &resource, params, denied).await);
        }
        let mut op = Op::new(services, caller, kind, action, resource, params);
        op.conn = Some(conn);
        let result = match found {
            Some(entity) => work(&mut op, entity).await,
            None => Err(E::not_found(name)),
        };
        op.finish(result).await
    }

    /// [`Op::run_on`] with a `prepare` step (see [`Op::run_prepared`]) that sees the entity. The
    /// entity is loaded again inside the transaction, since it may have gone meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub async fn run_on_prepared<E: Named, P, T>(
        services: &'a Services,
        caller: &'a Caller,
        kind: Kind,
        action: Action,
        name: &str,
        params: Value,
        prepare: impl AsyncFnOnce(&E) -> Result<P, AppError>,
        work: impl AsyncFnOnce(&mut Op<'a>, E, P) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let found = {
            let mut conn = services.pool.acquire().await?;
            E::find(&mut conn, name).await?
        };
        let resource = found
            .as_ref()
            .map_or_else(|| E::resource_named(name), E::resource);
        if let Err(denied) = access::authorize(&caller.principal, action, &resource).into_result() {
            return Err(refuse(services, caller, action, &resource, params, denied).await);
        }
        let mut op = Op::new(services, caller, kind, action, resource, params);
        let result = async {
            let entity = found.ok_or_else(|| E::not_found(name))?;
            let prepared = prepare(&entity).await?;
            op.conn = Some(OpConnection::open(services, kind).await?);
            let again = E::find(op.conn(), name)
                .await?
                .filter(|e| e.resource() == op.resource)
                .ok_or_else(|| E::not_found(name))?;
            work(&mut op, again, prepared).await
        }
        .await;
        op.finish(result).await
    }

    /// The operation's transaction (or connection, for a read).
    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("the connection is opened before the work runs")
            .conn()
    }

    pub fn now(&self) -> OffsetDateTime {
        self.services.clock.now()
    }

    pub fn caller(&self) -> &'a Caller {
        self.caller
    }

    pub fn services(&self) -> &'a Services {
        self.services
    }

    /// The resource the operation was authorized on (the canonical one for [`Op::run_on`]).
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// Adds to the parameters the audit event records (what the work learned, such as the id
    /// of what it created).
    pub fn add_audit_param(&mut self, key: &str, value: Value) {
        if let Value::Object(map) = &mut self.params {
            map.insert(key.to_string(), value);
        }
    }

    /// Commits with the success event, or rolls back and records the failure (in a bounded
    /// summary). The success event is the last write before commit: if it cannot be written,
    /// nothing of the change is kept.
    async fn finish<T>(self, result: Result<T, AppError>) -> Result<T, AppError> {
        let now = self.now();
        let audited = self.kind == Kind::Change && self.caller.audited();
        match result {
            Ok(value) => {
                let Some(OpConnection::Transaction(mut tx)) = self.conn else {
                    return Ok(value);
                };
                if audited {
                    audit::record(
                        &mut tx,
                        &self.services.audit_key,
                        audit::Event {
                            actor: &self.caller.actor,
                            event_name: self.action.into(),
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
                if audited && !matches!(error, AppError::Internal(_)) {
                    self.services
                        .audit_alone(audit::Event {
                            actor: &self.caller.actor,
                            event_name: self.action.into(),
                            resource_arn: Some(self.resource.to_string()),
                            request_parameters: audit::summary(self.params),
                            outcome: error.code(),
                            error_message: Some(error.public_message()),
                        })
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
