//! The copies a failed message turns into: a retry copy in the delay queue of its attempt,
//! or a dead letter with the reason. The original is acked only once its copy is
//! confirmed, so a failure here may repeat work, never lose it.

use lapin::{BasicProperties, Channel, message::Delivery, options::BasicNackOptions};

use super::{
    delivery::{ACK_TIMEOUT, ack},
    metrics::Disposition,
};
use crate::{
    headers::{self, Headers},
    publisher::publish_raw,
    retry::RetryPolicy,
    topology::QueueNames,
};

/// One failed delivery and where its copies go.
pub(super) struct Forwarding<'a> {
    /// The session's channel, in confirm mode.
    pub(super) channel: &'a Channel,
    /// The consumer's queues.
    pub(super) names: &'a QueueNames,
    /// The message that failed.
    pub(super) delivery: &'a Delivery,
    /// Its headers, as received.
    pub(super) headers: &'a Headers,
}

impl Forwarding<'_> {
    /// Sends a copy to the delay queue for this attempt, then acks the original; or
    /// dead-letters it when the attempts are used up.
    pub(super) async fn retry_later(
        &self,
        retry: &RetryPolicy,
        attempt: u32,
        reason: &str,
    ) -> Disposition {
        let Some(delay) = retry.delay_after(attempt) else {
            let reason = format!("gave up after {attempt} attempts: {reason}");
            tracing::warn!(reason = %reason, "retries exhausted, dead-lettering");
            return self.dead_letter("exhausted", &reason).await;
        };
        tracing::info!(reason = %reason, attempt, retry_in = ?delay, "will retry");
        let mut headers = self.origin_headers();
        headers.set_attempt(attempt + 1);
        headers.set_reason(headers::RETRY_REASON, reason);
        let queue = self.names.delay_queue(delay);
        self.forward(&queue, headers, Disposition::Retried).await
    }

    /// Sends a copy to the dead-letter queue with the reason, then acks the original.
    pub(super) async fn dead_letter(&self, kind: &str, reason: &str) -> Disposition {
        let mut headers = self.origin_headers();
        headers.set_text(headers::DEAD_LETTER_KIND, kind);
        headers.set_reason(headers::DEAD_LETTER_REASON, reason);
        headers.set_attempt(self.headers.attempt());
        self.forward(&self.names.dead_letter, headers, Disposition::DeadLettered)
            .await
    }

    /// The original headers (trace context included) plus where the message came from,
    /// kept from the first failure on so that a redrive knows where to send it back.
    fn origin_headers(&self) -> Headers {
        let mut headers = self.headers.clone();
        headers.set_text_once(headers::ORIGINAL_QUEUE, &self.names.work);
        headers.set_text_once(headers::ORIGINAL_EXCHANGE, self.delivery.exchange.as_str());
        headers.set_text_once(
            headers::ORIGINAL_ROUTING_KEY,
            self.delivery.routing_key.as_str(),
        );
        headers
    }

    /// Publishes a copy (same body and properties, new headers) to `queue` through the
    /// consumer's forwarding exchange ([`crate::topology::QueueNames::forward`]) and acks the original only once the copy is confirmed. If the copy
    /// fails the original goes back to the queue.
    async fn forward(
        &self,
        queue: &str,
        headers: Headers,
        disposition: Disposition,
    ) -> Disposition {
        let delivery = self.delivery;
        let properties: BasicProperties = delivery
            .properties
            .clone()
            .with_headers(headers.into_table());
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map_or_else(String::new, |id| id.to_string());
        match publish_raw(
            self.channel,
            &self.names.forward,
            queue,
            &delivery.data,
            properties,
            &message_id,
        )
        .await
        {
            Ok(()) => {
                ack(delivery).await;
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
}
