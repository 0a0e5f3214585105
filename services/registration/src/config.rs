use std::time::Duration;

use clap::{Parser, Subcommand};
use service_kit::{
    config::{ServiceArgs, ServiceIdentity},
    secrets::{ResolveSecrets, SecretError},
};

use crate::{http::rate_limit::RateLimitSettings, outbox::replay::ReplayArgs};

/// Registration's name, what it does and its default port.
pub const IDENTITY: ServiceIdentity = ServiceIdentity::new(
    "registration",
    8080,
    "Sign-ups and erasures: writes the user and its `user.registered.v1` event, or erases the user and writes its `user.deleted.v1` event, each in one transaction (transactional outbox).",
);

/// Registration's settings. Every one is a flag and an environment variable; the defaults
/// work against a local RabbitMQ and PostgreSQL, so `cargo run` needs no setup. Parse with
/// `service_kit::config::parse(IDENTITY)`, which fills in the service's own defaults.
#[derive(Debug, Clone, Parser)]
pub struct Config {
    /// Listen address, database, broker, shutdown.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The relay and the event log.
    #[command(flatten)]
    pub outbox: OutboxSettings,
    /// The per-client limit on sign-ups.
    #[command(flatten)]
    pub rate_limit: RateLimitSettings,
    /// Requests handled at once; more are answered 503 with Retry-After.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 256)]
    pub max_concurrent_requests: usize,
    /// How long an `Idempotency-Key` is remembered, in hours.
    #[arg(long, env = "IDEMPOTENCY_KEY_RETENTION_HOURS", default_value_t = 24)]
    pub idempotency_key_retention_hours: u64,
    /// Without a subcommand the service runs.
    #[command(subcommand)]
    pub command: Option<RegistrationCommand>,
}

/// How the relay publishes the outbox, and how long published events stay in it.
#[derive(Debug, Clone, clap::Args)]
pub struct OutboxSettings {
    /// Largest number of outbox rows the relay publishes per transaction.
    #[arg(long, env = "OUTBOX_BATCH_SIZE", default_value_t = 100)]
    pub outbox_batch_size: u16,
    /// How often the relay looks for rows whose wake-up it missed, in milliseconds.
    #[arg(long, env = "OUTBOX_SWEEP_INTERVAL_MS", default_value_t = 5_000)]
    pub outbox_sweep_interval_ms: u64,
    /// How long published events are kept in the event log (for replay), in days.
    #[arg(long, env = "EVENT_LOG_RETENTION_DAYS", default_value_t = 30)]
    pub event_log_retention_days: u64,
    /// How often expired rows (events, idempotency keys) are purged, in seconds.
    #[arg(long, env = "EVENT_LOG_CLEANUP_INTERVAL_SECS", default_value_t = 3_600)]
    pub event_log_cleanup_interval_secs: u64,
}

/// Tools that share the service's configuration instead of running it.
#[derive(Debug, Clone, Subcommand)]
pub enum RegistrationCommand {
    /// Republish logged events to one consumer's queue, e.g. to rebuild a read model.
    Replay(ReplayArgs),
}

impl ResolveSecrets for Config {
    fn resolve_secrets(&mut self) -> Result<(), SecretError> {
        self.service.resolve_secrets()
    }
}

impl Config {
    /// How long an idempotency key is remembered.
    pub fn idempotency_key_retention(&self) -> Duration {
        Duration::from_secs(self.idempotency_key_retention_hours.saturating_mul(3600))
    }
}

impl OutboxSettings {
    /// The event log's retention as a duration.
    pub fn event_log_retention(&self) -> Duration {
        Duration::from_secs(self.event_log_retention_days.saturating_mul(24 * 3600))
    }

    /// The sweep interval as a duration.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.outbox_sweep_interval_ms)
    }

    /// How often the retention cleanup runs.
    pub fn cleanup_interval(&self) -> Duration {
        Duration::from_secs(self.event_log_cleanup_interval_secs)
    }
}
