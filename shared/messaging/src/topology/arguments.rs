//! The options and `x-` arguments the broker objects are declared with: what makes a
//! queue durable and replicated, bounds redeliveries, and turns a delay queue's TTL into a
//! retry. One place for them, so the declaration and its description cannot disagree.

use std::time::Duration;

use lapin::{
    options::{ExchangeDeclareOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};

use super::{DELIVERY_LIMIT, QueueNames};

/// Every queue survives a broker restart (a quorum queue must be durable) and outlives
/// the connection that declared it.
pub(super) fn queue_options() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// The exchange survives a broker restart.
pub(super) fn exchange_options() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

/// `arguments` plus the quorum queue type: replicated on a cluster, durable on a single
/// node, and the queue type RabbitMQ recommends for data that must not be lost (and the
/// only replicated one RabbitMQ 4 has).
pub(super) fn quorum(mut arguments: FieldTable) -> FieldTable {
    arguments.insert("x-queue-type".into(), long_string("quorum"));
    arguments
}

/// A message the broker gives up on (see [`DELIVERY_LIMIT`]) goes to the DLQ, not away.
pub(super) fn work_queue_arguments(names: &QueueNames) -> FieldTable {
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
pub(super) fn delay_queue_arguments(work_queue: &str, delay: Duration) -> FieldTable {
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
