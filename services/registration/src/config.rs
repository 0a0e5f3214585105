use std::{net::SocketAddr, time::Duration};

use clap::Parser;

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
    /// Largest number of open database connections.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
}

impl Config {
    /// The sweep interval as a duration.
    pub fn outbox_sweep_interval(&self) -> Duration {
        Duration::from_millis(self.outbox_sweep_interval_ms)
    }
}
