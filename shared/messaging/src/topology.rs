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

/// The direct exchange registration's `replay` tool publishes to: each consumer binds its
/// work queue with the queue's own name as routing key, so a replay reaches exactly one
/// consumer, and the publisher needs no right on the default exchange (which would let it
/// write into every queue).
pub const REPLAY_EXCHANGE: &str = "replay";

/// Names of the broker objects, with an optional prefix.
///
/// The prefix exists for tests: each test gets its own exchanges and queues on the shared
/// broker, so tests run in parallel without seeing each other's messages. Users leave it
/// empty and get the names in the design (`users`, `email.user-registered`, …).
///
/// What a consumer declares is listed by [`Self::declared_queues`],
/// [`Self::declared_consumer_exchanges`] and [`Self::declared_bindings`], and declared
/// from those same lists: the broker definitions (`deploy/rabbitmq/definitions.json`) and
/// the AsyncAPI document are checked against them.
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

    /// The prefix every name starts with (empty outside tests).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The topic exchange events are published to.
    pub fn exchange(&self) -> String {
        format!("{}{EXCHANGE}", self.prefix)
    }

    /// The exchange replayed events are published to ([`REPLAY_EXCHANGE`]).
    pub fn replay_exchange(&self) -> String {
        format!("{}{REPLAY_EXCHANGE}", self.prefix)
    }

    /// A consumer's work queue, e.g. `email.user-registered`.
    pub fn queue(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The work, dead-letter and delay queue names of a consumer's queue, and its
    /// forwarding exchange.
    pub fn queue_names(&self, name: &str) -> QueueNames {
        QueueNames::new(self.queue(name))
    }

    /// Declares the events exchange, as its producer. Idempotent: declaring what exists
    /// with the same arguments is a no-op, so the producer does it at start instead of
    /// relying on deploy order.
    pub(crate) async fn declare_exchange(&self, channel: &Channel) -> Result<(), MessagingError> {
        declare(channel, &self.declared_exchange()).await
    }

    /// Declares the replay exchange, as the replay tool (its publisher).
    pub(crate) async fn declare_replay_exchange(
        &self,
        channel: &Channel,
    ) -> Result<(), MessagingError> {
        declare(channel, &self.declared_replay_exchange()).await
    }

    /// The events exchange as its producer declares it.
    pub fn declared_exchange(&self) -> DeclaredExchange {
        DeclaredExchange::new(self.exchange(), EXCHANGE_KIND)
    }

    /// The replay exchange as the replay tool declares it.
    pub fn declared_replay_exchange(&self) -> DeclaredExchange {
        DeclaredExchange::new(self.replay_exchange(), ExchangeKind::Direct)
    }

    /// The exchanges a consumer of `queue` needs: the events exchange and the replay
    /// exchange (which it binds to, and may declare, see
    /// [`Self::declare_consumer_queues`]), then its own forwarding exchange.
    pub fn declared_consumer_exchanges(&self, queue: &str) -> Vec<DeclaredExchange> {
        vec![
            self.declared_exchange(),
            self.declared_replay_exchange(),
            self.forward_exchange(queue),
        ]
    }

    /// The forwarding exchange of `queue`'s consumer ([`QueueNames::forward`]).
    fn forward_exchange(&self, queue: &str) -> DeclaredExchange {
        DeclaredExchange::new(self.queue_names(queue).forward, ExchangeKind::Direct)
    }

    /// Declares what a consumer of `queue` needs: its forwarding exchange, its queues
    /// ([`Self::declared_queues`]) and their bindings ([`Self::declared_bindings`]), the
    /// work queue bound to the events exchange with `routing_key`. Returns the names.
    ///
    /// The events and replay exchanges belong to the producer; with `declare_shared` the
    /// consumer declares them too (idempotent), so that whoever starts first on a bare
    /// broker creates them. Without it the consumer takes them as given: where the
    /// broker's definitions declare them, its user needs no right to change them (which in
    /// RabbitMQ includes deleting them). There is no quiet way to ask whether an exchange
    /// exists: a passive declare of a missing one closes the channel, which lapin logs as
    /// an error.
    pub(crate) async fn declare_consumer_queues(
        &self,
        channel: &Channel,
        queue: &str,
        routing_key: &str,
        retry: &RetryPolicy,
        declare_shared: bool,
    ) -> Result<QueueNames, MessagingError> {
        if declare_shared {
            declare(channel, &self.declared_exchange()).await?;
            declare(channel, &self.declared_replay_exchange()).await?;
        }
        declare(channel, &self.forward_exchange(queue)).await?;
        for (name, arguments) in self.consumer_queues(queue, retry) {
            channel
                .queue_declare(name.as_str().into(), queue_options(), arguments)
                .await?;
        }
        for binding in self.declared_bindings(queue, routing_key, retry) {
            channel
                .queue_bind(
                    binding.queue.as_str().into(),
                    binding.exchange.as_str().into(),
                    binding.routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(self.queue_names(queue))
    }

    /// Every queue a consumer of `queue` declares at start under `retry`, with its
    /// arguments: the dead-letter queue, the work queue, then one delay queue per delay.
    /// For what must agree with the declarations without a broker: the broker definitions
    /// and the AsyncAPI document (`docs/asyncapi.yaml`) are compared with them.
    pub fn declared_queues(&self, queue: &str, retry: &RetryPolicy) -> Vec<DeclaredQueue> {
        self.consumer_queues(queue, retry)
            .into_iter()
            .map(|(name, arguments)| DeclaredQueue::new(name, &arguments))
            .collect()
    }

    /// The queues of [`Self::declared_queues`] with their arguments as AMQP tables.
    fn consumer_queues(&self, queue: &str, retry: &RetryPolicy) -> Vec<(String, FieldTable)> {
        let names = self.queue_names(queue);
        let mut queues = vec![
            (names.dead_letter.clone(), quorum(FieldTable::default())),
            (names.work.clone(), quorum(work_queue_arguments(&names))),
        ];
        queues.extend(retry.delays().iter().map(|delay| {
            (
                names.delay_queue(*delay),
                quorum(delay_queue_arguments(&names.work, *delay)),
            )
        }));
        queues
    }

    /// The bindings a consumer of `queue` declares: the work queue to the events exchange
    /// with `routing_key` (the event type) and to the replay exchange with its own name;
    /// the forwarding exchange to each of the consumer's queues with that queue's name
    /// (its copies for a delay queue or the DLQ, and redriven messages, go through it).
    pub fn declared_bindings(
        &self,
        queue: &str,
        routing_key: &str,
        retry: &RetryPolicy,
    ) -> Vec<DeclaredBinding> {
        let names = self.queue_names(queue);
        let mut bindings = vec![
            DeclaredBinding::new(&self.exchange(), &names.work, routing_key),
            DeclaredBinding::new(&self.replay_exchange(), &names.work, &names.work),
        ];
        bindings.extend(
            self.consumer_queues(queue, retry)
                .into_iter()
                .map(|(name, _)| DeclaredBinding::new(&names.forward, &name, &name)),
        );
        bindings
    }
}

/// Declares `exchange` as described.
async fn declare(channel: &Channel, exchange: &DeclaredExchange) -> Result<(), MessagingError> {
    channel
        .exchange_declare(
            exchange.name.as_str().into(),
            exchange.kind.clone(),
            exchange.options,
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// An exchange as the topology declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredExchange {
    /// Its name, e.g. `users`.
    pub name: String,
    /// Topic for the events exchange, direct for the others.
    pub kind: ExchangeKind,
    /// Durable, not auto-deleted.
    pub options: ExchangeDeclareOptions,
}

impl DeclaredExchange {
    fn new(name: String, kind: ExchangeKind) -> Self {
        Self {
            name,
            kind,
            options: exchange_options(),
        }
    }
}

/// A binding of a queue to an exchange, as the topology declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredBinding {
    /// The source exchange.
    pub exchange: String,
    /// The destination queue.
    pub queue: String,
    /// The routing key.
    pub routing_key: String,
}

impl DeclaredBinding {
    fn new(exchange: &str, queue: &str, routing_key: &str) -> Self {
        Self {
            exchange: exchange.to_owned(),
            queue: queue.to_owned(),
            routing_key: routing_key.to_owned(),
        }
    }
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
    fn new(name: String, arguments: &FieldTable) -> Self {
        let arguments = arguments
            .inner()
            .iter()
            .map(|(key, value)| (key.to_string(), json_value(value)))
            .collect();
        Self {
            name,
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
    /// The consumer's own direct exchange, `<work>.forward`, bound to each of its queues
    /// with the queue's name: retry and dead-letter copies, and redriven messages, are
    /// published through it, so the consumer's broker user may write to its own queues
    /// only (the default exchange would let it write to any queue).
    pub forward: String,
}

impl QueueNames {
    /// The names that belong to the work queue `work` (prefix included), e.g. for a
    /// redrive, which knows only the queue a message came from.
    pub fn of_work_queue(work: &str) -> Self {
        Self::new(work.to_owned())
    }

    fn new(work: String) -> Self {
        let dead_letter = format!("{work}.dlq");
        let forward = format!("{work}.forward");
        Self {
            work,
            dead_letter,
            forward,
        }
    }

    /// The delay queue for one backoff step, e.g. `email.user-registered.delay.2000ms`.
    /// The delay is in the name because a queue's TTL cannot change once declared: a new
    /// schedule gets new queues instead of a declaration error.
    pub fn delay_queue(&self, delay: Duration) -> String {
        format!("{}.delay.{}ms", self.work, delay.as_millis())
    }
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

/// `arguments` plus the quorum queue type: replicated on a cluster, durable on a single
/// node, and the queue type RabbitMQ recommends for data that must not be lost (and the
/// only replicated one RabbitMQ 4 has).
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
