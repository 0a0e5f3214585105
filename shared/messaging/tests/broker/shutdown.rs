//! Shutting a consumer down while its handler is busy.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::helpers::{Script, ScriptedHandler, TestBroker, sign_up};

/// A shutdown requested while a handler runs lets that handler finish and acks its
/// message: a consumer started afterwards is not given the message again.
///
/// The order is fixed by the test, not by timing: the handler blocks until released, the
/// shutdown is requested while it is blocked, and only then is it released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_lets_an_in_flight_handler_finish_and_its_message_is_acked() {
    // Arrange
    let broker = TestBroker::start(2).await;
    let handler = ScriptedHandler::new();
    let release = Arc::new(Notify::new());
    let event = sign_up("Tony");
    handler.script(event.id, Script::HoldUntil(release.clone()));
    // Prefetch 1, here and for the second consumer: the marker is delivered only after
    // everything queued before it, so a redelivered event would reach the handler first.
    let consumer = broker.start_consumer(&handler, 1).await;
    broker.publish(&event).await;
    handler.wait_for_calls(event.id, 1).await;

    // Act
    consumer.begin_shutdown();
    // A stored permit: the handler goes on whether or not it is waiting yet.
    release.notify_one();
    consumer.stopped().await;

    // Assert
    let successor = broker.start_consumer(&handler, 1).await;
    let marker = sign_up("Marker");
    broker.publish(&marker).await;
    handler.wait_for_calls(marker.id, 1).await;
    assert_eq!(
        handler.calls_for(event.id).len(),
        1,
        "the event was acked by the consumer that shut down, not redelivered"
    );
    assert_eq!(broker.dead_letters().await, [], "nothing was dead-lettered");
    successor.stop().await;
}
