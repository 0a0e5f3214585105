//! The consume loop: per queue, manual acks, a bounded prefetch, and a handler whose
//! verdict becomes an ack, a retry through a delay queue, or a dead letter. A service's
//! queues (one per event type it handles) share one connection: each connection costs an
//! I/O thread and its frame buffers (about 8 MiB resident with lapin's defaults).
//!
//! # Layout
//! - [`args`]: the settings and the `dlq` subcommand every
//!   consuming binary offers.
//! - `session`: one queue's consuming on the shared connection; ends when the
//!   connection does.
//! - `delivery`: one message, from decoding to its ack, inside its processing span.
//! - `forward`: the copies a failed message turns into (retry, dead letter).
//! - `metrics`: what the loop counts, described next to where it is counted.
//!
//! # The path of a poison message
//! An undecodable body, or a handler that says
//! [`HandlerOutcome::Reject`], is copied to
//! `<queue>.dlq` with the reason in its headers (`forward::dead_letter`), and the original
//! is acked once the copy is confirmed. A
//! [`HandlerOutcome::Retry`] copies the message to
//! the delay queue of its attempt (`forward::retry_later`); after the last attempt it is
//! dead-lettered as `exhausted`. A message that keeps crashing the consumer before any
//! verdict is moved to the DLQ by the broker itself after the delivery limit (see
//! [`crate::topology`]).

pub mod args;
mod delivery;
mod forward;
mod metrics;
mod session;

use std::{future::Future, marker::PhantomData, pin::Pin, sync::Arc};

use events::{Envelope, Event};
use futures_util::future::join_all;
use lapin::Connection;
use tokio_util::sync::CancellationToken;

use crate::{
    MessagingError,
    connection::{BrokerConnection, BrokerStatus, close_for_shutdown, supervise},
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

/// Where and how one queue is consumed.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
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
    /// Whether to declare the producer's exchanges too (see
    /// [`args::ConsumerSettings::declare_shared_exchanges`]).
    pub declare_shared_exchanges: bool,
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

/// One queue to consume and the handler of its event type, as [`run`] takes them.
pub struct QueueConsumer {
    config: ConsumerConfig,
    subscriber: Box<dyn Subscriber>,
}

impl std::fmt::Debug for QueueConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueConsumer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl QueueConsumer {
    /// `handler` handles the `E` events of the queue `config` names.
    pub fn new<E: Event, H: Handler<E>>(config: ConsumerConfig, handler: Arc<H>) -> Self {
        let subscriber = Box::new(Typed::<E, H> {
            handler,
            event: PhantomData,
        });
        Self { config, subscriber }
    }
}

/// A future that borrows what it was made from.
type Borrowing<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A [`QueueConsumer`]'s event type, erased so that consumers of different event types
/// fit in one list: subscribes on a connection and gives back the consuming loop.
trait Subscriber: Send + Sync {
    fn subscribe<'a>(
        &'a self,
        connection: &'a Connection,
        config: &'a ConsumerConfig,
    ) -> Borrowing<'a, Result<Box<dyn Consuming>, MessagingError>>;
}

/// A subscribed queue's consuming loop ([`session::Subscribed::consume`]), type erased.
trait Consuming: Send {
    fn consume<'a>(
        self: Box<Self>,
        connection: &'a Connection,
        prefetch: u16,
        status: &'a BrokerStatus,
        stop: &'a CancellationToken,
    ) -> Borrowing<'a, Result<(), MessagingError>>;
}

/// The handler of one event type, before the type is erased.
struct Typed<E, H> {
    handler: Arc<H>,
    event: PhantomData<fn() -> E>,
}

impl<E: Event, H: Handler<E>> Subscriber for Typed<E, H> {
    fn subscribe<'a>(
        &'a self,
        connection: &'a Connection,
        config: &'a ConsumerConfig,
    ) -> Borrowing<'a, Result<Box<dyn Consuming>, MessagingError>> {
        Box::pin(async move {
            let subscribed =
                session::subscribe::<E, H>(connection, config, self.handler.clone()).await?;
            Ok(Box::new(subscribed) as Box<dyn Consuming>)
        })
    }
}

impl<E: Event, H: Handler<E>> Consuming for session::Subscribed<E, H> {
    fn consume<'a>(
        self: Box<Self>,
        connection: &'a Connection,
        prefetch: u16,
        status: &'a BrokerStatus,
        stop: &'a CancellationToken,
    ) -> Borrowing<'a, Result<(), MessagingError>> {
        Box::pin((*self).consume(connection, prefetch, status, stop))
    }
}

/// Consumes every queue in `consumers` on one connection until `shutdown` is cancelled.
///
/// Reconnects whenever the broker link fails, and then declares and subscribes to every
/// queue again; `status` says connected once all of them are subscribed. On shutdown it
/// stops taking deliveries, lets the ones in flight finish and be acked, and closes the
/// connection; messages that were prefetched but not started go back to their queues.
pub async fn run(
    amqp_url: &str,
    consumers: Vec<QueueConsumer>,
    status: BrokerStatus,
    shutdown: CancellationToken,
) {
    for consumer in &consumers {
        metrics::describe(consumer.config.queue);
    }
    let queues: Vec<&str> = consumers.iter().map(|c| c.config.queue).collect();
    let name = format!("{} consumer", queues.join(", "));
    supervise(amqp_url, &name, &status, &shutdown, |connection| {
        consume_all(connection, &consumers, &status, &shutdown)
    })
    .await;
}

/// One connection's worth of consuming, for every queue. A queue whose consuming fails
/// stops the others (each finishes its deliveries in flight), and the error makes
/// [`supervise`] start over on a new connection.
async fn consume_all(
    connection: BrokerConnection,
    consumers: &[QueueConsumer],
    status: &BrokerStatus,
    shutdown: &CancellationToken,
) -> Result<(), MessagingError> {
    let connection = connection.inner();
    let mut subscribed = Vec::with_capacity(consumers.len());
    for consumer in consumers {
        let consuming = consumer
            .subscriber
            .subscribe(connection, &consumer.config)
            .await?;
        subscribed.push((consumer.config.prefetch, consuming));
    }
    status.set_connected();

    let stop = shutdown.child_token();
    let results = join_all(subscribed.into_iter().map(|(prefetch, consuming)| {
        let stop = &stop;
        async move {
            let result = consuming.consume(connection, prefetch, status, stop).await;
            if result.is_err() {
                stop.cancel();
            }
            result
        }
    }))
    .await;
    if let Some(error) = results.into_iter().find_map(Result::err) {
        return Err(error);
    }
    // Clean stop: in-flight work is finished and acked; close so that the broker requeues
    // what was prefetched but not started.
    close_for_shutdown(connection).await;
    Ok(())
}
