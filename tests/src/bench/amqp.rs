//! RabbitMQ's limit for this flow's shape, with lapin as the services use it: a
//! persistent, `mandatory` publish confirmed by the broker, to a topic exchange bound to
//! two durable quorum queues, each drained by its own consumer (own connection, prefetch
//! 100, one manual ack per message). A message counts once both queues' consumers have
//! acked it: "fully consumed", as a sign-up's event is.
//!
//! Everything is named with a random prefix and deleted afterwards.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use futures_util::{StreamExt, stream::FuturesUnordered};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use serde::Serialize;
use tokio::time::Instant;

use crate::defaults;

/// The routing key the services use.
const ROUTING_KEY: &str = "user.registered.v1";

/// Unacked deliveries per consumer.
const PREFETCH: u16 = 100;

/// A body of about the size of a `user.registered.v1` envelope.
const BODY_BYTES: usize = 600;

/// One publisher concurrency's result.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AmqpRate {
    /// Publishes awaiting their confirm at most.
    pub in_flight: usize,
    /// Messages published and consumed from both queues.
    pub messages: usize,
    /// Fully consumed messages per second.
    pub per_second: f64,
}

/// Measures each of `levels` (messages in flight) with up to `messages` messages or
/// `time_limit` of publishing, whichever ends first.
pub(super) async fn measure(
    levels: &[usize],
    messages: usize,
    time_limit: Duration,
) -> anyhow::Result<Vec<AmqpRate>> {
    let prefix = format!(
        "bench-{}.",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let exchange = format!("{prefix}users");
    let queues = [format!("{prefix}q1"), format!("{prefix}q2")];
    let connect = || Connection::connect(defaults::AMQP_URL, ConnectionProperties::default());
    let publisher = connect().await.context("RabbitMQ on 127.0.0.1:5672")?;
    let channel = publisher.create_channel().await?;
    let result = async {
        declare(&channel, &exchange, &queues).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut consumers = Vec::new();
        let mut counts = Vec::new();
        for queue in &queues {
            let connection = connect().await?;
            let count = Arc::new(AtomicUsize::new(0));
            counts.push(count.clone());
            consumers.push(tokio::spawn(consume(connection, queue.clone(), count)));
        }
        let mut rates = Vec::new();
        for &in_flight in levels {
            let before = counts.iter().map(|c| c.load(Ordering::Relaxed)).min();
            let started = Instant::now();
            let published = publish(&channel, &exchange, in_flight, messages, time_limit).await?;
            let target = before.unwrap_or(0) + published;
            let drained = Instant::now() + Duration::from_secs(60);
            while counts.iter().any(|c| c.load(Ordering::Relaxed) < target) {
                anyhow::ensure!(Instant::now() < drained, "consumers did not drain");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let seconds = started.elapsed().as_secs_f64();
            rates.push(AmqpRate {
                in_flight,
                messages: published,
                per_second: published as f64 / seconds,
            });
        }
        for consumer in consumers {
            consumer.abort();
        }
        Ok(rates)
    }
    .await;
    for queue in &queues {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
    let _ = publisher.close(200, "done".into()).await;
    result
}

/// The exchange and the two quorum queues bound to it.
async fn declare(channel: &Channel, exchange: &str, queues: &[String]) -> anyhow::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    for queue in queues {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from("quorum")),
        );
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(queue.as_str().into(), options, arguments)
            .await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.into(),
                ROUTING_KEY.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Publishes up to `messages`, keeping `in_flight` unconfirmed at most; returns how
/// many were published (and confirmed) before `time_limit`.
async fn publish(
    channel: &Channel,
    exchange: &str,
    in_flight: usize,
    messages: usize,
    time_limit: Duration,
) -> anyhow::Result<usize> {
    let body = vec![b'x'; BODY_BYTES];
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let deadline = Instant::now() + time_limit;
    let mut pending = FuturesUnordered::new();
    let mut published = 0;
    while published < messages && Instant::now() < deadline {
        while pending.len() >= in_flight.max(1) {
            confirmed(pending.next().await)?;
        }
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(ShortString::from(uuid::Uuid::now_v7().to_string()))
            .with_content_type(ShortString::from("application/cloudevents+json"));
        let confirm = channel
            .basic_publish(
                exchange.into(),
                ROUTING_KEY.into(),
                options,
                &body,
                properties,
            )
            .await?;
        pending.push(confirm);
        published += 1;
    }
    while let Some(confirmation) = pending.next().await {
        confirmed(Some(confirmation))?;
    }
    Ok(published)
}

fn confirmed(confirmation: Option<lapin::Result<lapin::Confirmation>>) -> anyhow::Result<()> {
    match confirmation {
        Some(Ok(lapin::Confirmation::Ack(None))) | None => Ok(()),
        Some(Ok(other)) => anyhow::bail!("the broker did not take a message: {other:?}"),
        Some(Err(error)) => Err(error.into()),
    }
}

/// Acks every delivery of `queue`, one by one, counting them, until aborted.
async fn consume(connection: Connection, queue: String, count: Arc<AtomicUsize>) {
    let Ok(channel) = connection.create_channel().await else {
        return;
    };
    if channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .is_err()
    {
        return;
    }
    let Ok(mut deliveries) = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
    else {
        return;
    };
    while let Some(Ok(delivery)) = deliveries.next().await {
        if delivery.ack(BasicAckOptions::default()).await.is_ok() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
}
