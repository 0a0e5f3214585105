//! The AMQP headers this system reads and writes, behind one typed [`Headers`] value.
//!
//! Every header the consumer, the retry path, the DLQ tooling and the producers touch is
//! named here once, and read or written through a method that knows its AMQP type, so no
//! other module handles `FieldTable`s or `AMQPValue`s directly.
//!
//! Our own headers have plain names: the `x-` prefix is RabbitMQ's (`x-death`,
//! `x-first-death-queue`, `x-delivery-count`), and a name of ours there could one day
//! collide with one it defines. Earlier releases wrote `x-attempt`, `x-dead-letter-reason`,
//! …; messages with those names may still wait in delay and dead-letter queues, so
//! [`Headers::of`] reads them under the new names ([`LEGACY_NAMES`]).

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
/// [`Headers::of`], never written. Remove once no message with them can be left in a
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
/// all (found by the `fuzz` properties below: `ShortShortInt(0)` gave no text).
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
mod tests {
    use super::*;

    #[test]
    fn the_names_of_an_earlier_release_are_read_as_todays() {
        let mut table = FieldTable::default();
        table.insert(ShortString::from("x-attempt"), AMQPValue::LongUInt(3));
        table.insert(
            ShortString::from("x-original-queue"),
            AMQPValue::LongString(LongString::from("email.user-registered")),
        );
        table.insert(
            ShortString::from("x-first-death-queue"),
            AMQPValue::LongString(LongString::from("email.user-registered.delay.1000ms")),
        );
        let headers = Headers::of(Some(&table));
        assert_eq!(headers.attempt(), 3);
        assert_eq!(
            headers.text(ORIGINAL_QUEUE).as_deref(),
            Some("email.user-registered")
        );
        assert!(
            headers.text(FIRST_DEATH_QUEUE).is_some(),
            "RabbitMQ's own stay"
        );
        let written = headers.into_table();
        assert!(written.inner().keys().all(|k| k.as_str() != "x-attempt"));
    }

    #[test]
    fn none_of_our_names_uses_rabbitmqs_prefix() {
        for (legacy, name) in LEGACY_NAMES {
            assert!(legacy.starts_with("x-"), "{legacy}");
            assert!(!name.starts_with("x-"), "{name}");
        }
    }

    #[test]
    fn a_first_delivery_is_attempt_one() {
        assert_eq!(Headers::default().attempt(), 1);
        let mut table = FieldTable::default();
        table.insert(ShortString::from(ATTEMPT), AMQPValue::LongInt(3));
        assert_eq!(Headers::of(Some(&table)).attempt(), 3);
    }

    #[test]
    fn a_number_of_any_integer_width_is_read_as_a_number() {
        let mut table = FieldTable::default();
        table.insert(ShortString::from(ATTEMPT), AMQPValue::ShortInt(3));
        table.insert(
            ShortString::from(ORIGINAL_QUEUE),
            AMQPValue::ShortShortInt(0),
        );
        let headers = Headers::of(Some(&table));
        assert_eq!(headers.attempt(), 3);
        assert_eq!(headers.text(ORIGINAL_QUEUE).as_deref(), Some("0"));
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

/// Property-based fuzzing (proptest) of reading a received message's headers. The table is
/// whatever the sender, a person in the management UI, another client library or
/// RabbitMQ put there: any names, any AMQP types (integers of every width, floats,
/// decimals, strings that are not UTF-8, byte arrays, nested arrays and tables). Reading
/// it must never panic, must rename the earlier release's names as [`LEGACY_NAMES`] says,
/// and must fall back to the documented defaults on anything unexpected. And a reason
/// written back, however long, must fit ([`MAX_REASON_CHARS`]).
///
/// Here rather than in `tests/` because [`Headers::of`] is crate-private. `cargo test`
/// runs proptest's default of 256 cases per property; a longer run:
///
/// ```text
/// PROPTEST_CASES=100000 cargo test -p messaging --lib headers::fuzz --release
/// ```
///
/// A failure is shrunk to a minimal input, and proptest saves its seed in
/// `shared/messaging/proptest-regressions/headers.txt`; commit it with the fix, so every
/// later run tries that input first.
#[cfg(test)]
mod fuzz {
    use std::collections::BTreeMap;

    use lapin::types::{ByteArray, DecimalValue, FieldArray};
    use opentelemetry::propagation::Extractor;
    use proptest::{collection::vec, prelude::*, sample::select};

    use super::*;
    use crate::trace_context::HeaderExtractor;

    /// Every name this module or RabbitMQ gives a meaning to, today's and earlier ones.
    fn known_names() -> Vec<&'static str> {
        let mut names = vec!["traceparent", "tracestate"];
        names.extend(ALL);
        names.extend(LEGACY_NAMES.iter().map(|(old, _)| *old));
        names.extend(BROKER_HEADERS);
        names
    }

    /// A header name: a known one, or any text that fits an AMQP short string.
    fn name() -> impl Strategy<Value = ShortString> {
        prop_oneof![
            select(known_names()).prop_map(ShortString::from),
            vec(any::<char>(), 0..40)
                .prop_map(String::from_iter)
                .prop_filter_map("longer than a short string", |name| {
                    ShortString::try_new(name).ok()
                }),
        ]
    }

    /// A whole number with the edges well represented: 0, ±1, small counts, and the
    /// bounds of `u32` (the attempt counter's type) and `i64`.
    fn number() -> impl Strategy<Value = i64> {
        prop_oneof![
            -2..=10i64,
            select(vec![
                i64::MIN,
                i64::from(i32::MIN),
                i64::from(u32::MAX),
                i64::from(u32::MAX) + 1,
                i64::MAX,
            ]),
            any::<i64>(),
        ]
    }

    /// Any AMQP value that is not a container.
    fn leaf() -> impl Strategy<Value = AMQPValue> {
        prop_oneof![
            Just(AMQPValue::Void),
            any::<bool>().prop_map(AMQPValue::Boolean),
            number().prop_map(|n| AMQPValue::ShortShortInt(n as i8)),
            number().prop_map(|n| AMQPValue::ShortShortUInt(n as u8)),
            number().prop_map(|n| AMQPValue::ShortInt(n as i16)),
            number().prop_map(|n| AMQPValue::ShortUInt(n as u16)),
            number().prop_map(|n| AMQPValue::LongInt(n as i32)),
            number().prop_map(|n| AMQPValue::LongUInt(n as u32)),
            number().prop_map(AMQPValue::LongLongInt),
            any::<f32>().prop_map(AMQPValue::Float),
            any::<f64>().prop_map(AMQPValue::Double),
            (any::<u8>(), any::<u32>())
                .prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
            any::<u64>().prop_map(AMQPValue::Timestamp),
            vec(any::<char>(), 0..40).prop_map(|text| {
                AMQPValue::LongString(LongString::from(String::from_iter(text)))
            }),
            vec(any::<u8>(), 0..40).prop_map(|bytes| AMQPValue::LongString(bytes.into())),
            "[0-9]{1,12}".prop_map(|digits| AMQPValue::LongString(digits.into())),
            vec(any::<char>(), 0..40)
                .prop_map(String::from_iter)
                .prop_filter_map("longer than a short string", |text| {
                    ShortString::try_new(text).ok().map(AMQPValue::ShortString)
                }),
            vec(any::<u8>(), 0..40).prop_map(|bytes| AMQPValue::ByteArray(ByteArray::from(bytes))),
        ]
    }

    /// Any AMQP value, arrays and tables nested up to three levels.
    fn value() -> impl Strategy<Value = AMQPValue> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4)
                    .prop_map(|items| AMQPValue::FieldArray(FieldArray::from(items))),
                vec((name(), inner), 0..4)
                    .prop_map(|entries| AMQPValue::FieldTable(table_of(entries))),
            ]
        })
    }

    fn table_of(entries: Vec<(ShortString, AMQPValue)>) -> FieldTable {
        FieldTable::from(BTreeMap::from_iter(entries))
    }

    /// A headers table of up to a dozen entries.
    fn table() -> impl Strategy<Value = FieldTable> {
        vec((name(), value()), 0..12).prop_map(table_of)
    }

    /// The whole number an integer value holds, of whichever width.
    fn integer(value: &AMQPValue) -> Option<i128> {
        match *value {
            AMQPValue::ShortShortInt(n) => Some(n.into()),
            AMQPValue::ShortShortUInt(n) => Some(n.into()),
            AMQPValue::ShortInt(n) => Some(n.into()),
            AMQPValue::ShortUInt(n) => Some(n.into()),
            AMQPValue::LongInt(n) => Some(n.into()),
            AMQPValue::LongUInt(n) => Some(n.into()),
            AMQPValue::LongLongInt(n) => Some(n.into()),
            _ => None,
        }
    }

    /// What [`Headers::text`] documents: a string's text, a number's digits, else nothing.
    fn expected_text(value: &AMQPValue) -> Option<String> {
        match value {
            AMQPValue::LongString(text) => {
                Some(String::from_utf8_lossy(text.as_bytes()).into_owned())
            }
            other => integer(other).map(|n| n.to_string()),
        }
    }

    /// What [`Headers::attempt`] documents: the counter when it is a whole number an
    /// attempt can be (1 to `u32::MAX`), else 1, as on a first delivery.
    fn expected_attempt(value: Option<&AMQPValue>) -> u32 {
        value
            .and_then(integer)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .unwrap_or(1)
    }

    /// Every getter on `headers`, for every name in `table` and every known one.
    fn read_everything(headers: &Headers, table: &FieldTable) -> Result<(), TestCaseError> {
        let read = headers.clone().into_table();
        let names = table
            .inner()
            .keys()
            .map(ShortString::as_str)
            .chain(known_names());
        let extractor = HeaderExtractor(&read);
        for name in names {
            prop_assert_eq!(
                headers.text(name),
                read.inner().get(name).and_then(expected_text),
                "text({:?})",
                name
            );
            let extracted = extractor.get(name);
            match read.inner().get(name) {
                Some(AMQPValue::LongString(text)) => {
                    prop_assert_eq!(extracted, std::str::from_utf8(text.as_bytes()).ok());
                }
                _ => prop_assert_eq!(extracted, None),
            }
        }
        prop_assert_eq!(extractor.keys().len(), read.inner().len());
        prop_assert_eq!(
            headers.attempt(),
            expected_attempt(read.inner().get(ATTEMPT))
        );
        prop_assert_eq!(
            headers.is_resent(),
            read.inner().contains_key(REDRIVEN_FROM) || read.inner().contains_key(REPLAYED)
        );
        // With the no-op propagator of a test this reads nothing; it must still not panic.
        let _context = headers.trace_context();
        Ok(())
    }

    proptest! {
        /// Any table: nothing panics, each getter answers as documented, and the names of
        /// the earlier release are read as today's (today's wins when both are there).
        #[test]
        fn any_headers_are_read_as_documented(table in table()) {
            let headers = Headers::of(Some(&table));
            let read = headers.clone().into_table();
            for (old, new) in LEGACY_NAMES {
                prop_assert!(!read.inner().contains_key(old), "{old} kept");
                let expected = table.inner().get(new).or_else(|| table.inner().get(old));
                prop_assert_eq!(read.inner().get(new), expected, "{}", new);
            }
            for (name, value) in table.inner() {
                if !LEGACY_NAMES.iter().any(|(old, new)| name.as_str() == *old || name.as_str() == *new) {
                    prop_assert_eq!(read.inner().get(name), Some(value), "{}", name);
                }
            }
            let added: Vec<&ShortString> = read
                .inner()
                .keys()
                .filter(|name| {
                    !table.inner().contains_key(name.as_str())
                        && !LEGACY_NAMES.iter().any(|(old, new)| {
                            name.as_str() == *new && table.inner().contains_key(*old)
                        })
                })
                .collect();
            prop_assert!(added.is_empty(), "{added:?} came from nowhere");
            read_everything(&headers, &table)?;
            prop_assert_eq!(Headers::of(None), Headers::default());
        }

        /// The attempt counter under either name, of any type and value, among other
        /// headers: the number when it can be an attempt, otherwise 1.
        #[test]
        fn the_attempt_is_the_counter_or_one(
            value in value(),
            legacy in any::<bool>(),
            others in vec((name(), value()), 0..12),
        ) {
            let attempt_names = [ATTEMPT, "x-attempt"];
            let mut table = table_of(
                others
                    .into_iter()
                    .filter(|(name, _)| !attempt_names.contains(&name.as_str()))
                    .collect(),
            );
            table.insert(ShortString::from(attempt_names[usize::from(legacy)]), value.clone());
            let headers = Headers::of(Some(&table));
            prop_assert_eq!(headers.attempt(), expected_attempt(Some(&value)));
            read_everything(&headers, &table)?;
        }

        /// A reason of any length, up to hundreds of thousands of characters, is written
        /// as it is when it fits in [`MAX_REASON_CHARS`], else as its beginning and `…`.
        #[test]
        fn a_reason_of_any_length_is_cut_to_fit(
            reason in prop_oneof![
                vec(any::<char>(), 0..40).prop_map(String::from_iter),
                vec(any::<char>(), 990..1010).prop_map(String::from_iter),
                (vec(any::<char>(), 1..4), 1..100_000usize)
                    .prop_map(|(piece, times)| String::from_iter(piece).repeat(times)),
            ],
        ) {
            let mut headers = Headers::default();
            headers.set_reason(DEAD_LETTER_REASON, &reason);
            let written = headers.text(DEAD_LETTER_REASON).expect("a reason is written");
            if reason.chars().count() <= MAX_REASON_CHARS {
                prop_assert_eq!(written, reason);
            } else {
                let kept = written.strip_suffix('…').expect("a cut reason ends in …");
                prop_assert_eq!(kept.chars().count(), MAX_REASON_CHARS);
                prop_assert!(reason.starts_with(kept));
            }
        }

        /// A redrive of any message: the bookkeeping and RabbitMQ's headers go, the
        /// counter starts again at 1, everything else stays.
        #[test]
        fn a_redrive_of_any_headers_starts_again(table in table(), queue in ".{0,60}") {
            let redriven = Headers::of(Some(&table)).redriven_from(&queue);
            prop_assert_eq!(redriven.attempt(), 1);
            prop_assert_eq!(redriven.text(REDRIVEN_FROM), Some(queue));
            prop_assert!(redriven.is_resent());
            let dropped = [DEAD_LETTER_KIND, DEAD_LETTER_REASON, RETRY_REASON];
            for name in dropped.iter().chain(&BROKER_HEADERS) {
                prop_assert_eq!(redriven.text(name), None, "{}", name);
            }
            read_everything(&redriven, &table)?;
        }
    }
}
