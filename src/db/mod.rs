//! Persistence. Every SQL statement Sluice runs lives under this module.
//!
//! Functions take a `&PgPool` or `&mut PgConnection` and return plain Rust values; callers never
//! see SQL or rows.

pub mod access_keys;
pub mod approvals;
pub mod audit;
pub mod buckets;
pub mod changes;
pub mod cluster_admin;
pub mod connections;
pub mod deployments;
pub mod events;
pub mod executions;
pub mod groups;
pub mod hooks;
pub mod jobs;
pub mod keyring;
pub mod logs;
pub mod pipelines;
pub mod policies;
pub mod sessions;
pub mod status;
pub mod throttle;
pub mod users;
pub mod workers;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The schema migrations compiled into the binary (`migrations/`).
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Opens a connection pool and checks that the database answers.
pub async fn connect(
    options: PgConnectOptions,
    max_connections: u32,
) -> Result<PgPool, sqlx::Error> {
    pool_options(max_connections).connect_with(options).await
}

/// A second pool to the database `pool` connects to, of at most `max_connections`, that opens
/// its connections only when first asked (so on the runtime of whoever asks first).
pub fn lazy_pool(pool: &PgPool, max_connections: u32) -> PgPool {
    pool_options(max_connections).connect_lazy_with(pool.connect_options().as_ref().clone())
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(300))
}

/// Applies every migration not yet applied. Safe to run concurrently: sqlx takes an advisory lock.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Why the database cannot serve requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// No connection, or the connection failed a trivial query.
    Unreachable,
    /// The schema is behind (or ahead of) this binary.
    MigrationsPending { applied: usize, expected: usize },
}

impl NotReady {
    /// A short reason for operators, safe to show to anyone (no internals).
    pub fn reason(&self) -> String {
        match self {
            NotReady::Unreachable => "database unreachable".into(),
            NotReady::MigrationsPending { applied, expected } => {
                format!("migrations not applied ({applied} of {expected})")
            }
        }
    }
}

/// Whether the database answers and carries exactly the migrations this binary knows.
pub async fn readiness(pool: &PgPool) -> Result<(), NotReady> {
    let applied = status::applied_migration_versions(pool)
        .await
        .map_err(|_| NotReady::Unreachable)?;
    let expected: Vec<i64> = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .collect();
    if expected.iter().all(|v| applied.contains(v)) {
        Ok(())
    } else {
        Err(NotReady::MigrationsPending {
            applied: applied.iter().filter(|v| expected.contains(v)).count(),
            expected: expected.len(),
        })
    }
}

/// Whether an error is a violation of a foreign key (e.g. deleting a policy still attached).
pub fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.code().as_deref() == Some("23503"))
}
