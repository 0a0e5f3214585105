use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    message::BasicGetMessage,
    options::{
        BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable},
};

use crate::defaults;

/// A direct connection to the local broker, for doing what a misbehaving producer would
/// (raw bytes, duplicate ids) and for looking into queues.
#[derive(Debug)]
pub struct Broker {
    connection: Connection,
}

impl Broker {
    /// Connects to the local RabbitMQ.
    pub async fn connect() -> Self {
        let connection = Connection::connect(defaults::AMQP_URL, ConnectionProperties::default())
            .await
            .expect("RabbitMQ runs on 127.0.0.1:5672");
        Self { connection }
    }

    async fn channel(&self) -> Channel {
        self.connection
            .create_channel()
            .await
            .expect("a channel opens")
    }

    /// Publishes `body` with `properties`, waiting for the broker's confirm.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) {
        let channel = self.channel().await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
        let confirm = channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack(), "the broker must accept the test message");
        let _ = channel.close(200, "done".into()).await;
    }

    /// The messages waiting in `queue`, left in place: they are fetched unacked and the
    /// channel is closed, which returns them to the queue.
    pub async fn peek(&self, queue: &str) -> Vec<BasicGetMessage> {
        let channel = self.channel().await;
        let mut messages = Vec::new();
        while let Ok(Some(message)) = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
        {
            messages.push(message);
        }
        let _ = channel.close(200, "done".into()).await;
        messages
    }

    /// Takes every message waiting in `queue` out of it (acked on receipt), as a consumer
    /// that holds on to messages would: a test can publish them again later, out of order.
    pub async fn take(&self, queue: &str) -> Vec<BasicGetMessage> {
        let channel = self.channel().await;
        let mut messages = Vec::new();
        while let Ok(Some(message)) = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
        {
            messages.push(message);
        }
        let _ = channel.close(200, "done".into()).await;
        messages
    }

    /// How many messages are ready in `queue`; 0 if it does not exist.
    pub async fn ready_count(&self, queue: &str) -> u32 {
        let channel = self.channel().await;
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let count = channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .map_or(0, |queue| queue.message_count());
        let _ = channel.close(200, "done".into()).await;
        count
    }

    /// Deletes queues and exchanges, ignoring the ones that do not exist.
    pub async fn delete(&self, queues: &[String], exchanges: &[String]) {
        for queue in queues {
            // A failed delete closes the channel, so each gets its own.
            let channel = self.channel().await;
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
            let _ = channel.close(200, "done".into()).await;
        }
        for exchange in exchanges {
            let channel = self.channel().await;
            let _ = channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
            let _ = channel.close(200, "done".into()).await;
        }
    }
}

/// A header's value as text, for assertions.
pub fn header(message: &BasicGetMessage, name: &str) -> Option<String> {
    let headers = message.delivery.properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(value) => {
            Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
        }
        AMQPValue::LongUInt(value) => Some(value.to_string()),
        AMQPValue::LongInt(value) => Some(value.to_string()),
        AMQPValue::LongLongInt(value) => Some(value.to_string()),
        other => Some(format!("{other:?}")),
    }
}
