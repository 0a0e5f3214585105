//! The broker objects as the topology declares them, in plain Rust values: the broker
//! definitions (`deploy/rabbitmq/definitions.json`) and the AsyncAPI document are compared
//! with these, without a broker, so they cannot drift from what a consumer declares.

use lapin::{
    ExchangeKind,
    options::{ExchangeDeclareOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

use super::arguments::{exchange_options, queue_options};

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
    pub(super) fn new(name: String, kind: ExchangeKind) -> Self {
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
    pub(super) fn new(exchange: &str, queue: &str, routing_key: &str) -> Self {
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
    pub(super) fn new(name: String, arguments: &FieldTable) -> Self {
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
