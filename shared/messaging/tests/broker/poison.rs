//! Messages that can never succeed go to the DLQ at once as `permanent`: an event the
//! handler rejects, and a body that does not decode.

use messaging::{headers::MAX_REASON_CHARS, outcome::HandlerOutcome};
use uuid::Uuid;

use crate::helpers::{Script, ScriptedHandler, TestBroker, sign_up};

/// A `Reject` skips the retries: the message is dead-lettered as `permanent` with the
/// handler's reason after a single call.
#[tokio::test]
async fn a_rejected_event_goes_to_the_dlq_at_once_as_permanent_with_the_handlers_reason() {
    // Arrange
    let broker = TestBroker::start(2).await;
    let handler = ScriptedHandler::new();
    // Prefetch 1: the marker is delivered only after the rejected event was settled, so
    // a second delivery of it (had there been one) would have come before the marker.
    let consumer = broker.start_consumer(&handler, 1).await;
    let event = sign_up("Barbara");
    let reason = "display name breaks an invariant";
    handler.script(
        event.id,
        Script::Always(HandlerOutcome::Reject(reason.to_owned())),
    );

    // Act
    broker.publish(&event).await;
    let letters = broker.wait_for_dead_letters(1).await;
    let marker = sign_up("Marker");
    broker.publish(&marker).await;
    handler.wait_for_calls(marker.id, 1).await;

    // Assert
    let letter = &letters[0];
    assert_eq!(letter.message_id, event.id.to_string());
    assert_eq!(letter.kind, "permanent");
    assert_eq!(letter.reason, reason);
    assert_eq!(letter.attempts, "1");
    assert_eq!(letter.original_queue, broker.names.work);
    assert_eq!(
        handler.calls_for(event.id).len(),
        1,
        "the handler is called exactly once"
    );
    for queue in broker.delay_queues() {
        assert_eq!(broker.ready(&queue).await, 0, "no retry copy in {queue}");
    }
    consumer.stop().await;
}

/// A body that is not JSON never reaches the handler: it is dead-lettered as `permanent`
/// with the decoding error, and the consumer goes on with the next message.
#[tokio::test]
async fn an_undecodable_body_never_reaches_the_handler_and_is_dead_lettered_as_permanent() {
    // Arrange
    let broker = TestBroker::start(2).await;
    let handler = ScriptedHandler::new();
    // Prefetch 1: the valid event, published after the poison, is delivered only once the
    // poison was settled; when the handler has seen it, it has seen all it ever will.
    let consumer = broker.start_consumer(&handler, 1).await;
    let poison_id = Uuid::now_v7().to_string();
    let valid = sign_up("Edsger");

    // Act
    broker.publish_body(&poison_id, b"this is not json").await;
    broker.publish(&valid).await;
    handler.wait_for_calls(valid.id, 1).await;
    let letters = broker.wait_for_dead_letters(1).await;

    // Assert
    let seen: Vec<Uuid> = handler.calls().iter().map(|call| call.event_id).collect();
    assert_eq!(
        seen,
        [valid.id],
        "the handler saw the valid event and nothing else"
    );
    let letter = &letters[0];
    assert_eq!(letter.message_id, poison_id);
    assert_eq!(letter.kind, "permanent");
    assert!(
        letter.reason.contains("unparseable"),
        "the reason is the decoding error: {:?}",
        letter.reason
    );
    assert_eq!(letter.attempts, "1");
    assert_eq!(letter.original_queue, broker.names.work);
    consumer.stop().await;
}

/// A body whose decoding error quotes a huge part of it (here a `type` of 300 000
/// characters) is dead-lettered like any other, with the reason cut short. Uncut, the
/// dead letter's headers did not fit in one AMQP frame: RabbitMQ closed the consumer's
/// connection at each attempt, and the message held up the queue.
#[tokio::test]
async fn a_body_with_a_huge_decoding_error_is_dead_lettered_with_the_reason_cut_short() {
    // Arrange
    let broker = TestBroker::start(2).await;
    let handler = ScriptedHandler::new();
    let consumer = broker.start_consumer(&handler, 1).await;
    let mut poison = serde_json::to_value(sign_up("Ada")).expect("an envelope is JSON");
    poison["type"] = "x".repeat(300_000).into();
    let poison = serde_json::to_vec(&poison).expect("JSON serialises");
    let poison_id = Uuid::now_v7().to_string();
    let valid = sign_up("Grace");

    // Act
    broker.publish_body(&poison_id, &poison).await;
    broker.publish(&valid).await;
    handler.wait_for_calls(valid.id, 1).await;
    let letters = broker.wait_for_dead_letters(1).await;

    // Assert
    let letter = &letters[0];
    assert_eq!(letter.message_id, poison_id);
    assert_eq!(letter.kind, "permanent");
    assert!(
        letter.reason.starts_with("unknown event type \"xxx"),
        "the reason is the decoding error: {:.80}",
        letter.reason
    );
    assert!(
        letter.reason.ends_with('…'),
        "cut short: {:.80}",
        letter.reason
    );
    assert_eq!(letter.reason.chars().count(), MAX_REASON_CHARS + 1);
    consumer.stop().await;
}
