use std::time::Duration;

use lapin::{Channel, ExchangeKind, options::QueueBindOptions, types::FieldTable};

use crate::{MessagingError, retry::RetryPolicy};

mod arguments;
mod declared;
#[cfg(test)]
mod tests;

use arguments::{delay_queue_arguments, queue_options, quorum, work_queue_arguments};
pub use declared::{DeclaredBinding, DeclaredExchange, DeclaredQueue};

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
    /// `declare_consumer_queues`), then its own forwarding exchange.
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
