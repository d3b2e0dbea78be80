//! Cluster administration for the embedded PostgreSQL: the application role and database.
//!
//! These statements run on the maintenance database as the bootstrap superuser, before the
//! application schema exists, so they use sqlx's unchecked `query` functions with fixed text.

use sqlx::{AssertSqlSafe, PgConnection};

/// Creates the login role `name` and a database of the same name owned by it, if missing.
/// Idempotent, so a first boot that failed half-way is simply retried.
pub async fn ensure_app_role_and_database(
    conn: &mut PgConnection,
    name: &str,
) -> Result<(), sqlx::Error> {
    // Identifiers cannot be bound as parameters; `name` is a constant of ours, quoted anyway.
    let ident = quote_ident(name);
    let role_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
    if !role_exists {
        // The identifier is quoted above; no user input reaches this text.
        sqlx::query(AssertSqlSafe(format!("CREATE ROLE {ident} LOGIN")))
            .execute(&mut *conn)
            .await?;
    }
    let db_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
    if !db_exists {
        sqlx::query(AssertSqlSafe(format!(
            "CREATE DATABASE {ident} OWNER {ident} ENCODING 'UTF8'"
        )))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Quotes an SQL identifier (doubling embedded quotes).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::quote_ident;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("sluice"), "\"sluice\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
