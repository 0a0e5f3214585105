use std::{net::SocketAddr, time::Duration};

use clap::{Parser, Subcommand};
use messaging::{dead_letters::DlqCommand, retry::RetryPolicy};

/// The profile service's settings. Every one is a flag and an environment variable; the
/// defaults work against a local RabbitMQ and PostgreSQL.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "profile",
    about = "Profile read model built from user.registered events"
)]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8082")]
    pub http_addr: SocketAddr,
    /// This service's own database; created if missing, migrated at start.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/profile"
    )]
    pub database_url: String,
    /// The RabbitMQ broker.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Prefix for the exchange and queue names; tests use it to stay apart.
    #[arg(long, env = "TOPOLOGY_PREFIX", default_value = "")]
    pub topology_prefix: String,
    /// Messages in flight at once (AMQP prefetch, and handler concurrency).
    #[arg(long, env = "CONSUMER_PREFETCH", default_value_t = 16)]
    pub prefetch: u16,
    /// Delay before the first retry of a failed message, in milliseconds; doubled for
    /// each further retry.
    #[arg(long, env = "RETRY_INITIAL_DELAY_MS", default_value_t = 1_000)]
    pub retry_initial_delay_ms: u64,
    /// Attempts in all before a message goes to the dead-letter queue.
    #[arg(long, env = "RETRY_MAX_ATTEMPTS", default_value_t = 6)]
    pub retry_max_attempts: u32,
    /// How long shutdown waits for in-flight messages before giving up, in seconds.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 20)]
    pub shutdown_timeout_secs: u64,
    /// Without a subcommand the service runs.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Tools that share the service's configuration instead of running it.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Inspect or redrive this service's dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

impl Config {
    /// The retry schedule these settings describe.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::exponential(
            Duration::from_millis(self.retry_initial_delay_ms),
            self.retry_max_attempts.saturating_sub(1),
        )
    }
}
