//! One delivery, from decoding to its ack, inside its processing span.

use std::{sync::Arc, time::Instant};

use chrono::Utc;
use events::Event;
use lapin::{Channel, message::Delivery, options::BasicAckOptions};
use opentelemetry::trace::TraceContextExt;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{Handler, TraceMode, forward::Forwarding, metrics, metrics::Disposition};
use crate::{headers::Headers, outcome::HandlerOutcome, retry::RetryPolicy, topology::QueueNames};

/// How long an ack or nack may take before the channel is presumed dead.
pub(super) const ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Everything `process` needs, shared by the concurrent deliveries of one session.
#[derive(Debug)]
pub(super) struct DeliveryContext<H> {
    /// Consumes, and publishes the retry and dead-letter copies (confirm mode).
    pub(super) channel: Channel,
    /// The work, DLQ and delay queue names.
    pub(super) names: QueueNames,
    /// The work queue without prefix: the metrics label and the span name.
    pub(super) queue: &'static str,
    /// When to retry, and when to give up.
    pub(super) retry: RetryPolicy,
    /// Child or link, for the processing span.
    pub(super) trace_mode: TraceMode,
    /// The service's handler.
    pub(super) handler: Arc<H>,
}

impl<H> DeliveryContext<H> {
    /// Handles one delivery inside its own consumer span, continuing the producer's trace.
    pub(super) async fn process<E: Event>(&self, delivery: Delivery)
    where
        H: Handler<E>,
    {
        let headers = Headers::of(delivery.properties.headers().as_ref());
        let attempt = headers.attempt();
        let span = self.span(&delivery, &headers, attempt);
        async {
            let started = Instant::now();
            let disposition = self.handle::<E>(&delivery, &headers, attempt).await;
            metrics::record_delivery(self.queue, disposition, started.elapsed());
        }
        .instrument(span)
        .await;
    }

    /// The `<queue> process` span, a child of the producer's span or (for a resent
    /// message, or in link mode) the root of a new trace linked to it.
    fn span(&self, delivery: &Delivery, headers: &Headers, attempt: u32) -> tracing::Span {
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
        let carried = headers.trace_context();
        if self.trace_mode == TraceMode::Link || headers.is_resent() {
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
        span
    }

    /// Decodes the event, runs the handler and carries out its verdict.
    async fn handle<E: Event>(
        &self,
        delivery: &Delivery,
        headers: &Headers,
        attempt: u32,
    ) -> Disposition
    where
        H: Handler<E>,
    {
        let forwarding = Forwarding {
            channel: &self.channel,
            names: &self.names,
            delivery,
            headers,
        };
        let type_hint = delivery
            .properties
            .kind()
            .as_ref()
            .map(|kind| kind.as_str());
        let envelope = match events::decode::<E>(type_hint, &delivery.data) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::warn!(error = %error, "undecodable message, dead-lettering it");
                return forwarding
                    .dead_letter("permanent", &error.to_string())
                    .await;
            }
        };
        tracing::Span::current().record("event.type", envelope.event_type.as_str());
        let lag = (Utc::now() - envelope.time).as_seconds_f64().max(0.0);
        metrics::record_lag(self.queue, lag);

        match self.handler.handle(envelope).await {
            HandlerOutcome::Done => {
                ack(delivery).await;
                Disposition::Done
            }
            HandlerOutcome::Skipped(skip) => {
                ack(delivery).await;
                metrics::record_skip(self.queue, skip);
                Disposition::Done
            }
            HandlerOutcome::Retry(reason) => {
                forwarding.retry_later(&self.retry, attempt, &reason).await
            }
            HandlerOutcome::Reject(reason) => {
                tracing::warn!(reason = %reason, "handler rejected the event, dead-lettering it");
                forwarding.dead_letter("permanent", &reason).await
            }
        }
    }
}

/// Acks, within [`ACK_TIMEOUT`]. A failed ack is logged, not fatal: the broker redelivers
/// the message and the handler's inbox makes the second delivery change nothing.
pub(super) async fn ack(delivery: &Delivery) {
    match tokio::time::timeout(ACK_TIMEOUT, delivery.ack(BasicAckOptions::default())).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "ack failed; the message will be redelivered")
        }
        Err(_) => tracing::warn!("ack timed out; the message will be redelivered"),
    }
}
