//! What the status page and readiness probe read about the database.

use sqlx::PgPool;
use time::OffsetDateTime;

/// One applied schema migration.
#[derive(Debug, Clone)]
pub struct AppliedMigration {
    pub version: i64,
    pub description: String,
    pub installed_on: OffsetDateTime,
}

/// The server's version string, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
pub async fn server_version(pool: &PgPool) -> Result<String, sqlx::Error> {
    let row = sqlx::query!(r#"SELECT current_setting('server_version') AS "version!""#)
        .fetch_one(pool)
        .await?;
    Ok(row.version)
}

/// The migrations applied successfully, oldest first.
pub async fn applied_migrations(pool: &PgPool) -> Result<Vec<AppliedMigration>, sqlx::Error> {
    let rows = sqlx::query_as!(
        AppliedMigration,
        "SELECT version, description, installed_on FROM _sqlx_migrations WHERE success ORDER BY version"
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The versions of the migrations applied successfully.
pub async fn applied_migration_versions(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    // to_regclass lets a database that was never migrated answer "nothing applied" instead of failing.
    let present =
        sqlx::query_scalar!(r#"SELECT to_regclass('_sqlx_migrations') IS NOT NULL AS "present!""#)
            .fetch_one(pool)
            .await?;
    if !present {
        return Ok(Vec::new());
    }
    sqlx::query_scalar!("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
}
