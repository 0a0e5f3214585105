use std::net::SocketAddr;

use clap::Parser;
use messaging::{consumer::ConsumerSettings, dead_letters::ConsumerCommand};

/// The email service's settings. Every one is a flag and an environment variable; the
/// defaults work against a local RabbitMQ, PostgreSQL and an SMTP server on port 1025.
#[derive(Debug, Clone, Parser)]
#[command(name = "email", about = "Sends the welcome mail for each new user")]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8081")]
    pub http_addr: SocketAddr,
    /// This service's own database; created if missing, migrated at start.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/email"
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
    /// The SMTP server: `smtp://host:port` (plain), `smtp://host:port?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465`.
    #[arg(long, env = "SMTP_URL", default_value = "smtp://127.0.0.1:1025")]
    pub smtp_url: String,
    /// The sender of the welcome mail.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "Sign-up demo <welcome@example.org>"
    )]
    pub mail_from: String,
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
