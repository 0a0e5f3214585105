//! The AMQP headers this system reads and writes, behind one typed
//! [`Headers`] value.
//!
//! Every header the consumer, the retry path, the DLQ tooling and the producers touch is
//! named here once, and read or written through a method that knows its AMQP type, so no
//! other module handles `FieldTable`s or `AMQPValue`s directly.
//!
//! Our own headers have plain names: the `x-` prefix is RabbitMQ's (`x-death`,
//! `x-first-death-queue`, `x-delivery-count`), and a name of ours there could one day
//! collide with one it defines. Earlier releases wrote `x-attempt`, `x-dead-letter-reason`,
//! …; messages with those names may still wait in delay and dead-letter queues, so
//! `Headers::of` reads them under the new names
//! ([`LEGACY_NAMES`]).

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use opentelemetry::Context;

use crate::trace_context;

/// How many times the message has been handled so far, including the current attempt
/// (1 on first delivery). Written on each retry copy.
pub const ATTEMPT: &str = "attempt";
/// Why the message was dead-lettered, in words.
pub const DEAD_LETTER_REASON: &str = "dead-letter-reason";
/// `permanent` (can never succeed) or `exhausted` (ran out of retries).
pub const DEAD_LETTER_KIND: &str = "dead-letter-kind";
/// The routing key the message was first published with; retries and dead-lettering
/// go through the default exchange and would otherwise lose it.
pub const ORIGINAL_ROUTING_KEY: &str = "original-routing-key";
/// The exchange the message was first published to.
pub const ORIGINAL_EXCHANGE: &str = "original-exchange";
/// The work queue the message failed in; the queue a redrive sends it back to.
pub const ORIGINAL_QUEUE: &str = "original-queue";
/// Why the last attempt asked for a retry.
pub const RETRY_REASON: &str = "retry-reason";
/// Set on a message sent back from a DLQ by `dlq redrive`: the DLQ it came from.
pub const REDRIVEN_FROM: &str = "redriven-from";
/// Set on a message sent again from the producer's event log by a replay.
pub const REPLAYED: &str = "replayed";

/// The longest reason, in characters, written into [`RETRY_REASON`] or
/// [`DEAD_LETTER_REASON`]; a longer one is cut there and ends in `…`. A reason can quote
/// the message (a decoding error quotes an unknown `type`, and serde quotes a string found
/// where a number belongs), and all the headers must fit in one AMQP frame (RabbitMQ's
/// `frame_max`, 128 KiB by default). Uncut, a body with a 300 000-character `type` made
/// RabbitMQ close the consumer's connection (`frame_too_large`) at each attempt to
/// dead-letter it: the message was never dead-lettered and held up its queue.
pub const MAX_REASON_CHARS: usize = 1_000;

/// The names earlier releases wrote, each with today's name: read as today's by
/// `Headers::of`, never written. Remove once no message with them can be left in a
/// queue (the longest a message waits is in a dead-letter queue, until a person acts).
pub const LEGACY_NAMES: [(&str, &str); 9] = [
    ("x-attempt", ATTEMPT),
    ("x-dead-letter-reason", DEAD_LETTER_REASON),
    ("x-dead-letter-kind", DEAD_LETTER_KIND),
    ("x-original-routing-key", ORIGINAL_ROUTING_KEY),
    ("x-original-exchange", ORIGINAL_EXCHANGE),
    ("x-original-queue", ORIGINAL_QUEUE),
    ("x-retry-reason", RETRY_REASON),
    ("x-redriven-from", REDRIVEN_FROM),
    ("x-replayed", REPLAYED),
];

/// Set by RabbitMQ on a message it dead-lettered itself (a delay queue's TTL, the work
/// queue's delivery limit): the queue the message first died in.
pub const FIRST_DEATH_QUEUE: &str = "x-first-death-queue";

/// Set by RabbitMQ on a message it dead-lettered itself: why, e.g. `delivery_limit` (the
/// work queue's delivery limit), `expired` (a delay queue's TTL).
pub const FIRST_DEATH_REASON: &str = "x-first-death-reason";

/// Set by RabbitMQ (quorum queues) on a redelivered message: how many times it was
/// delivered before.
pub const DELIVERY_COUNT: &str = "x-delivery-count";

/// Headers RabbitMQ itself adds: when it dead-letters a message (a delay queue's TTL, the
/// delivery limit; the `x-last-death-*` ones since RabbitMQ 3.13), and when a quorum queue
/// redelivers one. A redriven message starts without them, as a new message would.
pub const BROKER_HEADERS: [&str; 8] = [
    "x-death",
    "x-first-death-exchange",
    FIRST_DEATH_QUEUE,
    FIRST_DEATH_REASON,
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    DELIVERY_COUNT,
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
    /// The headers of a received message (empty when it had none), with any header of an
    /// earlier release renamed to today's name (unless today's is there too), so that the
    /// rest of the code knows only today's names and a retry or redrive writes only them.
    pub(crate) fn of(table: Option<&FieldTable>) -> Self {
        let mut headers = FieldTable::default();
        for (name, value) in table.map(FieldTable::inner).into_iter().flatten() {
            let legacy = LEGACY_NAMES.iter().find(|(old, _)| *old == name.as_str());
            match legacy {
                Some((_, new)) if table.is_some_and(|t| t.inner().contains_key(*new)) => {}
                Some((_, new)) => {
                    headers.insert(ShortString::from(*new), value.clone());
                }
                None => {
                    headers.insert(name.clone(), value.clone());
                }
            }
        }
        Self(headers)
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

    /// The attempt this delivery represents: 1 on first delivery, and whenever the header
    /// is not a whole number from 1 to `u32::MAX`.
    pub fn attempt(&self) -> u32 {
        self.0
            .inner()
            .get(ATTEMPT)
            .and_then(integer)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1)
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
            other => integer(other).map(|n| n.to_string()),
        }
    }

    /// Writes a string header.
    pub(crate) fn set_text(&mut self, name: &str, value: &str) {
        self.0.insert(
            ShortString::from(name),
            AMQPValue::LongString(LongString::from(value)),
        );
    }

    /// Writes a reason (why a retry, why a dead letter), cut to [`MAX_REASON_CHARS`].
    pub(crate) fn set_reason(&mut self, name: &str, reason: &str) {
        match reason.char_indices().nth(MAX_REASON_CHARS) {
            Some((cut, _)) => self.set_text(name, &format!("{}…", &reason[..cut])),
            None => self.set_text(name, reason),
        }
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
            if !dropped.contains(&name_str) && !BROKER_HEADERS.contains(&name_str) {
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

/// The whole number in an integer header, whatever its width. We write 32-bit ones, but
/// other clients pick the type by size (the Java client sends a `Short` as a 16-bit `s`,
/// a `Byte` as an 8-bit `b`) and the management UI sends 64-bit ones. Reading only the
/// 32/64-bit types made a small number written by another client read as no number at
/// all (found by the properties in `fuzz`: `ShortShortInt(0)` gave no text).
fn integer(value: &AMQPValue) -> Option<i64> {
    match *value {
        AMQPValue::ShortShortInt(n) => Some(n.into()),
        AMQPValue::ShortShortUInt(n) => Some(n.into()),
        AMQPValue::ShortInt(n) => Some(n.into()),
        AMQPValue::ShortUInt(n) => Some(n.into()),
        AMQPValue::LongInt(n) => Some(n.into()),
        AMQPValue::LongUInt(n) => Some(n.into()),
        AMQPValue::LongLongInt(n) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
