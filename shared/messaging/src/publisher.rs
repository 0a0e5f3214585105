use std::time::Duration;

use lapin::{
    BasicProperties, Channel, Confirmation,
    options::BasicPublishOptions,
    types::{FieldTable, ShortString},
};

use crate::{MessagingError, headers::Headers};

/// How long to wait for the broker's confirm before treating the outcome as unknown.
/// The caller then publishes again later; consumers deduplicate, so "unknown" is safe.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// A message ready to publish: an encoded envelope plus the attributes that are also
/// copied into the AMQP properties, so routing, tracing and inspection work without
/// parsing the body.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// The event id; becomes the AMQP `message_id`.
    pub message_id: String,
    /// The event type; becomes the AMQP `type` property.
    pub event_type: String,
    /// Ties together the messages of one business flow; the aggregate id here.
    pub correlation_id: String,
    /// The producing service; becomes the AMQP `app_id`.
    pub source: String,
    /// Event time in seconds since the epoch; becomes the AMQP `timestamp`.
    pub timestamp: u64,
    /// Headers, including `traceparent`.
    pub headers: Headers,
    /// The JSON envelope.
    pub body: Vec<u8>,
}

impl OutgoingMessage {
    fn properties(&self) -> BasicProperties {
        BasicProperties::default()
            .with_message_id(ShortString::from(self.message_id.as_str()))
            .with_type(ShortString::from(self.event_type.as_str()))
            .with_correlation_id(ShortString::from(self.correlation_id.as_str()))
            .with_app_id(ShortString::from(self.source.as_str()))
            .with_content_type(ShortString::from(events::envelope::STRUCTURED_CONTENT_TYPE))
            .with_timestamp(self.timestamp)
            .with_delivery_mode(PERSISTENT)
            .with_headers(self.headers.clone().into_table())
    }
}

/// Publishes one message and waits for the broker's confirm. The channel must be in
/// confirm mode (see [`confirm_channel`]).
///
/// `Ok` means a queue has the message durably. Every other outcome is an error, and the
/// caller must assume the message was not delivered.
async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    message: &OutgoingMessage,
) -> Result<(), MessagingError> {
    publish_raw(
        channel,
        exchange,
        routing_key,
        &message.body,
        message.properties(),
        &message.message_id,
    )
    .await
}

/// Publishes bytes with ready-made properties and waits for the confirm. Used to forward a
/// received message (to a delay queue, the DLQ, or back to its queue) keeping its properties.
pub(crate) async fn publish_raw(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
    message_id: &str,
) -> Result<(), MessagingError> {
    let options = BasicPublishOptions {
        // Unroutable messages come back instead of vanishing.
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    // One deadline over sending and confirming: on a connection that died mid-way lapin
    // can leave either step pending for ever, and a hung publish must not hang its caller.
    let publish_and_confirm = async {
        let confirm = channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                options,
                body,
                properties,
            )
            .await?;
        confirm.await
    };
    let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, publish_and_confirm)
        .await
        .map_err(|_| MessagingError::ConfirmTimeout {
            message_id: message_id.to_owned(),
            timeout: CONFIRM_TIMEOUT,
        })??;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            Err(MessagingError::Unroutable {
                message_id: message_id.to_owned(),
                reply: returned.reply_text.to_string(),
            })
        }
        Confirmation::Nack(None) | Confirmation::NotRequested => Err(MessagingError::Nacked {
            message_id: message_id.to_owned(),
        }),
    }
}

/// A channel in publisher-confirm mode: every publish through it waits for the broker to
/// take responsibility for the message. Open one with
/// [`crate::connection::BrokerConnection::publisher`].
#[derive(Debug)]
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    pub(crate) async fn open(connection: &lapin::Connection) -> Result<Self, MessagingError> {
        Ok(Self {
            channel: confirm_channel(connection).await?,
        })
    }

    /// Publishes `message` to `exchange` with `routing_key` and waits for the confirm.
    /// `Ok` means a queue has the message durably. Every other outcome is an error, and
    /// the caller must assume the message was not delivered.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        message: &OutgoingMessage,
    ) -> Result<(), MessagingError> {
        publish(&self.channel, exchange, routing_key, message).await
    }

    /// Declares the topology's exchange, which a producer needs before its first publish.
    pub async fn declare_exchange(
        &self,
        topology: &crate::topology::Topology,
    ) -> Result<(), MessagingError> {
        topology.declare_exchange(&self.channel).await
    }

    /// Declares the topology's replay exchange, which the replay tool publishes to.
    pub async fn declare_replay_exchange(
        &self,
        topology: &crate::topology::Topology,
    ) -> Result<(), MessagingError> {
        topology.declare_replay_exchange(&self.channel).await
    }

    /// Fails with the broker's `NOT_FOUND` unless `queue` exists: a tool that sends to one
    /// queue checks first instead of publishing a misspelt name into nowhere.
    pub async fn ensure_queue_exists(&self, queue: &str) -> Result<(), MessagingError> {
        let passive = lapin::options::QueueDeclareOptions {
            passive: true,
            ..lapin::options::QueueDeclareOptions::default()
        };
        self.channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await?;
        Ok(())
    }
}

/// Opens a channel in publisher-confirm mode.
pub(crate) async fn confirm_channel(
    connection: &lapin::Connection,
) -> Result<Channel, MessagingError> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the broker gets besides the body: a structured-mode CloudEvent, persistent,
    /// with the event's id, type, subject and source where AMQP tools look for them.
    #[test]
    fn a_message_is_a_persistent_structured_cloudevent() {
        let message = OutgoingMessage {
            message_id: "019ab4f0-6c2e-7a31-9f1d-3c5e2b7a8d41".to_owned(),
            event_type: "user.registered.v1".to_owned(),
            correlation_id: "019ab4f0-6c2d-7c10-8b2a-6f0e4d9c1a27".to_owned(),
            source: "/registration".to_owned(),
            timestamp: 1_764_097_200,
            headers: Headers::default(),
            body: b"{}".to_vec(),
        };

        let properties = message.properties();

        let text = |value: &Option<ShortString>| value.as_ref().map(ShortString::to_string);
        assert_eq!(
            text(properties.content_type()).as_deref(),
            Some("application/cloudevents+json")
        );
        assert_eq!(*properties.delivery_mode(), Some(PERSISTENT));
        assert_eq!(
            text(properties.message_id()).as_deref(),
            Some("019ab4f0-6c2e-7a31-9f1d-3c5e2b7a8d41")
        );
        assert_eq!(
            text(properties.kind()).as_deref(),
            Some("user.registered.v1")
        );
        assert_eq!(text(properties.app_id()).as_deref(), Some("/registration"));
        assert_eq!(*properties.timestamp(), Some(1_764_097_200));
    }
}
