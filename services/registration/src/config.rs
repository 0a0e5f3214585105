use std::{net::SocketAddr, time::Duration};

use clap::{Parser, Subcommand};

use crate::replay::ReplayArgs;

/// Registration's settings. Every one is a flag and an environment variable; the defaults
/// work against a local RabbitMQ and PostgreSQL, so `cargo run` needs no setup.
#[derive(Debug, Clone, Parser)]
#[command(name = "registration", about = "Sign-up API and the outbox relay")]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// This service's own database; created if missing, migrated at start.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/registration"
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
    /// Largest number of outbox rows the relay publishes per transaction.
    #[arg(long, env = "OUTBOX_BATCH_SIZE", default_value_t = 100)]
    pub outbox_batch_size: u16,
    /// How often the relay looks for rows whose wake-up it missed, in milliseconds.
    #[arg(long, env = "OUTBOX_SWEEP_INTERVAL_MS", default_value_t = 5_000)]
    pub outbox_sweep_interval_ms: u64,
    /// Requests handled at once; more are answered 503 with Retry-After.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 256)]
    pub max_concurrent_requests: usize,
    /// How long shutdown waits for in-flight work before giving up, in seconds.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 20)]
    pub shutdown_timeout_secs: u64,
    /// How long published events are kept in the event log (for replay), in days.
    #[arg(long, env = "EVENT_LOG_RETENTION_DAYS", default_value_t = 30)]
    pub event_log_retention_days: u64,
    /// How often expired events are purged, in seconds.
    #[arg(long, env = "EVENT_LOG_CLEANUP_INTERVAL_SECS", default_value_t = 3_600)]
    pub event_log_cleanup_interval_secs: u64,
    /// Largest number of open database connections.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// Without a subcommand the service runs.
    #[command(subcommand)]
    pub command: Option<RegistrationCommand>,
}

/// Tools that share the service's configuration instead of running it.
#[derive(Debug, Clone, Subcommand)]
pub enum RegistrationCommand {
    /// Republish logged events to one consumer's queue, e.g. to rebuild a read model.
    Replay(ReplayArgs),
}

impl Config {
    /// The event log's retention as a duration.
    pub fn event_log_retention(&self) -> Duration {
        Duration::from_secs(self.event_log_retention_days.saturating_mul(24 * 3600))
    }

    /// The sweep interval as a duration.
    pub fn outbox_sweep_interval(&self) -> Duration {
        Duration::from_millis(self.outbox_sweep_interval_ms)
    }
}
