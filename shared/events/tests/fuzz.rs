//! Property-based fuzzing of the consumers' decoder, [`events::decode`], with proptest (so
//! it runs on stable, in `cargo test`). A consumer decodes whatever sits in its queue: a
//! message from a buggy producer, a newer version, a hand-published test, random bytes. The
//! decoder must never panic on any of it, and every rejection must be a [`DecodeError`]
//! that says what is wrong, because that text is what the dead-letter queue shows.
//!
//! Three properties, each for both event types:
//! - arbitrary bytes (random, or arbitrary JSON) with an arbitrary type hint, or none;
//! - a valid envelope, then mutated: bytes flipped, inserted, deleted or cut off; a field
//!   replaced by an arbitrary JSON value, removed, or joined by an unknown one. Whatever
//!   decodes must also survive being encoded and decoded again;
//! - any valid envelope, from arbitrary field values, decodes back equal.
//!
//! A rejection's text is not short by nature: it quotes an unknown `type`, and serde quotes
//! a string found where a number belongs. The consumer cuts it before it becomes a header
//! (`messaging::headers::MAX_REASON_CHARS`).
//!
//! `cargo test` runs proptest's default of 256 cases per property. A longer run:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p events --test fuzz --release
//! ```
//!
//! A failure is shrunk to a minimal input, and proptest saves its seed in
//! `tests/fuzz.proptest-regressions`, beside this file; commit it with the fix, so every
//! later run tries that input first.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use events::{DecodeError, Envelope, Event, UserDeletedV1, UserRegisteredV1, decode};
use proptest::{
    collection::vec,
    prelude::*,
    sample::Index,
    test_runner::{FileFailurePersistence, TestCaseError},
};
use serde_json::{Map, Value};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// What every decode must satisfy

/// Decodes `body` as a `T` and checks the outcome: an envelope of type `T` that round-trips,
/// or an error that names what is wrong.
fn check_decode<T: Event + PartialEq + Debug>(
    hint: Option<&str>,
    body: &[u8],
) -> Result<Option<Envelope<T>>, TestCaseError> {
    match decode::<T>(hint, body) {
        Ok(envelope) => {
            prop_assert_eq!(envelope.event_type.as_str(), T::TYPE);
            prop_assert!(hint.is_none_or(|hint| hint == T::TYPE), "hint {hint:?}");
            check_round_trip(&envelope)?;
            Ok(Some(envelope))
        }
        Err(error) => {
            check_error::<T>(hint, &error)?;
            Ok(None)
        }
    }
}

/// A decoded envelope, encoded again as a producer would, decodes to itself: nothing the
/// decoder accepts is lost or changed on the way through a consumer that forwards it.
fn check_round_trip<T: Event + PartialEq + Debug>(
    envelope: &Envelope<T>,
) -> Result<(), TestCaseError> {
    for body in encodings(envelope)? {
        match decode::<T>(Some(T::TYPE), &body) {
            Ok(again) => prop_assert_eq!(&again, envelope),
            Err(error) => {
                return Err(TestCaseError::fail(format!(
                    "{envelope:?} was encoded as {} and then rejected: {error}",
                    String::from_utf8_lossy(&body)
                )));
            }
        }
    }
    Ok(())
}

/// A rejection says what is wrong: which type was expected, and either the type that was
/// found or serde's explanation with the line and column.
fn check_error<T: Event>(hint: Option<&str>, error: &DecodeError) -> Result<(), TestCaseError> {
    let message = error.to_string();
    prop_assert!(
        message.contains(T::TYPE),
        "{message:?} does not name {}",
        T::TYPE
    );
    match error {
        DecodeError::UnknownType { found, expected } => {
            prop_assert_eq!(*expected, T::TYPE);
            prop_assert_ne!(found.as_str(), T::TYPE);
            prop_assert!(message.contains(&format!("{found:?}")), "{message:?}");
            // Another type in the message properties is rejected before the body is read;
            // with the right one there, the other type is the body's own.
            if let Some(hint) = hint.filter(|hint| *hint != T::TYPE) {
                prop_assert_eq!(found.as_str(), hint);
            }
        }
        DecodeError::Unparseable { event_type, source } => {
            prop_assert_eq!(*event_type, T::TYPE);
            prop_assert!(hint.is_none_or(|hint| hint == T::TYPE), "hint {hint:?}");
            let reason = source.to_string();
            prop_assert!(!reason.is_empty());
            prop_assert!(message.contains(&reason), "{message:?}");
            prop_assert!(source.line() > 0, "{message:?} does not say where");
        }
    }
    Ok(())
}

/// The ways a producer writes an envelope: `serde_json` as it is, pretty-printed, and
/// through a `serde_json::Value` (the outbox stores one; its keys come back reordered).
fn encodings<T: Event>(envelope: &Envelope<T>) -> Result<Vec<Vec<u8>>, TestCaseError> {
    let failed = |error: serde_json::Error| TestCaseError::fail(format!("encoding: {error}"));
    let value = serde_json::to_value(envelope).map_err(failed)?;
    Ok(vec![
        serde_json::to_vec(envelope).map_err(failed)?,
        serde_json::to_vec_pretty(envelope).map_err(failed)?,
        serde_json::to_vec(&value).map_err(failed)?,
    ])
}

// ---------------------------------------------------------------------------------------
// Generators

/// Any text: every Unicode scalar value is possible, with a bias to the troublesome ones
/// (NUL, controls, quotes, backslash, BOM, RTL override, astral characters).
fn text(max_chars: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..=max_chars).prop_map(String::from_iter)
}

/// The type hint of the AMQP `type` property: absent, one of ours, or anything.
fn type_hint() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(UserRegisteredV1::TYPE.to_owned())),
        Just(Some(UserDeletedV1::TYPE.to_owned())),
        Just(Some("user.registered.v2".to_owned())),
        text(40).prop_map(Some),
    ]
}

/// An RFC 3339 timestamp, sometimes not a real one: any date in years 0000-9999 (also
/// 31 February), second 60, optional fractions, and offsets up to ±23:59, which can move
/// the instant out of four-digit years once converted to UTC.
fn timestamp_text() -> impl Strategy<Value = String> {
    (
        (0..=9999u32, 1..=12u32, 1..=31u32),
        (0..=23u32, 0..=59u32, 0..=60u32),
        prop_oneof![Just(String::new()), "\\.[0-9]{1,12}"],
        prop_oneof![
            Just("Z".to_owned()),
            Just("z".to_owned()),
            (prop_oneof![Just('+'), Just('-')], 0..=23u32, 0..=59u32)
                .prop_map(|(sign, hours, minutes)| format!("{sign}{hours:02}:{minutes:02}")),
        ],
    )
        .prop_map(
            |((year, month, day), (hour, minute, second), fraction, offset)| {
                format!(
                    "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{offset}"
                )
            },
        )
}

/// A UUID in every textual form the `uuid` crate accepts, and some it does not.
fn uuid_text() -> impl Strategy<Value = String> {
    any::<u128>().prop_flat_map(|n| {
        let uuid = Uuid::from_u128(n);
        prop_oneof![
            Just(uuid.hyphenated().to_string()),
            Just(uuid.simple().to_string()),
            Just(uuid.braced().to_string()),
            Just(uuid.urn().to_string()),
            Just(uuid.hyphenated().to_string().to_uppercase()),
            Just(uuid.hyphenated().to_string()[1..].to_owned()),
        ]
    })
}

/// A JSON leaf: anything a field could be set to, with the values near the envelope's
/// own types (timestamps, UUIDs, type names, numbers around `u64`'s bounds) well
/// represented.
fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(0u64), Just(1), Just(u64::MAX)].prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        text(30).prop_map(Value::from),
        timestamp_text().prop_map(Value::from),
        uuid_text().prop_map(Value::from),
        prop_oneof![
            Just(UserRegisteredV1::TYPE),
            Just(UserDeletedV1::TYPE),
            Just(events::envelope::SPEC_VERSION),
        ]
        .prop_map(Value::from),
    ]
}

/// Any JSON value, nested up to four levels.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((text(12), inner), 0..6).prop_map(|entries| Value::Object(Map::from_iter(entries))),
        ]
    })
}

/// What a field is set to: any JSON value, and often a timestamp or a UUID, so that the
/// fields that hold one get near-misses and unusual forms.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => json_value(),
        1 => timestamp_text().prop_map(Value::from),
        1 => uuid_text().prop_map(Value::from),
    ]
}

/// A message body that is not necessarily an envelope, or JSON.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..512),
        text(256).prop_map(String::into_bytes),
        json_value().prop_map(|value| value.to_string().into_bytes()),
    ]
}

/// A valid `time`: RFC 3339 (the schema's `date-time`) has four-digit years, so
/// 0000-01-01 to 9999-12-31, to the nanosecond.
fn time() -> impl Strategy<Value = DateTime<Utc>> {
    const FIRST: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
    const LAST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    prop_oneof![
        (FIRST..=LAST, 0..1_000_000_000u32),
        // Around today, where the real ones are.
        (1_700_000_000..=2_000_000_000i64, 0..1_000_000_000u32),
    ]
    .prop_map(|(seconds, nanos)| {
        DateTime::from_timestamp(seconds, nanos).expect("within chrono's range")
    })
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn user_registered() -> impl Strategy<Value = UserRegisteredV1> {
    (uuid(), text(80), text(120), time()).prop_map(
        |(user_id, email, display_name, registered_at)| UserRegisteredV1 {
            user_id,
            email,
            display_name,
            registered_at,
        },
    )
}

fn user_deleted() -> impl Strategy<Value = UserDeletedV1> {
    (uuid(), time()).prop_map(|(user_id, deleted_at)| UserDeletedV1 {
        user_id,
        deleted_at,
    })
}

/// A valid envelope around `data`: any id, source, subject, time and sequence.
fn envelope<T: Event + Debug>(
    data: impl Strategy<Value = T>,
) -> impl Strategy<Value = Envelope<T>> {
    (uuid(), text(40), text(40), time(), any::<u64>(), data).prop_map(
        |(id, source, subject, time, sequence, data)| {
            let mut envelope = Envelope::new(&source, subject, sequence, data);
            envelope.id = id;
            envelope.time = time;
            envelope
        },
    )
}

/// The envelope's attributes and the fields of both events' `data`: where a JSON edit
/// lands.
const FIELDS: [&str; 15] = [
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "sequence",
    "data",
    "data.user_id",
    "data.email",
    "data.display_name",
    "data.registered_at",
    "data.deleted_at",
];

/// One change to a valid body.
#[derive(Debug, Clone)]
enum Edit {
    /// Flips one bit of one byte.
    Flip(Index, u8),
    /// Inserts a byte.
    Insert(Index, u8),
    /// Deletes a byte.
    Delete(Index),
    /// Cuts the body off.
    Truncate(Index),
    /// Sets a field (a known one or any name) to a value.
    Set(String, Value),
    /// Removes a field.
    Remove(&'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    let field = prop_oneof![
        4 => proptest::sample::select(FIELDS.to_vec()).prop_map(str::to_owned),
        1 => text(12),
        1 => text(12).prop_map(|name| format!("data.{name}")),
    ];
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Edit::Flip(at, bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert(at, byte)),
        any::<Index>().prop_map(Edit::Delete),
        any::<Index>().prop_map(Edit::Truncate),
        (field, field_value()).prop_map(|(field, value)| Edit::Set(field, value)),
        proptest::sample::select(FIELDS.to_vec()).prop_map(Edit::Remove),
    ]
}

/// Applies `edits` to `body` in order. A JSON edit of a body that is no longer a JSON
/// object changes nothing.
fn apply(mut body: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        match edit {
            Edit::Flip(at, bit) if !body.is_empty() => {
                let at = at.index(body.len());
                body[at] ^= 1 << bit;
            }
            Edit::Insert(at, byte) => body.insert(at.index(body.len() + 1), *byte),
            Edit::Delete(at) if !body.is_empty() => {
                body.remove(at.index(body.len()));
            }
            Edit::Truncate(at) => body.truncate(at.index(body.len() + 1)),
            Edit::Set(..) | Edit::Remove(_) => {
                if let Ok(mut json) = serde_json::from_slice::<Value>(&body) {
                    edit_json(&mut json, edit);
                    body = json.to_string().into_bytes();
                }
            }
            Edit::Flip(..) | Edit::Delete(_) => {}
        }
    }
    body
}

fn edit_json(json: &mut Value, edit: &Edit) {
    let path = match edit {
        Edit::Set(path, _) => path.as_str(),
        Edit::Remove(path) => path,
        _ => return,
    };
    let (object, name) = match path.split_once('.') {
        Some(("data", name)) => (json.get_mut("data").and_then(Value::as_object_mut), name),
        _ => (json.as_object_mut(), path),
    };
    let Some(object) = object else { return };
    match edit {
        Edit::Set(_, value) => {
            object.insert(name.to_owned(), value.clone());
        }
        _ => {
            object.remove(name);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The properties

proptest! {
    // proptest's default keeps failures in `proptest-regressions/` beside a `src/lib.rs`;
    // a test target has none, so say where instead of having it warn on every failure.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    /// Anything at all: no panic; a rejection names the expected type and what is wrong.
    #[test]
    fn arbitrary_bytes_are_decoded_or_rejected_with_a_reason(
        hint in type_hint(),
        body in any_body(),
    ) {
        check_decode::<UserRegisteredV1>(hint.as_deref(), &body)?;
        check_decode::<UserDeletedV1>(hint.as_deref(), &body)?;
    }

    /// A valid `user.registered.v1`, damaged: decoded to an envelope that round-trips, or
    /// rejected with a reason.
    #[test]
    fn a_damaged_user_registered_is_decoded_or_rejected_with_a_reason(
        original in envelope(user_registered()),
        edits in vec(edit(), 1..5),
        hint in type_hint(),
    ) {
        let body = serde_json::to_vec(&original).expect("an envelope serialises");
        let damaged = apply(body, &edits);
        check_decode::<UserRegisteredV1>(hint.as_deref(), &damaged)?;
        check_decode::<UserDeletedV1>(hint.as_deref(), &damaged)?;
    }

    /// A valid `user.deleted.v1`, damaged: decoded to an envelope that round-trips, or
    /// rejected with a reason.
    #[test]
    fn a_damaged_user_deleted_is_decoded_or_rejected_with_a_reason(
        original in envelope(user_deleted()),
        edits in vec(edit(), 1..5),
        hint in type_hint(),
    ) {
        let body = serde_json::to_vec(&original).expect("an envelope serialises");
        let damaged = apply(body, &edits);
        check_decode::<UserDeletedV1>(hint.as_deref(), &damaged)?;
        check_decode::<UserRegisteredV1>(hint.as_deref(), &damaged)?;
    }

    /// Every valid `user.registered.v1`, however it is encoded, decodes back equal, with
    /// the type hint or without.
    #[test]
    fn every_user_registered_decodes_back_equal(original in envelope(user_registered())) {
        for body in encodings(&original)? {
            let with_hint = check_decode::<UserRegisteredV1>(Some(UserRegisteredV1::TYPE), &body)?;
            prop_assert_eq!(with_hint.as_ref(), Some(&original));
            let without = check_decode::<UserRegisteredV1>(None, &body)?;
            prop_assert_eq!(without.as_ref(), Some(&original));
            // And it is not mistaken for the other type.
            prop_assert!(check_decode::<UserDeletedV1>(None, &body)?.is_none());
        }
    }

    /// Every valid `user.deleted.v1`, however it is encoded, decodes back equal, with the
    /// type hint or without.
    #[test]
    fn every_user_deleted_decodes_back_equal(original in envelope(user_deleted())) {
        for body in encodings(&original)? {
            let with_hint = check_decode::<UserDeletedV1>(Some(UserDeletedV1::TYPE), &body)?;
            prop_assert_eq!(with_hint.as_ref(), Some(&original));
            let without = check_decode::<UserDeletedV1>(None, &body)?;
            prop_assert_eq!(without.as_ref(), Some(&original));
            prop_assert!(check_decode::<UserRegisteredV1>(None, &body)?.is_none());
        }
    }
}
