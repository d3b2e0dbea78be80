//! Wiring: opens the database (starting the embedded cluster when asked), serves HTTP, and shuts
//! down in order: stop accepting, drain in-flight requests, close the pool, stop the cluster.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use sqlx::PgPool;

use crate::clock::Clock;
use crate::config::{
    DatabaseTarget, DatabaseUrl, EmbeddedSettings, PublicUrl, ServeSettings, WorkerSettings,
};
use crate::embedded_pg::{
    ClusterConfig, Durability, EmbeddedError, EmbeddedPostgres, Opened, PgBinaries,
};
use crate::identity::PasswordHasher;
use crate::ops::keys::Keys;
use crate::ops::{Services, SessionLimits};
use crate::sealing::MasterKey;
use crate::web::{self, AppState, DatabaseMode, ServerInfo};

/// Connections the server's pool may hold.
const POOL_SIZE: u32 = 16;

/// Why Sluice could not start or finish a command.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error("cannot connect to the database at {target}")]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Keys(#[from] crate::ops::keys::KeysError),
    #[error("cannot use {location} for artifacts")]
    Artifacts {
        location: String,
        #[source]
        source: crate::artifacts::store::StoreError,
    },
    /// A command could not do what was asked (the message says why).
    #[error("{0}")]
    Command(String),
    /// `sluice audit verify` found a broken link.
    #[error("{0}")]
    Tampered(String),
}

impl StartupError {
    /// 2 for what the operator must fix (settings, environment, a busy port or directory),
    /// 1 for failures at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Serve(_) | StartupError::Tampered(_) => 1,
            _ => 2,
        }
    }
}

/// The open database: a pool, and the embedded cluster behind it when this process runs one.
pub struct Database {
    pool: PgPool,
    cluster: Option<EmbeddedPostgres>,
    mode: DatabaseMode,
}

impl Database {
    /// Starts the embedded cluster (for [`DatabaseTarget::Embedded`]) or connects to the external
    /// server, then applies pending migrations.
    pub async fn open(
        target: &DatabaseTarget,
        path_var: Option<&str>,
    ) -> Result<Self, StartupError> {
        let (cluster, url, mode) = match target {
            DatabaseTarget::Embedded(settings) => {
                let cluster = EmbeddedPostgres::start(cluster_config(settings, path_var)?).await?;
                let url = DatabaseUrl::from(cluster.app_connect_options());
                (Some(cluster), url, DatabaseMode::Embedded)
            }
            DatabaseTarget::External(url) => (None, (**url).clone(), DatabaseMode::External),
        };
        let db = match crate::db::connect(url.connect_options(), POOL_SIZE).await {
            Ok(pool) => Self {
                pool,
                cluster,
                mode,
            },
            Err(source) => {
                if let Some(cluster) = cluster {
                    cluster.stop().await;
                }
                return Err(StartupError::Connect {
                    target: url.to_string(),
                    source,
                });
            }
        };
        if let Err(e) = prepare_schema(&db.pool).await {
            db.close().await;
            return Err(e);
        }
        Ok(db)
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, then stops the embedded cluster if this process runs one.
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(cluster) = self.cluster {
            cluster.stop().await;
        }
    }
}

fn cluster_config(
    settings: &EmbeddedSettings,
    path_var: Option<&str>,
) -> Result<ClusterConfig, StartupError> {
    Ok(ClusterConfig {
        data_dir: settings.data_dir.clone(),
        binaries: PgBinaries::locate(settings.pg_bin.as_deref(), path_var)?,
        pg_user: settings.pg_user.clone(),
        durability: Durability::Durable,
    })
}

/// The HTTP server, bound and ready to run.
pub struct Application {
    server: Server,
    /// The live console's streams, ended first at shutdown (they never finish by themselves).
    live: crate::web::live::Hub,
    addr: SocketAddr,
    public_url: PublicUrl,
    /// For the maintenance loop and the worker pool that run beside the server.
    services: Services,
    pool: crate::workers::PoolSettings,
    labels: crate::workers::labels::Labels,
    shutdown_timeout: std::time::Duration,
}

impl Application {
    /// Binds the listener and builds the server. Nothing is served until [`Self::run_until_stopped`].
    pub fn build(
        settings: &ServeSettings,
        pool: PgPool,
        database_mode: DatabaseMode,
        clock: Clock,
        keys: Keys,
    ) -> Result<Self, StartupError> {
        let bind_err = |source| StartupError::Bind {
            addr: settings.bind,
            source,
        };
        let listener = TcpListener::bind(settings.bind).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| PublicUrl::for_bind_address(addr));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut services = Services::new(
            pool,
            PasswordHasher::new(cores),
            clock,
            SessionLimits {
                idle: time::Duration::minutes(settings.session_idle_minutes.into()),
                absolute: time::Duration::hours(settings.session_lifetime_hours.into()),
            },
            keys,
        );
        services.token_default_expiry_days = settings.token_default_expiry_days;
        services.runner = crate::providers::runner_named(&settings.runner_user);
        services.deploy_root = settings.deploy_root.clone();
        services.webhooks = crate::providers::webhook::Client::new(settings.webhook_allow_private);
        services.public_url = Some(public_url.as_str().trim_end_matches('/').to_string());
        services.poll_interval = std::time::Duration::from_secs(settings.poll_interval_secs);
        if settings.workers.get() > 0
            && let Err(why) = &services.runner
        {
            return Err(StartupError::Command(why.clone()));
        }
        apply_artifact_settings(&mut services, &settings.artifacts)?;
        let live = crate::web::live::Hub::new();
        let state = AppState::new(
            services.clone(),
            ServerInfo {
                database_mode,
                workers: settings.workers,
                public_url: public_url.clone(),
                trusted_proxies: settings.trusted_proxies.clone(),
                metrics_allow: settings.metrics_allow.clone(),
            },
            live.clone(),
        );
        let server = web::server(listener, state, settings).map_err(bind_err)?;
        Ok(Self {
            server,
            live,
            addr,
            public_url,
            services,
            pool: crate::workers::PoolSettings {
                workers: settings.workers.get(),
                ..Default::default()
            },
            labels: settings.labels.clone(),
            shutdown_timeout: std::time::Duration::from_secs(settings.shutdown_timeout_secs),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL users reach this server at.
    pub fn public_url(&self) -> &PublicUrl {
        &self.public_url
    }

    /// A handle to stop the server from elsewhere.
    pub fn handle(&self) -> StopHandle {
        StopHandle {
            server: self.server.handle(),
            live: self.live.clone(),
        }
    }

    /// Serves until SIGINT/SIGTERM or until stopped through a [`ServerHandle`], with periodic
    /// maintenance and the worker pool alongside. Shutdown is graceful and ordered: HTTP drains
    /// first (in-flight requests finish), then the workers stop claiming and finish (or give
    /// back) what they run, all within the shutdown timeout.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.live.start(&self.services)?;
        let workers = crate::workers::WorkerPool::start(self.services, self.pool, self.labels);
        let stopper = StopHandle {
            server: self.server.handle(),
            live: self.live.clone(),
        };
        // Signals are ours (the server's own handling is off): live streams end first, or
        // the graceful drain would wait the whole shutdown timeout for them.
        let on_signal = tokio::spawn(async move {
            stop_signal().await;
            tracing::info!("stopping: live streams end, then HTTP drains");
            stopper.stop(true).await;
        });
        let served = self.server.await;
        on_signal.abort();
        workers.shutdown(self.shutdown_timeout).await;
        served
    }
}

/// Stops a running [`Application`]: its live streams first, then HTTP.
#[derive(Clone)]
pub struct StopHandle {
    server: ServerHandle,
    live: crate::web::live::Hub,
}

impl StopHandle {
    pub async fn stop(&self, graceful: bool) {
        self.live.shutdown();
        self.server.stop(graceful).await;
    }
}

/// Brings a database to what this binary expects: migrations applied, managed policies current.
pub async fn prepare_schema(pool: &PgPool) -> Result<(), StartupError> {
    crate::db::migrate(pool)
        .await
        .map_err(StartupError::Migrate)?;
    let managed: Vec<(&str, &str, &str)> = crate::access::managed::all()
        .iter()
        .map(|p| (p.name, p.description, p.document.source()))
        .collect();
    crate::db::policies::sync_managed(pool, &managed)
        .await
        .map_err(|e| StartupError::Migrate(e.into()))
}

/// `sluice serve`.
pub async fn serve(settings: ServeSettings, path_var: Option<&str>) -> Result<(), StartupError> {
    let master_key = MasterKey::load_or_create(
        settings.master_key.as_ref().map(|k| k.expose()),
        &settings.data_dir,
    )
    .map_err(|e| StartupError::Command(e.to_string()))?;
    check_artifact_store(&settings.artifacts).await?;
    let db = Database::open(&settings.database, path_var).await?;
    let keys = match open_keys(
        db.pool(),
        master_key,
        settings
            .master_key
            .is_none()
            .then_some(settings.data_dir.as_path()),
    )
    .await
    {
        Ok(keys) => keys,
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };
    let app = match Application::build(
        &settings,
        db.pool().clone(),
        db.mode,
        Clock::default(),
        keys,
    ) {
        Ok(app) => app,
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };
    tracing::info!(
        "listening on http://{} (public URL {})",
        app.local_addr(),
        app.public_url().as_str()
    );
    let served = app.run_until_stopped().await;
    tracing::info!("HTTP server stopped; shutting down the database");
    db.close().await;
    served.map_err(StartupError::Serve)
}

/// The keys, opened with the master key. With a key file (`key_dir`), a `master.key.next` beside
/// it that opens them instead is a rotation that committed and stopped before its key file was
/// moved into place: it is moved now.
pub async fn open_keys(
    pool: &PgPool,
    master: MasterKey,
    key_dir: Option<&std::path::Path>,
) -> Result<Keys, StartupError> {
    let now = time::OffsetDateTime::now_utc();
    match crate::ops::keys::load(pool, &master, now).await {
        Err(crate::ops::keys::KeysError::WrongMasterKey(id)) => {
            let next = key_dir.map(|d| (d.join(NEXT_KEY_FILE), d.join("master.key")));
            let Some((next, current)) = next.filter(|(n, _)| n.exists()) else {
                return Err(crate::ops::keys::KeysError::WrongMasterKey(id).into());
            };
            let text = std::fs::read_to_string(&next).map_err(|e| {
                StartupError::Command(format!("cannot read {}: {e}", next.display()))
            })?;
            let candidate = MasterKey::from_base64(&text).ok_or_else(|| {
                StartupError::Command(format!("{} is not a master key", next.display()))
            })?;
            let keys = crate::ops::keys::load(pool, &candidate, now).await?;
            std::fs::rename(&next, &current).map_err(|e| {
                StartupError::Command(format!("cannot move {} into place: {e}", next.display()))
            })?;
            tracing::warn!(
                "finished an interrupted key rotation: {} is now the master key",
                current.display()
            );
            Ok(keys)
        }
        other => Ok(other?),
    }
}

/// Where `sluice keys rotate` writes the new master key before the database commits to it.
pub const NEXT_KEY_FILE: &str = "master.key.next";

/// What `sluice migrate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied by this run.
    pub newly_applied: usize,
    /// Migrations the schema carries now.
    pub total: usize,
}

/// A database opened for a one-off command: attached to a running server's embedded cluster,
/// a cluster started for the command, or an external server.
pub struct CommandDatabase {
    pool: PgPool,
    cluster: Option<EmbeddedPostgres>,
    /// A running server owns the data directory; its cluster is borrowed.
    attached: bool,
}

impl CommandDatabase {
    pub async fn open(
        target: &DatabaseTarget,
        path_var: Option<&str>,
    ) -> Result<Self, StartupError> {
        Self::open_sized(target, path_var, 2).await
    }

    /// As [`Self::open`], with a pool of up to `connections`.
    pub async fn open_sized(
        target: &DatabaseTarget,
        path_var: Option<&str>,
        connections: u32,
    ) -> Result<Self, StartupError> {
        let connect = |url| connect(url, connections);
        let settings = match target {
            DatabaseTarget::External(url) => {
                return Ok(Self {
                    pool: connect(url).await?,
                    cluster: None,
                    attached: false,
                });
            }
            DatabaseTarget::Embedded(settings) => settings,
        };
        match EmbeddedPostgres::start_or_attach(cluster_config(settings, path_var)?).await? {
            Opened::Started(cluster) => {
                let url = DatabaseUrl::from(cluster.app_connect_options());
                match connect(&url).await {
                    Ok(pool) => Ok(Self {
                        pool,
                        cluster: Some(cluster),
                        attached: false,
                    }),
                    Err(e) => {
                        cluster.stop().await;
                        Err(e)
                    }
                }
            }
            Opened::Attached(options) => {
                tracing::info!("a running Sluice owns this data directory; using its cluster");
                Ok(Self {
                    pool: connect(&DatabaseUrl::from(*options)).await?,
                    cluster: None,
                    attached: true,
                })
            }
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Services for operations run from the command line, with the keys the master key opens
    /// (`key_dir`: where its key file is, for [`open_keys`]).
    pub async fn services(
        &self,
        master_key: MasterKey,
        key_dir: Option<&std::path::Path>,
    ) -> Result<Services, StartupError> {
        let keys = open_keys(&self.pool, master_key, key_dir).await?;
        Ok(Services::new(
            self.pool.clone(),
            PasswordHasher::new(1),
            Clock::default(),
            SessionLimits::default(),
            keys,
        ))
    }

    pub async fn close(self) {
        self.pool.close().await;
        if let Some(cluster) = self.cluster {
            cluster.stop().await;
        }
    }
}

/// `sluice migrate`: applies pending migrations. With an embedded data directory it attaches to a
/// running server's cluster, or starts the cluster just for the command.
pub async fn migrate(
    target: DatabaseTarget,
    path_var: Option<&str>,
) -> Result<MigrationReport, StartupError> {
    let db = CommandDatabase::open(&target, path_var).await?;
    let report = migrate_pool(db.pool()).await;
    db.close().await;
    report
}

async fn migrate_pool(pool: &PgPool) -> Result<MigrationReport, StartupError> {
    let count = || async {
        crate::db::status::applied_migration_versions(pool)
            .await
            .map(|v| v.len())
            .map_err(|source| StartupError::Migrate(source.into()))
    };
    let before = count().await?;
    crate::db::migrate(pool)
        .await
        .map_err(StartupError::Migrate)?;
    let total = count().await?;
    Ok(MigrationReport {
        newly_applied: total.saturating_sub(before),
        total,
    })
}

async fn connect(url: &DatabaseUrl, connections: u32) -> Result<PgPool, StartupError> {
    crate::db::connect(url.connect_options(), connections)
        .await
        .map_err(|source| StartupError::Connect {
            target: url.to_string(),
            source,
        })
}

/// `sluice worker`: a worker pool with no HTTP, on this machine or any other that reaches the
/// same database and artifact store. It stops on SIGINT or SIGTERM: no new claims, running
/// actions get `shutdown_timeout` to finish, then their jobs are given back.
pub async fn work(settings: WorkerSettings, path_var: Option<&str>) -> Result<(), StartupError> {
    let master_key = MasterKey::load(
        settings.master_key.as_ref().map(|k| k.expose()),
        &settings.data_dir,
    )
    .map_err(|e| {
        StartupError::Command(format!(
            "{e}; a worker needs the server's master key (SLUICE_MASTER_KEY, or master.key in --data-dir)"
        ))
    })?;
    let runner = crate::providers::runner_named(&settings.runner_user);
    if let Err(why) = &runner {
        return Err(StartupError::Command(why.clone()));
    }
    check_artifact_store(&settings.artifacts).await?;
    let connections = 4 + 2 * u32::from(settings.workers.get());
    let db = CommandDatabase::open_sized(&settings.database, path_var, connections).await?;
    if let Err(e) = prepare_schema(db.pool()).await {
        db.close().await;
        return Err(e);
    }
    let key_dir = settings
        .master_key
        .is_none()
        .then_some(settings.data_dir.as_path());
    let mut services = match db.services(master_key, key_dir).await {
        Ok(services) => services,
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };
    if let Err(e) = apply_artifact_settings(&mut services, &settings.artifacts) {
        db.close().await;
        return Err(e);
    }
    services.runner = runner;
    services.deploy_root = settings.deploy_root.clone();
    services.webhooks = crate::providers::webhook::Client::new(settings.webhook_allow_private);
    services.poll_interval = std::time::Duration::from_secs(settings.poll_interval_secs);
    let pool = crate::workers::WorkerPool::start(
        services,
        crate::workers::PoolSettings {
            workers: settings.workers.get(),
            kind: crate::workers::PoolKind::Worker,
            lease: time::Duration::seconds(i64::from(settings.lease_seconds)),
            ..Default::default()
        },
        settings.labels.clone(),
    );
    tracing::info!(
        workers = settings.workers.get(),
        host = %crate::workers::hostname(),
        labels = %settings.labels,
        "worker pool running; SIGINT or SIGTERM stops it"
    );
    stop_signal().await;
    tracing::info!("stopping: no new claims; running actions may finish");
    pool.shutdown(std::time::Duration::from_secs(
        settings.shutdown_timeout_secs,
    ))
    .await;
    db.close().await;
    Ok(())
}

/// Waits for SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The artifact store, its size limit and retention, into the services.
fn apply_artifact_settings(
    services: &mut Services,
    settings: &crate::config::ArtifactSettings,
) -> Result<(), StartupError> {
    services.artifacts = Some(Arc::new(open_artifact_store(settings)?));
    services.artifact_limit = settings.max_bytes;
    services.artifact_retention = time::Duration::days(i64::from(settings.retention_days));
    Ok(())
}

fn open_artifact_store(
    settings: &crate::config::ArtifactSettings,
) -> Result<crate::artifacts::store::ArtifactStore, StartupError> {
    crate::artifacts::store::ArtifactStore::open(
        &settings.location,
        &settings.s3,
        &settings.scratch,
    )
    .map_err(|source| StartupError::Artifacts {
        location: settings.location.to_string(),
        source,
    })
}

/// Reaches the artifact store once before anything starts, so a wrong bucket, endpoint or
/// credentials stop the start with a clear message rather than fail the first action.
async fn check_artifact_store(
    settings: &crate::config::ArtifactSettings,
) -> Result<(), StartupError> {
    open_artifact_store(settings)?
        .check()
        .await
        .map_err(|source| StartupError::Artifacts {
            location: settings.location.to_string(),
            source,
        })
}

/// Where `sluice keys rotate` puts the new master key.
#[derive(Debug, Clone)]
pub enum NewKeyDestination {
    /// `<dir>/master.key` is replaced (through `master.key.next`, see [`open_keys`]).
    ReplaceIn(std::path::PathBuf),
    /// A new file, for an operator who keeps the key in `SLUICE_MASTER_KEY`.
    File(std::path::PathBuf),
}

/// `sluice keys rotate`: refuses while any server or worker runs (they hold the old keys),
/// writes the new master key to a new file, reseals everything in one transaction, then moves
/// the key file into place. Interrupted after the commit, the next start finishes the move; any
/// failure before it leaves everything as it was (the new file is removed).
pub async fn rotate_keys(
    target: DatabaseTarget,
    old: MasterKey,
    destination: NewKeyDestination,
    path_var: Option<&str>,
) -> Result<String, StartupError> {
    let db = CommandDatabase::open(&target, path_var).await?;
    let result = async {
        if db.attached {
            return Err(StartupError::Command(
                "a Sluice server runs on this data directory: stop it (and every worker) before rotating keys".into(),
            ));
        }
        prepare_schema(db.pool()).await?;
        let now = time::OffsetDateTime::now_utc();
        let mut conn = db.pool().acquire().await.map_err(|e| StartupError::Command(e.to_string()))?;
        let running: Vec<String> = crate::db::workers::recent(&mut conn, now - time::Duration::seconds(30))
            .await
            .map_err(|e| StartupError::Command(e.to_string()))?
            .into_iter()
            .filter(|p| p.stopped_at.is_none())
            .map(|p| format!("{} (pid {}) on {}", p.kind, p.pid, p.host))
            .collect();
        drop(conn);
        if !running.is_empty() {
            return Err(StartupError::Command(format!(
                "stop every server and worker before rotating keys (they hold the old keys): {} still running (a process killed outright counts for 30 s after its last heartbeat)",
                running.join(", ")
            )));
        }
        // The current keys must open before anything is written.
        open_keys(db.pool(), old.clone(), None).await?;
        let new = MasterKey::generate();
        let file = match &destination {
            NewKeyDestination::ReplaceIn(dir) => dir.join(NEXT_KEY_FILE),
            NewKeyDestination::File(file) => file.clone(),
        };
        new.write_new_file(&file).map_err(|e| {
            StartupError::Command(format!(
                "cannot write the new master key to {}: {e}{}",
                file.display(),
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    " (a file is already there: an earlier rotation may be unfinished; start the server once to finish it, or remove the file)"
                } else {
                    ""
                }
            ))
        })?;
        let rotation = match crate::ops::keys::rotate(db.pool(), &old, &new, now).await {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&file);
                return Err(e.into());
            }
        };
        let counts = format!(
            "resealed {} pipeline secret(s), {} pipeline data key(s), {} connection token(s), {} token(s) waiting to be shown; root key {} replaced by {}",
            rotation.pipeline_secrets,
            rotation.data_keys,
            rotation.connection_tokens,
            rotation.token_reveals,
            rotation.old_root,
            rotation.new_root
        );
        Ok(match destination {
            NewKeyDestination::ReplaceIn(dir) => {
                let current = dir.join("master.key");
                std::fs::rename(&file, &current).map_err(|e| {
                    StartupError::Command(format!(
                        "the keys were rotated, but {} could not replace {}: {e}; the next start finishes this",
                        file.display(),
                        current.display()
                    ))
                })?;
                format!("{counts}
the new master key {} is in {}", new.id(), current.display())
            }
            NewKeyDestination::File(file) => format!(
                "{counts}
the new master key {} is in {}: set SLUICE_MASTER_KEY to its content on every server and worker before starting them (the old key opens nothing now)",
                new.id(),
                file.display()
            ),
        })
    }
    .await;
    db.close().await;
    result
}

/// `sluice artifacts expire`: the retention task, now.
pub async fn expire_artifacts(
    target: DatabaseTarget,
    settings: crate::config::ArtifactSettings,
    master_key: MasterKey,
    path_var: Option<&str>,
) -> Result<usize, StartupError> {
    let db = CommandDatabase::open(&target, path_var).await?;
    let result = async {
        let mut services = db.services(master_key, None).await?;
        apply_artifact_settings(&mut services, &settings)?;
        Ok(crate::workers::leader::expire_all(&services).await)
    }
    .await;
    db.close().await;
    result
}

/// `sluice bench throughput`: a fresh embedded cluster in a temporary directory, then the
/// benchmark (see `bench::throughput_bench`).
pub async fn throughput_bench(
    workers: u16,
    seconds: u64,
    path_var: Option<&str>,
) -> Result<(), StartupError> {
    let dir = tempfile::Builder::new()
        .prefix("sluice-bench-")
        .tempdir()
        .map_err(|e| StartupError::Command(format!("cannot make a temporary directory: {e}")))?;
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .map_err(|e| StartupError::Command(e.to_string()))?;
    let target = DatabaseTarget::Embedded(EmbeddedSettings {
        data_dir: dir.path().join("data"),
        pg_bin: None,
        pg_user: "postgres".into(),
    });
    let db = CommandDatabase::open_sized(&target, path_var, 4 + 2 * u32::from(workers)).await?;
    if let Err(e) = prepare_schema(db.pool()).await {
        db.close().await;
        return Err(e);
    }
    let services = match db.services(MasterKey::from_bytes([7; 32]), None).await {
        Ok(services) => services,
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };
    println!(
        "machine: {} cores; {workers} claimers, {seconds} s per phase",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let result = crate::bench::throughput_bench(services, usize::from(workers), seconds).await;
    db.close().await;
    result.map_err(|e| StartupError::Command(e.to_string()))
}
