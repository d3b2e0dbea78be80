//! The command line. Arguments and their environment equivalents are parsed here, once, into the
//! typed settings of [`crate::config`]; invalid values stop the program with exit code 2.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    BodyLimit, DatabaseTarget, DatabaseUrl, EmbeddedSettings, PublicUrl, ServeSettings, WorkerCount,
};
use crate::startup::{self, StartupError};

/// Sluice: continuous delivery pipelines, CodePipeline-compatible, on PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Log filter, in RUST_LOG syntax (e.g. `debug`, `info,sqlx=warn`).
    #[arg(
        long,
        env = "SLUICE_LOG",
        default_value = "info,sqlx=warn",
        global = true
    )]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the web console, the API and the workers.
    Serve(ServeArgs),
    /// Run workers only (no HTTP): on this machine beside `serve`, or on any other machine that
    /// reaches the same PostgreSQL (DATABASE_URL), master key and artifact directory.
    Worker(WorkerArgs),
    /// Work with stored artifacts.
    #[command(subcommand)]
    Artifacts(ArtifactsCommand),
    /// Apply pending database migrations, then exit. Works whether or not a server is running on
    /// the same data directory.
    Migrate(DatabaseArgs),
    /// Administer users and API tokens directly (works with or without a running server).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Work with the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Work with the keys that seal stored secrets.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Measure the cost of internal operations (see docs/benchmarks.md).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum ArtifactsCommand {
    /// Delete now the artifacts of executions older than the retention (the server does this
    /// hourly), and say how many.
    Expire {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        artifacts: ArtifactArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a user whose password is read from standard input.
    CreateUser {
        #[arg(long, value_name = "NAME")]
        username: String,
        /// Read the password from standard input (its first line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Attach this policy (managed or customer); repeat for more.
        #[arg(long = "policy", value_name = "NAME")]
        policies: Vec<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Set a user's password, read from standard input; ends the user's sessions.
    ResetPassword {
        #[arg(long, value_name = "NAME")]
        username: String,
        /// Read the password from standard input (its first line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Create an API token for a user and print it on standard output (and nothing else there).
    CreateAccessKey {
        #[arg(long, value_name = "NAME")]
        username: String,
        /// Days until the token expires (1-3650); no expiry when omitted.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<i64>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the audit log's hash chain and report the first broken link (exit 1 if any).
    Verify {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a new master key and reseal everything stored under new keys, in one transaction.
    /// Stop every server and worker first. With <data-dir>/master.key the new key replaces it;
    /// with SLUICE_MASTER_KEY the new key is written to --new-key-file for you to deploy.
    Rotate {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Where to write the new master key (required when the key comes from
        /// SLUICE_MASTER_KEY; the file must not exist).
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Time parsing and validating the largest legal pipeline declaration.
    Validate {
        #[arg(long, default_value = "200", value_parser = clap::value_parser!(u16).range(1..=10000))]
        rounds: u16,
    },
    /// Time hashing and verifying a password (argon2id, production parameters).
    Password {
        #[arg(long, default_value = "20", value_parser = clap::value_parser!(u16).range(1..=1000))]
        rounds: u16,
    },
    /// Engine transitions per second next to a bare SKIP LOCKED loop, on a fresh embedded
    /// cluster in a temporary directory.
    Throughput {
        /// Concurrent claimers.
        #[arg(long, default_value = "4", value_parser = clap::value_parser!(u16).range(1..=256))]
        workers: u16,
        /// Seconds per phase.
        #[arg(long, default_value = "10", value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
    },
    /// Time one authorization decision against many attached policies.
    Authorize {
        /// Number of attached policies.
        #[arg(long, default_value = "50", value_parser = clap::value_parser!(u16).range(1..=1000))]
        policies: u16,
        /// Statements per policy.
        #[arg(long, default_value = "20", value_parser = clap::value_parser!(u16).range(1..=30))]
        statements: u16,
        /// Decisions to time.
        #[arg(long, default_value = "2000000", value_parser = clap::value_parser!(u32).range(10_000..))]
        decisions: u32,
    },
}

#[derive(Debug, Args)]
struct DatabaseArgs {
    /// Directory for Sluice's state, including the embedded PostgreSQL cluster.
    #[arg(
        long,
        env = "SLUICE_DATA_DIR",
        default_value = "./sluice-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,

    /// Use this PostgreSQL server instead of the embedded cluster (postgres://user:pass@host/db).
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    database_url: Option<DatabaseUrl>,

    /// Directory holding the PostgreSQL server binaries (initdb, postgres) for the embedded cluster.
    #[arg(long, env = "SLUICE_PG_BIN", value_name = "DIR")]
    pg_bin: Option<PathBuf>,

    /// System user the embedded cluster runs as when Sluice runs as root.
    #[arg(
        long,
        env = "SLUICE_PG_USER",
        default_value = "postgres",
        value_name = "USER"
    )]
    pg_user: String,

    /// The master key that seals stored secrets (base64 of 32 bytes). Prefer the environment
    /// variable; without it the key is generated once into <data-dir>/master.key.
    #[arg(
        long,
        env = "SLUICE_MASTER_KEY",
        value_name = "BASE64",
        hide_env_values = true
    )]
    master_key: Option<String>,
}

impl DatabaseArgs {
    /// The master key: `SLUICE_MASTER_KEY`, or `<data-dir>/master.key` (created on first use).
    fn load_master_key(&self) -> Result<crate::sealing::MasterKey, StartupError> {
        crate::sealing::MasterKey::load_or_create(self.master_key.as_deref(), &self.data_dir)
            .map_err(|e| StartupError::Command(e.to_string()))
    }

    fn into_target(self) -> DatabaseTarget {
        match self.database_url {
            Some(url) => DatabaseTarget::External(Box::new(url)),
            None => DatabaseTarget::Embedded(EmbeddedSettings {
                data_dir: self.data_dir,
                pg_bin: self.pg_bin,
                pg_user: self.pg_user,
            }),
        }
    }
}

/// Where artifacts are kept and for how long.
#[derive(Debug, Args, Clone)]
struct ArtifactArgs {
    /// Where artifacts are kept: a directory (default <data-dir>/artifacts) or an S3-compatible
    /// bucket, s3://bucket/prefix, reached with the usual AWS_* environment variables. Every
    /// server and worker must use the same store.
    #[arg(
        long,
        alias = "artifact-dir",
        env = "SLUICE_ARTIFACT_STORE",
        value_name = "DIR|s3://BUCKET/PREFIX"
    )]
    artifact_store: Option<crate::config::ArtifactLocation>,

    /// The largest artifact an action may produce, in bytes.
    #[arg(long, env = "SLUICE_MAX_ARTIFACT_BYTES", default_value = "1073741824", value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1_048_576..=1_099_511_627_776))]
    max_artifact_bytes: u64,

    /// Days artifacts are kept; after that they are deleted and the execution's page says so.
    #[arg(long, env = "SLUICE_ARTIFACT_RETENTION_DAYS", default_value = "365", value_name = "DAYS",
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    artifact_retention_days: u32,
}

impl ArtifactArgs {
    fn settings(&self, data_dir: &std::path::Path) -> crate::config::ArtifactSettings {
        crate::config::ArtifactSettings {
            location: self.artifact_store.clone().unwrap_or_else(|| {
                crate::config::ArtifactLocation::Directory(data_dir.join("artifacts"))
            }),
            s3: crate::config::S3Options::from_vars(
                std::env::vars_os()
                    .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
            ),
            scratch: data_dir.join("tmp"),
            max_bytes: self.max_artifact_bytes,
            retention_days: self.artifact_retention_days,
        }
    }
}

#[derive(Debug, Args)]
struct WorkerArgs {
    #[command(flatten)]
    database: DatabaseArgs,

    /// Number of workers (1-256).
    #[arg(long, env = "SLUICE_WORKERS", default_value = "4", value_name = "N")]
    workers: WorkerCount,

    #[command(flatten)]
    running: RunningArgs,

    #[command(flatten)]
    artifacts: ArtifactArgs,

    /// Seconds a claimed job's lease lasts without a heartbeat (renewed every third of it): how
    /// soon the job of a worker that died runs again elsewhere.
    #[arg(long, env = "SLUICE_LEASE_SECONDS", default_value = "30", value_name = "SECS",
          value_parser = clap::value_parser!(u32).range(2..=3600))]
    lease_seconds: u32,
}

/// How the processes that run actions behave: `sluice serve` and `sluice worker` share these.
#[derive(Debug, Args)]
struct RunningArgs {
    /// The user build commands run as when Sluice runs as root (never root itself).
    #[arg(long, env = "SLUICE_RUNNER_USER", default_value = crate::providers::DEFAULT_RUNNER_USER, value_name = "USER")]
    runner_user: String,

    /// Labels of this host's workers, comma-separated (`web,eu`; letters, digits, '-', '_', '.',
    /// compared in lowercase): the deployment groups it is in, shown with the workers.
    #[arg(long, env = "SLUICE_LABELS", default_value = "", value_name = "LABELS",
          value_parser = crate::workers::labels::Labels::parse)]
    labels: crate::workers::labels::Labels,

    /// Deploys of this host's workers go inside this directory: a TargetDirectory of /srv/app is
    /// DIR/srv/app (several workers on one machine, each its own host).
    #[arg(long, env = "SLUICE_DEPLOY_ROOT", value_name = "DIR",
          value_parser = absolute_directory)]
    deploy_root: Option<std::path::PathBuf>,

    /// Let webhook actions call loopback, private and link-local addresses (off: whoever edits a
    /// pipeline must not make Sluice call the services on its own network).
    #[arg(long, env = "SLUICE_WEBHOOK_ALLOW_PRIVATE")]
    webhook_allow_private: bool,

    /// Seconds between two looks at the sources polled for changes (PollForSourceChanges); each
    /// repository is asked once per look, however many pipelines watch it.
    #[arg(long, env = "SLUICE_POLL_INTERVAL", default_value = "60", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    poll_interval: u64,

    /// Seconds in-flight requests and running actions get to finish after SIGINT or SIGTERM;
    /// then the jobs of actions still running are given back to the queue.
    #[arg(long, env = "SLUICE_SHUTDOWN_TIMEOUT", default_value = "30", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    shutdown_timeout: u64,
}

impl WorkerArgs {
    fn into_settings(self) -> Result<crate::config::WorkerSettings, StartupError> {
        if self.workers.get() == 0 {
            return Err(StartupError::Command(
                "sluice worker needs at least one worker (--workers 1 or more)".into(),
            ));
        }
        Ok(crate::config::WorkerSettings {
            data_dir: self.database.data_dir.clone(),
            master_key: self
                .database
                .master_key
                .clone()
                .map(crate::config::MasterKeyText::new),
            artifacts: self.artifacts.settings(&self.database.data_dir),
            database: self.database.into_target(),
            workers: self.workers,
            runner_user: self.running.runner_user,
            labels: self.running.labels,
            deploy_root: self.running.deploy_root,
            webhook_allow_private: self.running.webhook_allow_private,
            poll_interval_secs: self.running.poll_interval,
            lease_seconds: self.lease_seconds,
            shutdown_timeout_secs: self.running.shutdown_timeout,
        })
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    database: DatabaseArgs,

    /// Address and port to listen on.
    #[arg(
        long,
        env = "SLUICE_BIND",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    bind: SocketAddr,

    /// The URL users reach Sluice at, when it differs from http://<bind>/ (e.g. behind a proxy).
    #[arg(long, env = "SLUICE_PUBLIC_URL", value_name = "URL")]
    public_url: Option<PublicUrl>,

    /// Number of job workers in this process (0-256; 0 runs the web console and API only).
    #[arg(long, env = "SLUICE_WORKERS", default_value = "4", value_name = "N")]
    workers: WorkerCount,

    #[command(flatten)]
    running: RunningArgs,

    #[command(flatten)]
    artifacts: ArtifactArgs,

    /// Largest request body accepted, in bytes; larger requests get 413.
    #[arg(
        long,
        env = "SLUICE_MAX_BODY_BYTES",
        default_value = "1048576",
        value_name = "BYTES"
    )]
    max_body_bytes: BodyLimit,

    /// A reverse proxy's address range (CIDR; repeatable). Requests from it have their client
    /// address taken from the right-most X-Forwarded-For entry it added; other requests' headers
    /// are ignored.
    #[arg(
        long = "trusted-proxy",
        env = "SLUICE_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    trusted_proxies: Vec<crate::config::ProxyCidr>,

    /// Address ranges (CIDR; repeatable) that may read /metrics without a token; others need an
    /// API token allowed sluice:GetMetrics.
    #[arg(
        long = "metrics-allow",
        env = "SLUICE_METRICS_ALLOW",
        value_delimiter = ',',
        default_value = "127.0.0.1/32,::1/128",
        value_name = "CIDR"
    )]
    metrics_allow: Vec<crate::config::ProxyCidr>,

    /// Days until a new API token expires when its creator does not choose; 0 means never.
    #[arg(long, env = "SLUICE_TOKEN_DEFAULT_EXPIRY_DAYS", default_value = "90", value_name = "DAYS",
          value_parser = clap::value_parser!(u32).range(0..=3650))]
    token_default_expiry_days: u32,

    /// Minutes a console session may stay idle before it ends.
    #[arg(long, env = "SLUICE_SESSION_IDLE_MINUTES", default_value = "30", value_name = "MIN",
          value_parser = clap::value_parser!(u32).range(1..=1440))]
    session_idle_minutes: u32,

    /// Hours a console session may last in all.
    #[arg(long, env = "SLUICE_SESSION_LIFETIME_HOURS", default_value = "12", value_name = "HOURS",
          value_parser = clap::value_parser!(u32).range(1..=720))]
    session_lifetime_hours: u32,
}

impl ServeArgs {
    fn into_settings(self) -> ServeSettings {
        let artifacts = self.artifacts.settings(&self.database.data_dir);
        ServeSettings {
            artifacts,
            data_dir: self.database.data_dir.clone(),
            master_key: self
                .database
                .master_key
                .clone()
                .map(crate::config::MasterKeyText::new),
            token_default_expiry_days: (self.token_default_expiry_days > 0)
                .then_some(i64::from(self.token_default_expiry_days)),
            public_url: self.public_url,
            trusted_proxies: crate::config::TrustedProxies::new(self.trusted_proxies),
            metrics_allow: self.metrics_allow,
            session_idle_minutes: self.session_idle_minutes,
            session_lifetime_hours: self.session_lifetime_hours,
            bind: self.bind,
            database: self.database.into_target(),
            workers: self.workers,
            runner_user: self.running.runner_user,
            labels: self.running.labels,
            deploy_root: self.running.deploy_root,
            webhook_allow_private: self.running.webhook_allow_private,
            poll_interval_secs: self.running.poll_interval,
            body_limit: self.max_body_bytes,
            shutdown_timeout_secs: self.running.shutdown_timeout,
        }
    }
}

/// Parses the command line, runs the command, and turns the outcome into an exit code:
/// 0 success, 2 a problem the operator must fix (settings, environment), 1 anything else.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init(&cli.log);
    match cli.command {
        Command::Bench(BenchCommand::Authorize {
            policies,
            statements,
            decisions,
        }) => {
            crate::bench::authorize_bench(policies.into(), statements.into(), decisions as usize);
            return ExitCode::SUCCESS;
        }
        Command::Bench(BenchCommand::Validate { rounds }) => {
            crate::bench::validate_bench(rounds.into());
            return ExitCode::SUCCESS;
        }
        Command::Bench(BenchCommand::Password { rounds }) => {
            crate::bench::password_bench(rounds.into());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let path_var = std::env::var("PATH").ok();
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => startup::serve(args.into_settings(), path_var.as_deref()).await,
            Command::Worker(args) => startup::work(args.into_settings()?, path_var.as_deref()).await,
            Command::Artifacts(ArtifactsCommand::Expire {
                database,
                artifacts,
            }) => {
                let settings = artifacts.settings(&database.data_dir);
                let key = database.load_master_key()?;
                let n = startup::expire_artifacts(
                    database.into_target(),
                    settings,
                    key,
                    path_var.as_deref(),
                )
                .await?;
                println!("deleted the artifacts of {n} execution(s) past their retention");
                Ok(())
            }
            Command::Migrate(args) => {
                let report = startup::migrate(args.into_target(), path_var.as_deref()).await?;
                println!(
                    "schema up to date: {} migration(s) applied now, {} in all",
                    report.newly_applied, report.total
                );
                Ok(())
            }
            Command::Admin(command) => admin(command, path_var.as_deref()).await,
            Command::Bench(BenchCommand::Throughput { workers, seconds }) => {
                startup::throughput_bench(workers, seconds, path_var.as_deref()).await
            }
            Command::Audit(AuditCommand::Verify { database }) => {
                let key = crate::sealing::MasterKey::load(
                    database.master_key.as_deref(),
                    &database.data_dir,
                )
                .map_err(|e| StartupError::Command(e.to_string()))?;
                let db =
                    startup::CommandDatabase::open(&database.into_target(), path_var.as_deref())
                        .await?;
                let verdict = match startup::open_keys(db.pool(), key, None).await {
                    Ok(keys) => crate::audit::verify(db.pool(), &keys.chain)
                        .await
                        .map_err(|e| StartupError::Command(e.to_string())),
                    Err(e) => Err(e),
                };
                db.close().await;
                let report = verdict?;
                let head = match &report.head {
                    Some((seq, hash)) => format!("head: event #{seq}, hash {hash}"),
                    None => "head: none (the log is empty)".to_string(),
                };
                if report.is_intact() {
                    println!(
                        "audit log intact: {} event(s), every link verified\n{head}\n(record the head elsewhere: only a head recorded earlier shows that newest events were removed)",
                        report.events
                    );
                    Ok(())
                } else {
                    for broken in &report.broken {
                        eprintln!(
                            "audit log broken at event #{} ({}): {}",
                            broken.seq, broken.event_id, broken.reason
                        );
                    }
                    println!("{} event(s) checked\n{head}", report.events);
                    Err(StartupError::Tampered(format!(
                        "{} of {} event(s) do not verify",
                        report.broken.len(),
                        report.events
                    )))
                }
            }
            Command::Keys(KeysCommand::Rotate {
                database,
                new_key_file,
            }) => {
                let from_env = database.master_key.is_some();
                let old = crate::sealing::MasterKey::load(
                    database.master_key.as_deref(),
                    &database.data_dir,
                )
                .map_err(|e| StartupError::Command(e.to_string()))?;
                let destination = match (from_env, new_key_file) {
                    (_, Some(file)) => startup::NewKeyDestination::File(file),
                    (false, None) => startup::NewKeyDestination::ReplaceIn(database.data_dir.clone()),
                    (true, None) => {
                        return Err(StartupError::Command(
                            "the master key comes from SLUICE_MASTER_KEY: name a --new-key-file to write the new one to".into(),
                        ));
                    }
                };
                let report = startup::rotate_keys(
                    database.into_target(),
                    old,
                    destination,
                    path_var.as_deref(),
                )
                .await?;
                println!("{report}");
                Ok(())
            }
            Command::Bench(_) => Ok(()),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::from(err.exit_code())
        }
    }
}

/// Reads a password from standard input: its first line, without the line ending.
/// `--deploy-root`: an absolute path (it need not exist yet; a deploy makes what it needs).
fn absolute_directory(text: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::PathBuf::from(text);
    if !path.is_absolute()
        || path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(format!("{text:?} must be an absolute path without .."));
    }
    Ok(path)
}

fn password_from_stdin() -> Result<String, StartupError> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| {
        StartupError::Command(format!("cannot read the password from standard input: {e}"))
    })?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(StartupError::Command(
            "no password on standard input".into(),
        ));
    }
    Ok(password)
}

async fn admin(command: AdminCommand, path_var: Option<&str>) -> Result<(), StartupError> {
    let (database, run): (DatabaseArgs, AdminRun) = match command {
        AdminCommand::CreateUser {
            username,
            policies,
            database,
            ..
        } => (
            database,
            AdminRun::CreateUser(username, password_from_stdin()?, policies),
        ),
        AdminCommand::ResetPassword {
            username, database, ..
        } => (
            database,
            AdminRun::ResetPassword(username, password_from_stdin()?),
        ),
        AdminCommand::CreateAccessKey {
            username,
            expires_in_days,
            database,
        } => (
            database,
            AdminRun::CreateAccessKey(username, expires_in_days),
        ),
    };
    let key = database.load_master_key()?;
    let db = startup::CommandDatabase::open(&database.into_target(), path_var).await?;
    let result = async {
        startup::prepare_schema(db.pool()).await?;
        let services = db.services(key, None).await?;
        let outcome = match run {
            AdminRun::CreateUser(name, password, policies) => {
                crate::ops::auth::admin_create_user(&services, &name, &password, &policies)
                    .await
                    .map(|()| {
                        eprintln!("user {name} created");
                    })
            }
            AdminRun::ResetPassword(name, password) => {
                crate::ops::auth::admin_reset_password(&services, &name, &password)
                    .await
                    .map(|()| {
                        eprintln!("password of {name} set; their sessions have ended");
                    })
            }
            AdminRun::CreateAccessKey(name, days) => {
                crate::ops::auth::admin_create_access_key(&services, &name, days)
                    .await
                    .map(|token| {
                        println!("{}", token.expose());
                    })
            }
        };
        outcome.map_err(|e| StartupError::Command(e.public_message()))
    }
    .await;
    db.close().await;
    result
}

enum AdminRun {
    CreateUser(String, String, Vec<String>),
    ResetPassword(String, String),
    CreateAccessKey(String, Option<i64>),
}

fn error_chain(err: &StartupError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults() {
        let cli = Cli::try_parse_from(["sluice", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        let settings = args.into_settings();
        assert_eq!(settings.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.public_url, None);
        assert_eq!(settings.session_idle_minutes, 30);
        assert_eq!(settings.session_lifetime_hours, 12);
        assert!(settings.trusted_proxies.is_empty());
        assert_eq!(settings.token_default_expiry_days, Some(90));
        assert_eq!(settings.body_limit, BodyLimit::DEFAULT);
        assert!(
            matches!(settings.database, DatabaseTarget::Embedded(ref e) if e.data_dir.as_path() == std::path::Path::new("./sluice-data"))
        );
    }

    #[test]
    fn invalid_values_name_the_setting() {
        let err = Cli::try_parse_from(["sluice", "serve", "--workers", "257"]).unwrap_err();
        assert!(err.to_string().contains("--workers"), "{err}");
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from(["sluice", "serve", "--bind", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--bind"), "{err}");
    }
}
