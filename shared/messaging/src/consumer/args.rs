//! What a consuming binary takes on its command line (and from the environment): the
//! consumer's tuning, and the `dlq` tool that shares the service's configuration.

use std::time::Duration;

use crate::{consumer::TraceMode, dead_letters::DlqCommand, retry::RetryPolicy};

/// The first retry delay, in milliseconds, when `RETRY_INITIAL_DELAY_MS` is not set: long
/// enough for a restarting database or SMTP server to come back, short enough that a
/// blip delays a mail by a second.
pub const DEFAULT_RETRY_INITIAL_DELAY_MS: u64 = 1_000;

/// Attempts in all when `RETRY_MAX_ATTEMPTS` is not set: with the delay doubled each
/// time, a message is tried for about half a minute before it is dead-lettered.
pub const DEFAULT_RETRY_MAX_ATTEMPTS: u32 = 6;

/// Everything a consuming service adds to its configuration; flatten it into the
/// service's `clap::Parser`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumerArgs {
    /// Prefetch, retry schedule and trace mode.
    #[command(flatten)]
    pub settings: ConsumerSettings,
    /// Without a subcommand the service runs.
    #[command(subcommand)]
    pub command: Option<ConsumerCommand>,
}

/// The consumer's tuning, as flags and variables.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumerSettings {
    /// Messages in flight at once (AMQP prefetch, and handler concurrency). Also the
    /// largest group commit: under load, the deliveries in flight are written together,
    /// so a larger prefetch means fewer, larger transactions (docs/decisions/0010).
    #[arg(long, env = "CONSUMER_PREFETCH", default_value_t = 64)]
    pub prefetch: u16,
    /// Delay before the first retry of a failed message, in milliseconds; doubled for
    /// each further retry.
    #[arg(long, env = "RETRY_INITIAL_DELAY_MS", default_value_t = DEFAULT_RETRY_INITIAL_DELAY_MS)]
    pub retry_initial_delay_ms: u64,
    /// Attempts in all before a message goes to the dead-letter queue.
    #[arg(long, env = "RETRY_MAX_ATTEMPTS", default_value_t = DEFAULT_RETRY_MAX_ATTEMPTS)]
    pub retry_max_attempts: u32,
    /// `child`: processing spans continue the producer's trace; `link`: each starts a new
    /// trace linked to it. Redriven and replayed messages always get a link.
    #[arg(long, env = "CONSUMER_TRACE_MODE", value_enum, default_value_t = TraceMode::Child)]
    pub trace_mode: TraceMode,
    /// Declare the producer's exchanges (`users`, `replay`) if they are missing, so that
    /// a consumer started first on a bare broker can bind its queues. `false` where the
    /// broker's definitions declare them and the service's broker user may not (the
    /// compose stack): declaring needs the right to delete too.
    #[arg(
        long,
        env = "DECLARE_SHARED_EXCHANGES",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub declare_shared_exchanges: bool,
}

impl ConsumerSettings {
    /// The retry schedule these settings describe.
    pub fn retry_policy(&self) -> RetryPolicy {
        retry_policy(self.retry_initial_delay_ms, self.retry_max_attempts)
    }

    /// The retry schedule of a consumer started without retry settings: the delay
    /// queues a default deployment has (`docs/asyncapi.yaml` lists them).
    pub fn default_retry_policy() -> RetryPolicy {
        retry_policy(DEFAULT_RETRY_INITIAL_DELAY_MS, DEFAULT_RETRY_MAX_ATTEMPTS)
    }
}

/// The first delay, doubled for each retry after it, `max_attempts - 1` retries in all.
fn retry_policy(initial_delay_ms: u64, max_attempts: u32) -> RetryPolicy {
    RetryPolicy::exponential(
        Duration::from_millis(initial_delay_ms),
        max_attempts.saturating_sub(1),
    )
}

/// The subcommands of a consumer binary: tools that share the service's configuration
/// instead of running the service.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConsumerCommand {
    /// Inspect or redrive this service's dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
}
