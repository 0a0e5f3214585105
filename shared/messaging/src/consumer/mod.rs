//! The consume loop: one queue, manual acks, a bounded prefetch, and a handler whose
//! verdict becomes an ack, a retry through a delay queue, or a dead letter.
//!
//! # Layout
//! - [`args`]: the settings and the `dlq` subcommand every consuming binary offers.
//! - `session`: one connection's worth of consuming; ends when the connection does.
//! - `delivery`: one message, from decoding to its ack, inside its processing span.
//! - `forward`: the copies a failed message turns into (retry, dead letter).
//! - `metrics`: what the loop counts, described next to where it is counted.
//!
//! # The path of a poison message
//! An undecodable body, or a handler that says [`HandlerOutcome::Reject`], is copied to
//! `<queue>.dlq` with the reason in its headers (`forward::dead_letter`), and the original
//! is acked once the copy is confirmed. A [`HandlerOutcome::Retry`] copies the message to
//! the delay queue of its attempt (`forward::retry_later`); after the last attempt it is
//! dead-lettered as `exhausted`. A message that keeps crashing the consumer before any
//! verdict is moved to the DLQ by the broker itself after the delivery limit (see
//! [`crate::topology`]).

pub mod args;
mod delivery;
mod forward;
mod metrics;
mod session;

use std::{future::Future, sync::Arc};

use events::{Envelope, Event};
use tokio_util::sync::CancellationToken;

use crate::{
    connection::{BrokerStatus, supervise},
    outcome::HandlerOutcome,
    retry::RetryPolicy,
    topology::Topology,
};

/// Does the work for one event type. Implemented by each consuming service.
///
/// The handler sees only decoded events; undecodable messages never reach it. It must be
/// idempotent (the same event may arrive more than once) and it reports its verdict
/// instead of touching the delivery.
pub trait Handler<E: Event>: Send + Sync + 'static {
    /// Applies the event and says what should happen to the message.
    fn handle(&self, event: Envelope<E>) -> impl Future<Output = HandlerOutcome> + Send;
}

/// Where and how a consumer reads.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The broker, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub amqp_url: String,
    /// Names of the exchange and queues (with the test prefix, if any).
    pub topology: Topology,
    /// The work queue's name without prefix, e.g. `email.user-registered`; also the
    /// first word of the processing span's name.
    pub queue: &'static str,
    /// Deliveries in flight at once: the broker stops sending beyond this many unacked
    /// messages, and the loop handles up to this many concurrently.
    pub prefetch: u16,
    /// Backoff schedule for handler retries.
    pub retry: RetryPolicy,
    /// How the processing span relates to the producer's span.
    pub trace_mode: TraceMode,
}

/// How a consumer's processing span relates to the span that published the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TraceMode {
    /// A child of the publish span: one trace from the HTTP request to every consumer.
    /// What the OpenTelemetry messaging conventions allow for single-message processing.
    #[default]
    Child,
    /// A new trace with a link to the publish span: keeps traces short when one event
    /// fans out to many consumers or is processed long after it was sent.
    Link,
}

/// Consumes `E` events from the configured queue until `shutdown` is cancelled.
///
/// Reconnects whenever the broker link fails. On shutdown it stops taking deliveries,
/// lets the ones in flight finish and be acked, and closes the connection; messages that
/// were prefetched but not started go back to the queue.
pub async fn run<E: Event, H: Handler<E>>(
    config: ConsumerConfig,
    handler: Arc<H>,
    status: BrokerStatus,
    shutdown: CancellationToken,
) {
    metrics::describe(config.queue);
    let name = format!("{} consumer", config.queue);
    supervise(&config.amqp_url, &name, &status, &shutdown, |connection| {
        session::run::<E, H>(connection, &config, handler.clone(), &status, &shutdown)
    })
    .await;
}
