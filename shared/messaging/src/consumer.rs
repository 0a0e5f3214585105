use std::{future::Future, sync::Arc, time::Instant};

use chrono::Utc;
use events::{Envelope, Event};
use futures_util::{StreamExt, future};
use lapin::{
    BasicProperties, Channel, Connection,
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions},
    types::{AMQPValue, FieldTable, LongString},
};
use opentelemetry::trace::TraceContextExt;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    MessagingError,
    connection::{BrokerStatus, supervise},
    headers,
    outcome::HandlerOutcome,
    publisher::{confirm_channel, publish_raw},
    retry::{RetryPolicy, attempt_of},
    topology::{QueueNames, Topology, key},
    trace_context,
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

/// The consumer settings every consuming service exposes, as flags and variables;
/// flattened into each service's configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumerSettings {
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
    describe_metrics(config.queue);
    let name = format!("{} consumer", config.queue);
    supervise(&config.amqp_url, &name, &status, &shutdown, |connection| {
        session::<E, H>(connection, &config, handler.clone(), &status, &shutdown)
    })
    .await;
}

/// HELP texts, and every outcome counter at 0 from the start, so dashboards and `rate()`
/// see the series before the first retry or dead letter ever happens.
fn describe_metrics(queue: &'static str) {
    metrics::describe_counter!(
        "events_consumed_total",
        "Deliveries handled, by queue and outcome (done, retried, dead_lettered, requeued)."
    );
    metrics::describe_histogram!(
        "event_handler_duration_seconds",
        metrics::Unit::Seconds,
        "Time from delivery to ack, per message."
    );
    metrics::describe_histogram!(
        "event_lag_seconds",
        metrics::Unit::Seconds,
        "Now minus the event's time, when a consumer receives it."
    );
    metrics::describe_gauge!("queue_depth_messages", "Messages ready in the work queue.");
    metrics::describe_gauge!(
        "dead_letter_queue_depth_messages",
        "Messages waiting in the dead-letter queue."
    );
    for disposition in [
        Disposition::Done,
        Disposition::Retried,
        Disposition::DeadLettered,
        Disposition::Requeued,
    ] {
        let labels = [("queue", queue), ("outcome", disposition.label())];
        metrics::counter!("events_consumed_total", &labels).increment(0);
    }
}

/// One connection's worth of consuming.
async fn session<E: Event, H: Handler<E>>(
    connection: Connection,
    config: &ConsumerConfig,
    handler: Arc<H>,
    status: &BrokerStatus,
    shutdown: &CancellationToken,
) -> Result<(), MessagingError> {
    // One channel both consumes and publishes (retry and dead-letter copies), in confirm
    // mode so that a copy is known to be safe before the original is acked.
    let channel = confirm_channel(&connection).await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let names = config
        .topology
        .declare_consumer_queues(&channel, config.queue, E::TYPE, &config.retry)
        .await?;
    let options = BasicConsumeOptions {
        // Manual acks: a message is done only when we say so.
        no_ack: false,
        ..BasicConsumeOptions::default()
    };
    let deliveries = channel
        .basic_consume(
            names.work.as_str().into(),
            "".into(),
            options,
            FieldTable::default(),
        )
        .await?;
    status.set_connected();
    tracing::info!(queue = %names.work, prefetch = config.prefetch, "consuming");

    let context = Arc::new(DeliveryContext {
        channel,
        names,
        queue: config.queue,
        retry: config.retry.clone(),
        trace_mode: config.trace_mode,
        handler,
    });
    // A failed delivery stream (the connection died) ends the stream rather than the loop:
    // handlers already running finish (their acks will fail and the broker redelivers,
    // which the inbox absorbs) instead of being dropped half-way through a side effect.
    let failure = std::sync::Mutex::new(None);
    let connection_failure = {
        let processing = deliveries
            .take_until(shutdown.cancelled())
            .scan((), |(), delivery| {
                future::ready(match delivery {
                    Ok(delivery) => Some(delivery),
                    Err(error) => {
                        if let Ok(mut slot) = failure.lock() {
                            *slot = Some(error);
                        }
                        None
                    }
                })
            })
            .for_each_concurrent(usize::from(config.prefetch), |delivery| {
                let context = context.clone();
                async move { context.process::<E>(delivery).await }
            });
        let processing = async {
            tokio::select! {
                () = processing => {}
                () = report_queue_depths(&connection, &context.names, config.queue) => {}
            }
        };
        tokio::pin!(processing);
        tokio::select! {
            () = &mut processing => None,
            error = crate::connection::failed(&connection) => {
                // Normally the delivery stream fails too and the handlers' acks fail fast; but
                // lapin can leave an operation on a dead channel pending, so do not rely on
                // it: report not-ready now, give the handlers in flight a bounded time to
                // finish their side effects, then start over on a new connection. Whatever
                // was not acked is redelivered, and the inbox absorbs it.
                status.set_disconnected();
                if tokio::time::timeout(IN_FLIGHT_GRACE, &mut processing).await.is_err() {
                    tracing::warn!("handlers still running after the connection failed; abandoning them to redelivery");
                }
                Some(error)
            }
        }
    };
    if let Some(error) = connection_failure {
        return Err(error);
    }
    if let Some(error) = failure.into_inner().ok().flatten() {
        return Err(error.into());
    }
    if !shutdown.is_cancelled() {
        // The stream ended without an error and without a shutdown: the broker cancelled
        // the consumer (queue deleted, connection closed). Start over.
        return Err(MessagingError::ConnectionClosed);
    }

    // Clean stop: in-flight work is finished and acked; close so that the broker requeues
    // what was prefetched but not started.
    crate::connection::close_for_shutdown(&connection).await;
    Ok(())
}

/// Every few seconds: messages waiting in the work queue and in its DLQ
/// (`queue_depth_messages{queue}`, `dead_letter_queue_depth_messages{queue}`), read with a
/// passive declare on a channel of its own. Runs until the session ends.
async fn report_queue_depths(connection: &Connection, names: &QueueNames, queue: &'static str) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(5));
    let mut channel = None;
    loop {
        interval.tick().await;
        if channel
            .as_ref()
            .is_none_or(|c: &Channel| !c.status().connected())
        {
            channel = connection.create_channel().await.ok();
        }
        let Some(channel) = &channel else { continue };
        if let Some(depth) = queue_depth(channel, &names.work).await {
            metrics::gauge!("queue_depth_messages", "queue" => queue).set(f64::from(depth));
        }
        if let Some(depth) = queue_depth(channel, &names.dead_letter).await {
            metrics::gauge!("dead_letter_queue_depth_messages", "queue" => queue)
                .set(f64::from(depth));
        }
    }
}

/// Ready messages in `queue`, or `None` if the broker would not say.
async fn queue_depth(channel: &Channel, queue: &str) -> Option<u32> {
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..lapin::options::QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await;
    declared.ok().map(|queue| queue.message_count())
}

/// True for a message sent again by a person (a DLQ redrive or an event-log replay).
fn is_resent(headers: Option<&FieldTable>) -> bool {
    headers.is_some_and(|table| {
        table.inner().contains_key(headers::REDRIVEN_FROM)
            || table.inner().contains_key(headers::REPLAYED)
    })
}

/// How long handlers in flight may keep running after their connection failed.
const IN_FLIGHT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long an ack or nack may take before the channel is presumed dead.
const ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Everything `process` needs, shared by the concurrent deliveries of one session.
struct DeliveryContext<H> {
    channel: Channel,
    names: QueueNames,
    queue: &'static str,
    retry: RetryPolicy,
    trace_mode: TraceMode,
    handler: Arc<H>,
}

/// What happened to a delivery, for the metrics label.
#[derive(Debug, Clone, Copy)]
enum Disposition {
    Done,
    Retried,
    DeadLettered,
    Requeued,
}

impl Disposition {
    fn label(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Retried => "retried",
            Self::DeadLettered => "dead_lettered",
            Self::Requeued => "requeued",
        }
    }
}

impl<H> DeliveryContext<H> {
    /// Handles one delivery inside its own consumer span, continuing the producer's trace.
    async fn process<E: Event>(&self, delivery: Delivery)
    where
        H: Handler<E>,
    {
        let headers = delivery.properties.headers().as_ref();
        let attempt = attempt_of(headers);
        let span = tracing::info_span!(
            "process",
            otel.name = format!("{} process", self.queue),
            otel.kind = "consumer",
            messaging.system = "rabbitmq",
            messaging.operation.type = "process",
            messaging.destination.name = %self.names.work,
            messaging.message.id = delivery.properties.message_id().as_ref().map(|id| id.as_str()),
            messaging.rabbitmq.destination.routing_key = %delivery.routing_key,
            messaging.message.redelivered = delivery.redelivered,
            retry.attempt = attempt,
            event.r#type = Empty,
            trace_id = Empty,
            span_id = Empty,
        );
        let carried = trace_context::extract(headers);
        if self.trace_mode == TraceMode::Link || is_resent(headers) {
            // A new trace that points back to the producer's: what a replay or redrive
            // (hours later, by a person) and the `link` setting ask for.
            span.add_link(carried.span().span_context().clone());
        } else {
            // set_parent must come before the span is entered or its context is read.
            let _ = span.set_parent(carried);
        }
        let span_context = span.context().span().span_context().clone();
        span.record("trace_id", span_context.trace_id().to_string());
        span.record("span_id", span_context.span_id().to_string());

        async {
            let started = Instant::now();
            let disposition = self.handle::<E>(&delivery, attempt).await;
            let labels = [("queue", self.queue), ("outcome", disposition.label())];
            metrics::counter!("events_consumed_total", &labels).increment(1);
            metrics::histogram!("event_handler_duration_seconds", "queue" => self.queue)
                .record(started.elapsed().as_secs_f64());
        }
        .instrument(span)
        .await;
    }

    async fn handle<E: Event>(&self, delivery: &Delivery, attempt: u32) -> Disposition
    where
        H: Handler<E>,
    {
        let type_hint = delivery
            .properties
            .kind()
            .as_ref()
            .map(|kind| kind.as_str());
        let envelope = match events::decode::<E>(type_hint, &delivery.data) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::warn!(error = %error, "undecodable message, dead-lettering it");
                return self
                    .dead_letter(delivery, "permanent", &error.to_string())
                    .await;
            }
        };
        tracing::Span::current().record("event.type", envelope.event_type.as_str());
        let lag = (Utc::now() - envelope.time).as_seconds_f64().max(0.0);
        metrics::histogram!("event_lag_seconds", "queue" => self.queue).record(lag);

        match self.handler.handle(envelope).await {
            HandlerOutcome::Done => {
                self.ack(delivery).await;
                Disposition::Done
            }
            HandlerOutcome::Retry(reason) => self.retry_later(delivery, attempt, &reason).await,
            HandlerOutcome::Reject(reason) => {
                tracing::warn!(reason = %reason, "handler rejected the event, dead-lettering it");
                self.dead_letter(delivery, "permanent", &reason).await
            }
        }
    }

    /// Sends a copy to the delay queue for this attempt, then acks the original; or
    /// dead-letters it when the attempts are used up.
    async fn retry_later(&self, delivery: &Delivery, attempt: u32, reason: &str) -> Disposition {
        let Some(delay) = self.retry.delay_after(attempt) else {
            let reason = format!("gave up after {attempt} attempts: {reason}");
            tracing::warn!(reason = %reason, "retries exhausted, dead-lettering");
            return self.dead_letter(delivery, "exhausted", &reason).await;
        };
        tracing::info!(reason = %reason, attempt, retry_in = ?delay, "will retry");
        let mut headers = forwarded_headers(delivery, &self.names.work);
        headers.insert(key(headers::ATTEMPT), AMQPValue::LongUInt(attempt + 1));
        headers.insert(key(headers::RETRY_REASON), long_string(reason));
        let queue = self.names.delay_queue(delay);
        self.forward(delivery, &queue, headers, Disposition::Retried)
            .await
    }

    /// Sends a copy to the dead-letter queue with the reason, then acks the original.
    async fn dead_letter(&self, delivery: &Delivery, kind: &str, reason: &str) -> Disposition {
        let mut headers = forwarded_headers(delivery, &self.names.work);
        headers.insert(key(headers::DEAD_LETTER_KIND), long_string(kind));
        headers.insert(key(headers::DEAD_LETTER_REASON), long_string(reason));
        headers.insert(
            key(headers::ATTEMPT),
            AMQPValue::LongUInt(attempt_of(delivery.properties.headers().as_ref())),
        );
        let queue = self.names.dead_letter.clone();
        self.forward(delivery, &queue, headers, Disposition::DeadLettered)
            .await
    }

    /// Publishes a copy (same body and properties, new headers) to `queue` through the
    /// default exchange and acks the original only once the copy is confirmed. If the copy
    /// fails the original goes back to the queue: a failure here may repeat work, never
    /// lose it.
    async fn forward(
        &self,
        delivery: &Delivery,
        queue: &str,
        headers: FieldTable,
        disposition: Disposition,
    ) -> Disposition {
        let properties: BasicProperties = delivery.properties.clone().with_headers(headers);
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map_or_else(String::new, |id| id.to_string());
        match publish_raw(
            &self.channel,
            "",
            queue,
            &delivery.data,
            properties,
            &message_id,
        )
        .await
        {
            Ok(()) => {
                self.ack(delivery).await;
                disposition
            }
            Err(error) => {
                tracing::error!(error = %error, queue, "could not forward the message, requeueing it");
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                };
                if !matches!(
                    tokio::time::timeout(ACK_TIMEOUT, delivery.nack(requeue)).await,
                    Ok(Ok(_))
                ) {
                    tracing::warn!("nack failed; the broker will redeliver");
                }
                Disposition::Requeued
            }
        }
    }

    async fn ack(&self, delivery: &Delivery) {
        match tokio::time::timeout(ACK_TIMEOUT, delivery.ack(BasicAckOptions::default())).await {
            Ok(Ok(_)) => {}
            // The channel is gone: the broker redelivers, and the inbox absorbs it.
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "ack failed; the message will be redelivered")
            }
            Err(_) => tracing::warn!("ack timed out; the message will be redelivered"),
        }
    }
}

/// The original headers (trace context included) plus where the message came from, kept
/// from the first failure on so that a redrive knows where to send it back.
fn forwarded_headers(delivery: &Delivery, work_queue: &str) -> FieldTable {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    let mut keep_first = |name: &str, value: &str| {
        if !headers.inner().contains_key(name) {
            headers.insert(key(name), long_string(value));
        }
    };
    keep_first(headers::ORIGINAL_QUEUE, work_queue);
    keep_first(headers::ORIGINAL_EXCHANGE, delivery.exchange.as_str());
    keep_first(headers::ORIGINAL_ROUTING_KEY, delivery.routing_key.as_str());
    headers
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}
