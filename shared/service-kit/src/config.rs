//! The settings every service shares, and parsing them with the service's own defaults.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;

use crate::{
    pii::PiiSettings,
    postgres::PoolSettings,
    secrets::{ResolveSecrets, SecretError, put_password_from_file},
};

/// Who a service is: the name of its binary, database and `service.name`, what it does
/// (for `--help` and its OpenAPI document), and the port it listens on by default.
#[derive(Debug, Clone, Copy)]
pub struct ServiceIdentity {
    /// `registration`, `email` or `profile`.
    pub name: &'static str,
    /// What it does, in a sentence: `--help` and the OpenAPI document's description.
    pub about: &'static str,
    /// 8080, 8081 or 8082.
    pub default_port: u16,
}

impl ServiceIdentity {
    /// `name`, `default_port` and the `about` line, in a `static` context.
    pub const fn new(name: &'static str, default_port: u16, about: &'static str) -> Self {
        Self {
            name,
            about,
            default_port,
        }
    }
}

/// The settings every service has; flatten it into the service's `clap::Parser`.
///
/// `HTTP_ADDR` and `DATABASE_URL` get their defaults from the [`ServiceIdentity`] at parse
/// time ([`parse`]), so three services share one definition and `--help` still shows each
/// service its own default.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs {
    /// Address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDR")]
    pub http_addr: SocketAddr,
    /// This service's own database; created if missing, migrated at start.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// A file holding the database password (a Docker or Kubernetes secret); it replaces
    /// the password in `DATABASE_URL`.
    #[arg(long, env = "DATABASE_PASSWORD_FILE")]
    pub database_password_file: Option<PathBuf>,
    /// Largest number of open database connections. Handlers share few of them: writes
    /// go through one group-commit writer at a time, so the rest serve HTTP reads.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// How long a request or a handler waits for a database connection, in milliseconds.
    /// While the database is unreachable the pool keeps trying to connect for this long
    /// before the caller gets an error (a 503, or a retried delivery), so it is also how
    /// long a short outage stays invisible to callers.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT_MS", default_value_t = 5000)]
    pub database_acquire_timeout_ms: u64,
    /// The RabbitMQ broker.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// A file holding the broker password (a Docker or Kubernetes secret); it replaces the
    /// password in `AMQP_URL`.
    #[arg(long, env = "AMQP_PASSWORD_FILE")]
    pub amqp_password_file: Option<PathBuf>,
    /// Prefix for the exchange and queue names; tests use it to stay apart.
    #[arg(long, env = "TOPOLOGY_PREFIX", default_value = "")]
    pub topology_prefix: String,
    /// How long shutdown waits for in-flight work before giving up, in seconds.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 20)]
    pub shutdown_timeout_secs: u64,
    /// The keys that seal the personal data the service stores.
    #[command(flatten)]
    pub pii: PiiSettings,
}

impl ServiceArgs {
    /// The database pool's settings, as configured.
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.database_max_connections,
            acquire_timeout: Duration::from_millis(self.database_acquire_timeout_ms),
        }
    }
}

impl ResolveSecrets for ServiceArgs {
    fn resolve_secrets(&mut self) -> Result<(), SecretError> {
        put_password_from_file(
            &mut self.database_url,
            self.database_password_file.as_deref(),
            "DATABASE_PASSWORD_FILE",
        )?;
        put_password_from_file(
            &mut self.amqp_url,
            self.amqp_password_file.as_deref(),
            "AMQP_PASSWORD_FILE",
        )
    }
}

/// Parses the command line and environment into `C` (which flattens [`ServiceArgs`]),
/// with `identity`'s defaults for the listen address and the database. Exits with clap's
/// message on bad input or `--help`, as a CLI should. Password files are read here
/// ([`ResolveSecrets`]), so the service only ever sees complete URLs; one that cannot be
/// read stops the process with a message naming its variable.
pub fn parse<C: Parser + ResolveSecrets>(identity: ServiceIdentity) -> C {
    let command = C::command()
        .name(identity.name)
        .about(identity.about)
        .mut_arg("http_addr", |arg| {
            arg.required(false)
                .default_value(format!("0.0.0.0:{}", identity.default_port))
        })
        .mut_arg("database_url", |arg| {
            arg.required(false).default_value(format!(
                "postgres://postgres@127.0.0.1:5432/{}",
                identity.name
            ))
        });
    let matches = command.get_matches();
    let mut config = C::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    if let Err(error) = config.resolve_secrets() {
        eprintln!("error: {error}");
        std::process::exit(2);
    }
    config
}
