use std::net::SocketAddr;

use clap::Parser;
use messaging::{consumer::ConsumerSettings, dead_letters::ConsumerCommand};

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
    /// Prefetch and retry schedule.
    #[command(flatten)]
    pub consumer: ConsumerSettings,
    /// How long shutdown waits for in-flight messages before giving up, in seconds.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 20)]
    pub shutdown_timeout_secs: u64,
    /// Without a subcommand the service runs.
    #[command(subcommand)]
    pub command: Option<ConsumerCommand>,
}
