use std::{str::FromStr, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use sqlx::{
    AssertSqlSafe, ConnectOptions, Connection, PgConnection, PgPool,
    migrate::{MigrateError, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// Why the database could not be made ready at start-up.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// `DATABASE_URL` does not parse or names no database.
    #[error("invalid DATABASE_URL: {0}")]
    InvalidUrl(String),
    /// The server could not be reached or refused a statement.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed (or the applied ones differ from the embedded ones).
    #[error("migration failed: {0}")]
    Migrate(#[from] MigrateError),
}

/// Pool settings a service can tune from its configuration.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Upper bound on open connections; also bounds concurrent database work.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout: Duration,
}

/// Makes the service's database ready: creates it if missing, opens the pool and applies
/// the embedded migrations. Retries with backoff for about half a minute, because in
/// `docker compose up` the database may still be starting.
pub async fn connect(
    url: &str,
    migrator: &Migrator,
    settings: PoolSettings,
) -> Result<PgPool, DatabaseError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|error| DatabaseError::InvalidUrl(error.to_string()))?;
    let attempt = || async {
        ensure_database_exists(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await?;
        migrator.run(&pool).await?;
        Ok::<_, DatabaseError>(pool)
    };
    attempt
        .retry(
            ExponentialBuilder::default()
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(10),
        )
        .when(|error| !matches!(error, DatabaseError::InvalidUrl(_)))
        .notify(|error, delay| {
            tracing::warn!(error = %error, retry_in = ?delay, "database not ready yet");
        })
        .await
}

/// Each service owns its database and creates it on first start, so a fresh PostgreSQL
/// needs no setup script.
async fn ensure_database_exists(options: &PgConnectOptions) -> Result<(), DatabaseError> {
    let name = options
        .get_database()
        .ok_or_else(|| DatabaseError::InvalidUrl("no database name in the URL".to_owned()))?
        .to_owned();
    // Without sqlx's statement log: `create database` can take over its one-second "slow
    // statement" threshold on a busy server, which it would report as a WARN at every
    // first start; this function logs what it did itself.
    let admin_options = options
        .clone()
        .database("postgres")
        .disable_statement_logging();
    let mut admin = PgConnection::connect_with(&admin_options).await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let statement = format!("create database {}", quote_identifier(&name));
        match sqlx::query(AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another instance created it between our check and our create.
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42P04") => {}
            Err(error) => return Err(error.into()),
        }
    }
    admin.close().await?;
    Ok(())
}

/// Quotes a PostgreSQL identifier (`"` doubled), so that any database name is safe.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::quote_identifier;

    #[test]
    fn identifiers_are_quoted_and_embedded_quotes_doubled() {
        assert_eq!(quote_identifier("email"), "\"email\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
