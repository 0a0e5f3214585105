//! A handler's `Retry`: the message comes back through the delay queues after the
//! configured delays, and goes to the DLQ as `exhausted` once the attempts are used up.

use crate::helpers::{FIRST_DELAY, Script, ScriptedHandler, TestBroker, sign_up};

/// Retry twice, then done: the handler sees the event three times in order, each retry
/// no earlier than its delay (100 ms, then 200 ms), and afterwards no copy is left in the
/// work queue, a delay queue or the DLQ.
#[tokio::test]
async fn a_handler_that_asks_for_a_retry_twice_is_called_three_times_and_the_message_is_then_done()
{
    // Arrange
    let broker = TestBroker::start(3).await;
    let handler = ScriptedHandler::new();
    // Prefetch 1: the marker below is delivered only once every earlier delivery was
    // settled, so once the marker is seen, the event's last delivery has been acked.
    let consumer = broker.start_consumer(&handler, 1).await;
    let event = sign_up("Ada");
    handler.script(event.id, Script::retry_first(2, "smtp down"));

    // Act
    broker.publish(&event).await;
    let calls = handler.wait_for_calls(event.id, 3).await;
    let marker = sign_up("Marker");
    broker.publish(&marker).await;
    handler.wait_for_calls(marker.id, 1).await;

    // Assert
    let attempts: Vec<usize> = calls.iter().map(|call| call.attempt).collect();
    assert_eq!(attempts, [1, 2, 3], "attempts in order");
    assert_eq!(
        handler.calls_for(event.id).len(),
        3,
        "no call after the third, which said done"
    );
    let expected_gaps = [FIRST_DELAY, FIRST_DELAY * 2];
    for (pair, expected) in calls.windows(2).zip(expected_gaps) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= expected,
            "attempt {} came {gap:?} after attempt {}, before its delay of {expected:?}",
            pair[1].attempt,
            pair[0].attempt
        );
    }
    assert_eq!(broker.dead_letters().await, [], "nothing was dead-lettered");
    assert_eq!(
        broker.ready(&broker.names.work).await,
        0,
        "work queue empty"
    );
    for queue in broker.delay_queues() {
        assert_eq!(broker.ready(&queue).await, 0, "{queue} empty");
    }
    consumer.stop().await;
}

/// A handler that never stops asking for a retry: after the last attempt the message is
/// dead-lettered as `exhausted`, with the number of attempts, the work queue to redrive it
/// to, and the handler's own reason.
#[tokio::test]
async fn a_handler_that_always_asks_for_a_retry_ends_in_the_dlq_as_exhausted_after_max_attempts() {
    // Arrange
    let broker = TestBroker::start(2).await;
    let max_attempts = broker.retry.max_attempts();
    let handler = ScriptedHandler::new();
    let consumer = broker.start_consumer(&handler, 1).await;
    let event = sign_up("Grace");
    handler.script(
        event.id,
        Script::Always(messaging::outcome::HandlerOutcome::Retry(
            "database unavailable".to_owned(),
        )),
    );

    // Act
    broker.publish(&event).await;
    let letters = broker.wait_for_dead_letters(1).await;

    // Assert
    let letter = &letters[0];
    assert_eq!(letter.message_id, event.id.to_string());
    assert_eq!(letter.event_type, "user.registered.v1");
    assert_eq!(letter.kind, "exhausted");
    assert_eq!(letter.attempts, max_attempts.to_string());
    assert_eq!(letter.original_queue, broker.names.work);
    assert!(
        letter.reason.contains("database unavailable"),
        "the reason names the handler's: {:?}",
        letter.reason
    );
    // The dead letter is the only copy left, so no further call can come.
    let attempts: Vec<usize> = handler
        .calls_for(event.id)
        .iter()
        .map(|call| call.attempt)
        .collect();
    let expected: Vec<usize> = (1..=max_attempts as usize).collect();
    assert_eq!(attempts, expected, "one call per attempt");
    assert_eq!(
        broker.ready(&broker.names.work).await,
        0,
        "work queue empty"
    );
    for queue in broker.delay_queues() {
        assert_eq!(broker.ready(&queue).await, 0, "{queue} empty");
    }
    consumer.stop().await;
}
