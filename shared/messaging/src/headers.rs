//! The AMQP headers this system reads and writes, behind one typed [`Headers`] value.
//!
//! Every header the consumer, the retry path, the DLQ tooling and the producers touch is
//! named here once, and read or written through a method that knows its AMQP type, so no
//! other module handles `FieldTable`s or `AMQPValue`s directly.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use opentelemetry::Context;

use crate::trace_context;

/// How many times the message has been handled so far, including the current attempt
/// (1 on first delivery). Written on each retry copy.
pub const ATTEMPT: &str = "x-attempt";
/// Why the message was dead-lettered, in words.
pub const DEAD_LETTER_REASON: &str = "x-dead-letter-reason";
/// `permanent` (can never succeed) or `exhausted` (ran out of retries).
pub const DEAD_LETTER_KIND: &str = "x-dead-letter-kind";
/// The routing key the message was first published with; retries and dead-lettering
/// go through the default exchange and would otherwise lose it.
pub const ORIGINAL_ROUTING_KEY: &str = "x-original-routing-key";
/// The exchange the message was first published to.
pub const ORIGINAL_EXCHANGE: &str = "x-original-exchange";
/// The work queue the message failed in; the queue a redrive sends it back to.
pub const ORIGINAL_QUEUE: &str = "x-original-queue";
/// Why the last attempt asked for a retry.
pub const RETRY_REASON: &str = "x-retry-reason";
/// Set on a message sent back from a DLQ by `dlq redrive`: the DLQ it came from.
pub const REDRIVEN_FROM: &str = "x-redriven-from";
/// Set on a message sent again from the producer's event log by a replay.
pub const REPLAYED: &str = "x-replayed";

/// Set by RabbitMQ on a message it dead-lettered itself (a delay queue's TTL, the work
/// queue's delivery limit): the queue the message first died in.
pub const FIRST_DEATH_QUEUE: &str = "x-first-death-queue";

/// Headers RabbitMQ itself adds when it dead-letters a message (a delay queue's TTL, the
/// delivery limit); a redriven message starts without them.
pub const BROKER_DEATH_HEADERS: [&str; 4] = [
    "x-death",
    "x-first-death-exchange",
    FIRST_DEATH_QUEUE,
    "x-first-death-reason",
];

/// Every header named above, for what must list them all: the AsyncAPI document
/// (`docs/asyncapi.yaml`) describes each one, and its test fails on one it misses.
pub const ALL: [&str; 10] = [
    ATTEMPT,
    DEAD_LETTER_REASON,
    DEAD_LETTER_KIND,
    ORIGINAL_ROUTING_KEY,
    ORIGINAL_EXCHANGE,
    ORIGINAL_QUEUE,
    RETRY_REASON,
    REDRIVEN_FROM,
    REPLAYED,
    FIRST_DEATH_QUEUE,
];

/// The headers table of one message.
///
/// Built empty by a producer ([`Headers::default`], then [`Headers::with_trace_context`]),
/// or read from a delivery by the consumer. Strings are always written as AMQP long
/// strings: amq-protocol's short-string value is for internal use, and RabbitMQ would read
/// it back as a different type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headers(FieldTable);

impl Headers {
    /// The headers of a received message (empty when it had none).
    pub(crate) fn of(table: Option<&FieldTable>) -> Self {
        Self(table.cloned().unwrap_or_default())
    }

    /// The table to put into the AMQP properties.
    pub(crate) fn into_table(self) -> FieldTable {
        self.0
    }

    /// The same headers with `context` as W3C `traceparent`/`tracestate`, so the consumer's
    /// span continues (or links to) the trace of the span that sent the message.
    pub fn with_trace_context(mut self, context: &Context) -> Self {
        trace_context::inject(context, &mut self.0);
        self
    }

    /// The trace context the sender put in, or an empty one (a new trace) if none.
    pub fn trace_context(&self) -> Context {
        trace_context::extract(&self.0)
    }

    /// Marks the message as a replay from the producer's event log: the consumer then
    /// starts a new trace linked to the original instead of adding a late child to it.
    pub fn replayed(mut self) -> Self {
        self.set_text(REPLAYED, "true");
        self
    }

    /// True for a message sent again by a person (a DLQ redrive or an event-log replay).
    pub fn is_resent(&self) -> bool {
        self.contains(REDRIVEN_FROM) || self.contains(REPLAYED)
    }

    /// The attempt this delivery represents: 1 on first delivery.
    pub fn attempt(&self) -> u32 {
        match self.0.inner().get(ATTEMPT) {
            Some(AMQPValue::LongUInt(n)) => *n,
            Some(AMQPValue::LongInt(n)) => u32::try_from(*n).unwrap_or(1),
            Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).unwrap_or(1),
            _ => 1,
        }
        .max(1)
    }

    /// Sets the attempt counter.
    pub(crate) fn set_attempt(&mut self, attempt: u32) {
        self.0
            .insert(ShortString::from(ATTEMPT), AMQPValue::LongUInt(attempt));
    }

    /// The header as text, whether it was written as a string or a number; `None` when
    /// absent or of another type.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.0.inner().get(name)? {
            AMQPValue::LongString(value) => {
                Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
            }
            AMQPValue::LongUInt(value) => Some(value.to_string()),
            AMQPValue::LongInt(value) => Some(value.to_string()),
            AMQPValue::LongLongInt(value) => Some(value.to_string()),
            _ => None,
        }
    }

    /// Writes a string header.
    pub(crate) fn set_text(&mut self, name: &str, value: &str) {
        self.0.insert(
            ShortString::from(name),
            AMQPValue::LongString(LongString::from(value)),
        );
    }

    /// Writes a string header unless it is already there: the origin of a message is
    /// recorded at its first failure and kept through later retries.
    pub(crate) fn set_text_once(&mut self, name: &str, value: &str) {
        if !self.contains(name) {
            self.set_text(name, value);
        }
    }

    /// The headers of a message sent back from `dead_letter_queue` to work: the failure
    /// bookkeeping removed, the attempt counter back at 1, and a mark of where it came from.
    pub(crate) fn redriven_from(&self, dead_letter_queue: &str) -> Self {
        let dropped = [DEAD_LETTER_KIND, DEAD_LETTER_REASON, RETRY_REASON, ATTEMPT];
        let mut kept = Self::default();
        for (name, value) in self.0.inner() {
            let name_str = name.as_str();
            if !dropped.contains(&name_str) && !BROKER_DEATH_HEADERS.contains(&name_str) {
                kept.0.insert(name.clone(), value.clone());
            }
        }
        kept.set_attempt(1);
        kept.set_text(REDRIVEN_FROM, dead_letter_queue);
        kept
    }

    fn contains(&self, name: &str) -> bool {
        self.0.inner().contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_delivery_is_attempt_one() {
        assert_eq!(Headers::default().attempt(), 1);
        let mut table = FieldTable::default();
        table.insert(ShortString::from(ATTEMPT), AMQPValue::LongInt(3));
        assert_eq!(Headers::of(Some(&table)).attempt(), 3);
    }

    #[test]
    fn the_origin_is_kept_from_the_first_failure() {
        let mut headers = Headers::default();
        headers.set_text_once(ORIGINAL_QUEUE, "first");
        headers.set_text_once(ORIGINAL_QUEUE, "second");
        assert_eq!(headers.text(ORIGINAL_QUEUE).as_deref(), Some("first"));
    }

    #[test]
    fn a_redrive_drops_the_failure_bookkeeping_and_starts_again_at_attempt_one() {
        let mut failed = Headers::default();
        failed.set_attempt(4);
        failed.set_text(DEAD_LETTER_REASON, "gave up");
        failed.set_text(ORIGINAL_QUEUE, "email.user-registered");
        failed.set_text(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
        let redriven = failed.redriven_from("email.user-registered.dlq");
        assert_eq!(redriven.attempt(), 1);
        assert_eq!(redriven.text(DEAD_LETTER_REASON), None);
        assert!(redriven.is_resent());
        assert_eq!(
            redriven.text(ORIGINAL_QUEUE).as_deref(),
            Some("email.user-registered")
        );
        assert!(redriven.text("traceparent").is_some());
    }
}
