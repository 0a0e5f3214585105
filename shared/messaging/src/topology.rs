use std::time::Duration;

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};

use crate::{MessagingError, retry::RetryPolicy};

/// The exchange every event is published to.
pub const EXCHANGE: &str = "users";

/// The kind of [`EXCHANGE`]: a topic exchange routes by the event type, so each consumer
/// binds exactly the types it handles and a new type (or version) is a new routing key.
pub const EXCHANGE_KIND: ExchangeKind = ExchangeKind::Topic;

/// After this many deliveries of one message without an ack (the consumer crashed or was
/// killed each time), the broker moves it to the dead-letter queue on its own. A guard
/// against a message that crashes its consumer; our own retries do not count here because
/// each retry is a new message.
pub(crate) const DELIVERY_LIMIT: i64 = 20;

/// Names of the broker objects, with an optional prefix.
///
/// The prefix exists for tests: each test gets its own exchange and queues on the shared
/// broker, so tests run in parallel without seeing each other's messages. Users leave it
/// empty and get the names in the design (`users`, `email.user-registered`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    /// A topology whose names all start with `prefix` (may be empty).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The topic exchange events are published to.
    pub fn exchange(&self) -> String {
        format!("{}{EXCHANGE}", self.prefix)
    }

    /// A consumer's work queue, e.g. `email.user-registered`.
    pub fn queue(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The work, dead-letter and delay queue names of a consumer's queue.
    pub fn queue_names(&self, name: &str) -> QueueNames {
        QueueNames::new(self.queue(name))
    }

    /// Declares the exchange. Idempotent: declaring what exists with the same arguments is
    /// a no-op, so every service does it at start instead of relying on deploy order.
    pub(crate) async fn declare_exchange(&self, channel: &Channel) -> Result<(), MessagingError> {
        channel
            .exchange_declare(
                self.exchange().into(),
                EXCHANGE_KIND,
                exchange_options(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    /// The exchange as the producer and every consumer declare it, for what must agree
    /// with the declaration without a broker (the AsyncAPI document's test,
    /// `docs/asyncapi.yaml`).
    pub fn declared_exchange(&self) -> DeclaredExchange {
        DeclaredExchange {
            name: self.exchange(),
            kind: EXCHANGE_KIND,
            options: exchange_options(),
        }
    }

    /// Declares a consumer's work queue bound to `routing_key`, its dead-letter queue and
    /// one delay queue per retry delay. Returns the names. [`Self::declared_queues`]
    /// lists the same queues for the AsyncAPI document's test: change both together.
    pub(crate) async fn declare_consumer_queues(
        &self,
        channel: &Channel,
        queue: &str,
        routing_key: &str,
        retry: &RetryPolicy,
    ) -> Result<QueueNames, MessagingError> {
        self.declare_exchange(channel).await?;
        let names = self.queue_names(queue);
        declare_quorum(channel, &names.dead_letter, FieldTable::default()).await?;
        declare_quorum(channel, &names.work, work_queue_arguments(&names)).await?;
        channel
            .queue_bind(
                names.work.as_str().into(),
                self.exchange().into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        for delay in retry.delays() {
            let delay_queue = names.delay_queue(*delay);
            declare_quorum(
                channel,
                &delay_queue,
                delay_queue_arguments(&names.work, *delay),
            )
            .await?;
        }
        Ok(names)
    }

    /// Every queue a consumer of `queue` declares at start under `retry`, with its
    /// arguments: the dead-letter queue, the work queue, then one delay queue per delay.
    /// For what must agree with the declarations without a broker: the AsyncAPI
    /// document's test (`docs/asyncapi.yaml`) compares them with the document.
    pub fn declared_queues(&self, queue: &str, retry: &RetryPolicy) -> Vec<DeclaredQueue> {
        let names = self.queue_names(queue);
        let mut queues = vec![
            DeclaredQueue::new(&names.dead_letter, quorum(FieldTable::default())),
            DeclaredQueue::new(&names.work, quorum(work_queue_arguments(&names))),
        ];
        queues.extend(retry.delays().iter().map(|delay| {
            DeclaredQueue::new(
                &names.delay_queue(*delay),
                quorum(delay_queue_arguments(&names.work, *delay)),
            )
        }));
        queues
    }
}

/// The exchange as the topology declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredExchange {
    /// Its name, e.g. `users`.
    pub name: String,
    /// [`EXCHANGE_KIND`].
    pub kind: ExchangeKind,
    /// Durable, not auto-deleted.
    pub options: ExchangeDeclareOptions,
}

/// One queue as the topology declares it, in a form a document can be compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredQueue {
    /// The queue's name.
    pub name: String,
    /// Durable (a quorum queue must be), neither exclusive nor auto-deleted.
    pub options: QueueDeclareOptions,
    /// Its arguments (`x-queue-type`, `x-message-ttl`, …) as (name, JSON value) pairs,
    /// sorted by name: AMQP strings become JSON strings, AMQP integers JSON numbers.
    pub arguments: Vec<(String, serde_json::Value)>,
}

impl DeclaredQueue {
    fn new(name: &str, arguments: FieldTable) -> Self {
        let arguments = arguments
            .inner()
            .iter()
            .map(|(key, value)| (key.to_string(), json_value(value)))
            .collect();
        Self {
            name: name.to_owned(),
            options: queue_options(),
            arguments,
        }
    }
}

/// An argument's value as JSON, for the kinds the topology declares (strings and 64-bit
/// integers); anything else becomes its debug text, which no document will match by
/// accident.
fn json_value(value: &AMQPValue) -> serde_json::Value {
    match value {
        AMQPValue::LongString(text) => {
            serde_json::Value::String(String::from_utf8_lossy(text.as_bytes()).into_owned())
        }
        AMQPValue::LongLongInt(number) => serde_json::Value::from(*number),
        other => serde_json::Value::String(format!("{other:?}")),
    }
}

/// The queues that belong to one consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueNames {
    /// Where the consumer reads from.
    pub work: String,
    /// Where messages that will never succeed wait for a person: `<work>.dlq`.
    pub dead_letter: String,
}

impl QueueNames {
    fn new(work: String) -> Self {
        let dead_letter = format!("{work}.dlq");
        Self { work, dead_letter }
    }

    /// The delay queue for one backoff step, e.g. `email.user-registered.delay.2000ms`.
    /// The delay is in the name because a queue's TTL cannot change once declared: a new
    /// schedule gets new queues instead of a declaration error.
    pub fn delay_queue(&self, delay: Duration) -> String {
        format!("{}.delay.{}ms", self.work, delay.as_millis())
    }
}

/// Quorum queues: replicated on a cluster, durable on a single node, and the queue type
/// RabbitMQ recommends for data that must not be lost.
async fn declare_quorum(
    channel: &Channel,
    name: &str,
    arguments: FieldTable,
) -> Result<(), MessagingError> {
    channel
        .queue_declare(name.into(), queue_options(), quorum(arguments))
        .await?;
    Ok(())
}

/// Every queue survives a broker restart (a quorum queue must be durable) and outlives
/// the connection that declared it.
fn queue_options() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// The exchange survives a broker restart.
fn exchange_options() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

/// `arguments` plus the quorum queue type (see [`declare_quorum`]).
fn quorum(mut arguments: FieldTable) -> FieldTable {
    arguments.insert("x-queue-type".into(), long_string("quorum"));
    arguments
}

/// A message the broker gives up on (see [`DELIVERY_LIMIT`]) goes to the DLQ, not away.
fn work_queue_arguments(names: &QueueNames) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(DELIVERY_LIMIT),
    );
    arguments.insert("x-dead-letter-exchange".into(), long_string(""));
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        long_string(&names.dead_letter),
    );
    arguments
}

/// Messages wait out the TTL, then the broker dead-letters them through the default
/// exchange straight back into the work queue. `at-least-once` dead-lettering (with
/// `reject-publish`, which it requires) keeps a message until the work queue confirmed it.
fn delay_queue_arguments(work_queue: &str, delay: Duration) -> FieldTable {
    let ttl = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    let mut arguments = FieldTable::default();
    arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
    arguments.insert("x-dead-letter-exchange".into(), long_string(""));
    arguments.insert("x-dead-letter-routing-key".into(), long_string(work_queue));
    arguments.insert(
        "x-dead-letter-strategy".into(),
        long_string("at-least-once"),
    );
    arguments.insert("x-overflow".into(), long_string("reject-publish"));
    arguments
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_prefix_the_names_are_the_designs() {
        let topology = Topology::default();
        assert_eq!(topology.exchange(), "users");
        assert_eq!(
            topology.queue("email.user-registered"),
            "email.user-registered"
        );
        let names = QueueNames::new(topology.queue("email.user-registered"));
        assert_eq!(names.dead_letter, "email.user-registered.dlq");
        assert_eq!(
            names.delay_queue(Duration::from_secs(2)),
            "email.user-registered.delay.2000ms"
        );
    }

    #[test]
    fn the_declared_queues_are_the_consumers_queues_with_their_arguments() {
        let topology = Topology::default();
        let retry = RetryPolicy::exponential(Duration::from_secs(1), 2);
        let queues = topology.declared_queues("email.user-registered", &retry);
        let names: Vec<&str> = queues.iter().map(|queue| queue.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "email.user-registered.dlq",
                "email.user-registered",
                "email.user-registered.delay.1000ms",
                "email.user-registered.delay.2000ms",
            ]
        );
        let delay = &queues[3];
        assert!(delay.options.durable && !delay.options.exclusive && !delay.options.auto_delete);
        assert_eq!(
            delay.arguments,
            [
                ("x-dead-letter-exchange", "".into()),
                ("x-dead-letter-routing-key", "email.user-registered".into()),
                ("x-dead-letter-strategy", "at-least-once".into()),
                ("x-message-ttl", 2000.into()),
                ("x-overflow", "reject-publish".into()),
                ("x-queue-type", "quorum".into()),
            ]
            .map(|(name, value): (&str, serde_json::Value)| (name.to_owned(), value))
        );
    }

    #[test]
    fn a_prefix_applies_to_every_name() {
        let topology = Topology::new("t42.");
        assert_eq!(topology.exchange(), "t42.users");
        assert_eq!(
            topology.queue("profile.user-registered"),
            "t42.profile.user-registered"
        );
    }
}
