//! Unit tests of [`Headers`]: today's and earlier names, the attempt
//! counter, and what a retry or a redrive writes.

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
