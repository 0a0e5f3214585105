use std::time::Duration;

use lapin::{BasicProperties, types::ShortString};
use system_tests::{
    broker::{Broker, header},
    system::TestSystem,
};

/// Messages that can never be processed (not JSON; a type no consumer knows) go to each
/// consumer's `.dlq` at once, with the reason in a header, and the consumers keep going:
/// a valid sign-up right after is still processed.
#[tokio::test(flavor = "multi_thread")]
async fn poison_messages_go_to_the_dead_letter_queues_and_the_consumers_keep_going() {
    let system = TestSystem::start().await;
    let broker = Broker::connect().await;
    let properties = |kind: &str| {
        BasicProperties::default()
            .with_message_id(ShortString::from(uuid::Uuid::now_v7().to_string()))
            .with_type(ShortString::from(kind))
            .with_content_type(ShortString::from("application/json"))
    };
    broker
        .publish(
            &system.exchange(),
            "user.registered.v1",
            b"this is not json",
            properties("user.registered.v1"),
        )
        .await;
    broker
        .publish(
            &system.exchange(),
            "user.registered.v1",
            b"{}",
            properties("user.registered.v9"),
        )
        .await;

    let user_id = system.register_ok("edsger@example.org", "Edsger").await;
    system
        .wait_for_profile(&user_id, Duration::from_secs(10))
        .await;
    system.smtp.wait_for(1, Duration::from_secs(10)).await;

    for consumer in ["email.user-registered", "profile.user-registered"] {
        let dlq = format!("{}.dlq", system.queue(consumer));
        let messages = wait_for_messages(&broker, &dlq, 2).await;
        assert_eq!(messages.len(), 2, "{dlq} holds both poison messages");
        let reasons: Vec<String> = messages
            .iter()
            .map(|m| header(m, "x-dead-letter-reason").unwrap_or_default())
            .collect();
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("unparseable") && r.contains("line 1")),
            "{dlq}: {reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("unknown event type") && r.contains("user.registered.v9")),
            "{dlq}: {reasons:?}"
        );
        for message in &messages {
            assert_eq!(
                header(message, "x-dead-letter-kind").as_deref(),
                Some("permanent")
            );
            assert_eq!(
                header(message, "x-original-routing-key").as_deref(),
                Some("user.registered.v1")
            );
            assert_eq!(
                header(message, "x-original-queue").as_deref(),
                Some(system.queue(consumer).as_str())
            );
        }
        assert_eq!(
            broker.ready_count(&system.queue(consumer)).await,
            0,
            "nothing stuck in {consumer}"
        );
    }
}

async fn wait_for_messages(
    broker: &Broker,
    queue: &str,
    count: usize,
) -> Vec<lapin::message::BasicGetMessage> {
    for _ in 0..100 {
        let messages = broker.peek(queue).await;
        if messages.len() >= count {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    broker.peek(queue).await
}
