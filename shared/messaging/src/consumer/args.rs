//! What a consuming binary takes on its command line (and from the environment): the
//! consumer's tuning, and the `dlq` tool that shares the service's configuration.

use crate::{consumer::TraceMode, dead_letters::DlqCommand, retry::RetryPolicy};

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
    #[arg(long, env = "RETRY_INITIAL_DELAY_MS", default_value_t = 1_000)]
    pub retry_initial_delay_ms: u64,
    /// Attempts in all before a message goes to the dead-letter queue.
    #[arg(long, env = "RETRY_MAX_ATTEMPTS", default_value_t = 6)]
    pub retry_max_attempts: u32,
    /// `child`: processing spans continue the producer's trace; `link`: each starts a new
    /// trace linked to it. Redriven and replayed messages always get a link.
    #[arg(long, env = "CONSUMER_TRACE_MODE", value_enum, default_value_t = TraceMode::Child)]
    pub trace_mode: TraceMode,
}

impl ConsumerSettings {
    /// The retry schedule these settings describe.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::exponential(
            std::time::Duration::from_millis(self.retry_initial_delay_ms),
            self.retry_max_attempts.saturating_sub(1),
        )
    }
}

/// The subcommands of a consumer binary: tools that share the service's configuration
/// instead of running the service.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConsumerCommand {
    /// Inspect or redrive this service's dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
}
