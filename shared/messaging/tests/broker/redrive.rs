//! `dead_letters::redrive`: dead-lettered messages go back to the queue they failed in,
//! as if new, and a selection by id moves only what it names.

use messaging::{headers, outcome::HandlerOutcome};

use crate::helpers::{Script, ScriptedHandler, TestBroker, header, message_id, sign_up};

/// Two events dead-lettered (one after a retry). A redrive of one by id moves only that
/// one, back to its work queue with the attempt counter at 1 and the failure bookkeeping
/// gone, and the handler, now succeeding, handles it; a redrive of all moves the other,
/// and the DLQ ends empty.
#[tokio::test]
async fn a_redrive_sends_dead_letters_back_to_work_from_attempt_one_and_a_selection_moves_only_its_ids()
 {
    // Arrange: two dead letters, `first` after two attempts, `second` after one.
    let broker = TestBroker::start(2).await;
    let handler = ScriptedHandler::new();
    let first = sign_up("Alan");
    let second = sign_up("Alonzo");
    handler.script(
        first.id,
        Script::Answers(
            [
                HandlerOutcome::Retry("flaky".to_owned()),
                HandlerOutcome::Reject("bad first".to_owned()),
            ]
            .into(),
        ),
    );
    handler.script(
        second.id,
        Script::Always(HandlerOutcome::Reject("bad second".to_owned())),
    );
    let consumer = broker.start_consumer(&handler, 1).await;
    broker.publish(&first).await;
    broker.publish(&second).await;
    let letters = broker.wait_for_dead_letters(2).await;
    let attempts_of_first = letters
        .iter()
        .find(|letter| letter.message_id == first.id.to_string())
        .map(|letter| letter.attempts.clone());
    assert_eq!(attempts_of_first.as_deref(), Some("2"), "{letters:?}");
    // Stopped, so that the redriven message can be looked at in the work queue.
    consumer.stop().await;
    handler.succeed(first.id);
    handler.succeed(second.id);

    // Act: redrive `first` only.
    let redriven = broker.redrive(Some(&[first.id])).await;

    // Assert: it alone is back in work, as attempt 1, marked as redriven.
    assert_eq!(redriven, 1, "one message redriven");
    let waiting = broker.peek(&broker.names.work).await;
    assert_eq!(waiting.len(), 1, "one message back in work");
    let message = &waiting[0];
    assert_eq!(message_id(message), first.id.to_string());
    assert_eq!(header(message, headers::ATTEMPT).as_deref(), Some("1"));
    assert_eq!(
        header(message, headers::REDRIVEN_FROM).as_deref(),
        Some(broker.names.dead_letter.as_str())
    );
    assert_eq!(header(message, headers::DEAD_LETTER_KIND), None);
    assert_eq!(header(message, headers::DEAD_LETTER_REASON), None);
    assert_eq!(
        header(message, headers::ORIGINAL_QUEUE).as_deref(),
        Some(broker.names.work.as_str())
    );
    // The unselected message went back to the DLQ when the redrive's channel closed,
    // which the broker may apply a moment later.
    let left = broker.wait_for_dead_letters(1).await;
    assert_eq!(left[0].message_id, second.id.to_string(), "{left:?}");

    // Act: the handler, now succeeding, handles it.
    let consumer = broker.start_consumer(&handler, 1).await;
    let calls = handler.wait_for_calls(first.id, 3).await;

    // Assert
    assert_eq!(calls.len(), 3, "two failed attempts and the redriven one");

    // Act: redrive everything that is left.
    let redriven = broker.redrive(None).await;
    handler.wait_for_calls(second.id, 2).await;

    // Assert
    assert_eq!(redriven, 1, "the one message left redriven");
    assert_eq!(broker.dead_letters().await, [], "the DLQ is empty");
    consumer.stop().await;
}

/// A message its consumer crashes on every time is moved to the DLQ by the broker itself
/// (the work queue's delivery limit). `dlq list` still says what happened, from the
/// broker's own headers, and a redrive sends it back without any of them, as new.
#[tokio::test]
async fn a_message_the_broker_dead_lettered_is_listed_with_a_reason_and_redriven_clean() {
    // Arrange: the queues declared, then no consumer but one that crashes on everything.
    let broker = TestBroker::start(1).await;
    let handler = ScriptedHandler::new();
    broker.start_consumer(&handler, 1).await.stop().await;
    let event = sign_up("Kurt");
    broker.publish(&event).await;

    // Act
    let deliveries = broker.crash_on_every_delivery().await;
    let letters = broker.wait_for_dead_letters(1).await;

    // Assert: listed with a kind and a reason, and the queue it died in.
    assert!(deliveries >= 20, "{deliveries} deliveries before the limit");
    let letter = &letters[0];
    assert_eq!(letter.message_id, event.id.to_string());
    assert_eq!(letter.kind, "exhausted", "{letter:?}");
    assert!(letter.reason.contains("delivery limit"), "{letter:?}");
    assert_eq!(letter.attempts, ">20", "{letter:?}");
    assert_eq!(letter.original_queue, broker.names.work, "{letter:?}");

    // Act: redrive it.
    assert_eq!(broker.redrive(None).await, 1);

    // Assert: back in work with none of the broker's headers, as a new message: the
    // broker's delivery count (which it sets on every delivery, this peek included)
    // starts again at 0.
    let waiting = broker.peek(&broker.names.work).await;
    assert_eq!(waiting.len(), 1, "back in work");
    for name in headers::BROKER_HEADERS {
        let value = header(&waiting[0], name);
        if name == headers::DELIVERY_COUNT {
            assert!(
                matches!(value.as_deref(), None | Some("0")),
                "{name}: {value:?}"
            );
        } else {
            assert_eq!(value, None, "{name} is gone");
        }
    }
    assert_eq!(header(&waiting[0], headers::ATTEMPT).as_deref(), Some("1"));
}
