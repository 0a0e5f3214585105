//! Property-based fuzzing (proptest) of reading a received message's headers. The table is
//! whatever the sender, a person in the management UI, another client library or
//! RabbitMQ put there: any names, any AMQP types (integers of every width, floats,
//! decimals, strings that are not UTF-8, byte arrays, nested arrays and tables). Reading
//! it must never panic, must rename the earlier release's names as [`LEGACY_NAMES`] says,
//! and must fall back to the documented defaults on anything unexpected. And a reason
//! written back, however long, must fit ([`MAX_REASON_CHARS`]).
//!
//! Here rather than in `tests/` because [`Headers::of`] is crate-private. `cargo test`
//! runs proptest's default of 256 cases per property; a longer run:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p messaging --lib headers::fuzz --release
//! ```
//!
//! A failure is shrunk to a minimal input, and proptest saves its seed in
//! `shared/messaging/proptest-regressions/headers/fuzz.txt`; commit it with the fix, so
//! every later run tries that input first.

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
        vec(any::<char>(), 0..40)
            .prop_map(|text| { AMQPValue::LongString(LongString::from(String::from_iter(text))) }),
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
            vec((name(), inner), 0..4).prop_map(|entries| AMQPValue::FieldTable(table_of(entries))),
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
        AMQPValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
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
