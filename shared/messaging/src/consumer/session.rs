//! One queue's consuming on one connection: declare the queues and subscribe
//! ([`subscribe`]), then hand each delivery to `delivery` ([`Subscribed::consume`]) until
//! the connection fails or the consumer is stopped. The consumers of one service share the
//! connection (`super::run`).

use std::{
    marker::PhantomData,
    sync::{Arc, Mutex},
    time::Duration,
};

use events::Event;
use futures_util::{StreamExt, future};
use lapin::{
    Channel, Connection,
    options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions},
    types::FieldTable,
};
use tokio_util::sync::CancellationToken;

use super::{ConsumerConfig, Handler, delivery::DeliveryContext, metrics};
use crate::{MessagingError, connection::BrokerStatus, publisher::confirm_channel};

/// How long handlers in flight may keep running after their connection failed.
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(5);

/// How often the queue depth gauges are sampled.
const DEPTH_INTERVAL: Duration = Duration::from_secs(5);

/// One queue, subscribed on a connection: its delivery context and its delivery stream.
pub(super) struct Subscribed<E, H> {
    context: Arc<DeliveryContext<H>>,
    deliveries: lapin::Consumer,
    event: PhantomData<fn() -> E>,
}

/// Declares the queue's topology on a channel of `connection` and subscribes to its work
/// queue: once this returns, the broker delivers to us.
pub(super) async fn subscribe<E: Event, H: Handler<E>>(
    connection: &Connection,
    config: &ConsumerConfig,
    handler: Arc<H>,
) -> Result<Subscribed<E, H>, MessagingError> {
    let context = Arc::new(subscribe_context::<E, H>(connection, config, handler).await?);
    let deliveries = context.subscribe().await?;
    tracing::info!(queue = %context.names.work, prefetch = config.prefetch, "consuming");
    Ok(Subscribed {
        context,
        deliveries,
        event: PhantomData,
    })
}

impl<E: Event, H: Handler<E>> Subscribed<E, H> {
    /// Consumes until the connection fails (an error: the caller starts over on a new
    /// connection) or `stop` fires (`Ok` once the deliveries in flight are acked). Closing
    /// the connection is the caller's: other queues may still be using it.
    pub(super) async fn consume(
        self,
        connection: &Connection,
        prefetch: u16,
        status: &BrokerStatus,
        stop: &CancellationToken,
    ) -> Result<(), MessagingError> {
        let Self {
            context,
            deliveries,
            ..
        } = self;
        // A failed delivery stream (the connection died) ends the stream rather than the loop:
        // handlers already running finish (their acks will fail and the broker redelivers,
        // which the inbox absorbs) instead of being dropped half-way through a side effect.
        let stream_failure = Mutex::new(None);
        let depth_channel = Mutex::new(None);
        let connection_failure = {
            let processing = deliveries
                .take_until(stop.cancelled())
                .scan((), |(), delivery| {
                    future::ready(match delivery {
                        Ok(delivery) => Some(delivery),
                        Err(error) => {
                            if let Ok(mut slot) = stream_failure.lock() {
                                *slot = Some(error);
                            }
                            None
                        }
                    })
                })
                .for_each_concurrent(usize::from(prefetch), |delivery| {
                    let context = context.clone();
                    async move { context.process::<E>(delivery).await }
                });
            let processing = async {
                tokio::select! {
                    () = processing => {}
                    () = report_queue_depths(connection, &context, &depth_channel) => {}
                }
            };
            tokio::pin!(processing);
            tokio::select! {
                () = &mut processing => None,
                error = crate::connection::failed(connection) => {
                    // Normally the delivery stream fails too and the handlers' acks fail fast;
                    // but lapin can leave an operation on a dead channel pending, so do not rely
                    // on it: report not-ready now, give the handlers in flight a bounded time to
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
        if let Some(error) = stream_failure.into_inner().ok().flatten() {
            return Err(error.into());
        }
        if !stop.is_cancelled() {
            // The stream ended without an error and without a stop: the broker cancelled
            // the consumer (queue deleted, connection closed). Start over.
            return Err(MessagingError::ConnectionClosed);
        }
        // Clean stop: in-flight work is finished and acked. Closing the channel hands what
        // was prefetched but not started back to the queue.
        let depth_channel = depth_channel.into_inner().ok().flatten();
        if let Some(channel) = depth_channel {
            close_channel(&channel).await;
        }
        close_channel(&context.channel).await;
        Ok(())
    }
}

/// Opens the session's channel and declares the consumer's queues.
///
/// One channel both consumes and publishes (retry and dead-letter copies), in confirm
/// mode so that a copy is known to be safe before the original is acked.
async fn subscribe_context<E: Event, H: Handler<E>>(
    connection: &Connection,
    config: &ConsumerConfig,
    handler: Arc<H>,
) -> Result<DeliveryContext<H>, MessagingError> {
    let channel = confirm_channel(connection).await?;
    channel
        .basic_qos(config.prefetch, per_consumer_qos())
        .await?;
    let names = config
        .topology
        .declare_consumer_queues(
            &channel,
            config.queue,
            E::TYPE,
            &config.retry,
            config.declare_shared_exchanges,
        )
        .await?;
    Ok(DeliveryContext {
        channel,
        names,
        queue: config.queue,
        retry: config.retry.clone(),
        trace_mode: config.trace_mode,
        handler,
    })
}

/// The prefetch applies to each consumer on the channel, not to the channel as a whole:
/// RabbitMQ 4 deprecates global QoS (quorum queues never supported it).
fn per_consumer_qos() -> BasicQosOptions {
    BasicQosOptions { global: false }
}

impl<H> DeliveryContext<H> {
    /// Starts the subscription on the work queue.
    async fn subscribe(&self) -> Result<lapin::Consumer, MessagingError> {
        let options = BasicConsumeOptions {
            // Manual acks: a message is done only when we say so.
            no_ack: false,
            ..BasicConsumeOptions::default()
        };
        Ok(self
            .channel
            .basic_consume(
                self.names.work.as_str().into(),
                "".into(),
                options,
                FieldTable::default(),
            )
            .await?)
    }
}

/// Every few seconds: messages waiting in the work queue and in its DLQ, read with a
/// passive declare on a channel of its own, kept in `slot` so that a clean stop can close
/// it. Runs until the session ends.
async fn report_queue_depths<H>(
    connection: &Connection,
    context: &DeliveryContext<H>,
    slot: &Mutex<Option<Channel>>,
) {
    let mut interval = tokio::time::interval(DEPTH_INTERVAL);
    loop {
        interval.tick().await;
        let open = slot
            .lock()
            .ok()
            .and_then(|slot| slot.clone())
            .filter(|channel| channel.status().connected());
        let channel = match open {
            Some(channel) => channel,
            // None yet, or the broker closed it (a passive declare of a missing queue).
            None => match connection.create_channel().await {
                Ok(channel) => {
                    if let Ok(mut slot) = slot.lock() {
                        *slot = Some(channel.clone());
                    }
                    channel
                }
                Err(_) => continue,
            },
        };
        let work = queue_depth(&channel, &context.names.work).await;
        let dead_letter = queue_depth(&channel, &context.names.dead_letter).await;
        metrics::record_depths(context.queue, work, dead_letter);
    }
}

/// Closes a channel at a clean stop and waits for the broker's answer. A channel left to
/// close itself when dropped would still be closing when the connection closes, which
/// lapin reports as a connection error (`invalid channel state: Closing`): an `ERROR` line
/// in every clean shutdown. Best effort otherwise, like the connection's close.
async fn close_channel(channel: &Channel) {
    if !channel.status().connected() {
        return;
    }
    if let Err(error) = channel.close(200, "consumer stopped".into()).await {
        tracing::debug!(error = %error, "channel was already closing");
    }
}

/// Ready messages in `queue`, or `None` if the broker would not say.
async fn queue_depth(channel: &Channel, queue: &str) -> Option<u32> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await;
    declared.ok().map(|queue| queue.message_count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefetch_is_per_consumer_as_rabbitmq_4_wants() {
        assert!(!per_consumer_qos().global);
    }
}
