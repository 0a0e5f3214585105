use lapin::{BasicProperties, types::ShortString};
use system_tests::{
    broker::{Broker, header},
    eventually::{PATIENCE, eventually},
    system::{TestSystem, USER_REGISTERED_QUEUES},
};

/// Messages that can never be processed (not JSON; a type no consumer knows) go to each
/// consumer's `.dlq` at once, with the reason in a header, and the consumers keep going:
/// a valid sign-up right after is still processed.
#[tokio::test(flavor = "multi_thread")]
async fn poison_messages_go_to_the_dead_letter_queues_and_the_consumers_keep_going() {
    let system = TestSystem::start().await;
    let topology = system.topology();
    let broker = Broker::connect().await;
    let poison: [(&[u8], &str); 2] = [
        (b"this is not json", "user.registered.v1"),
        (b"{}", "user.registered.v9"),
    ];
    for (body, kind) in poison {
        let properties = BasicProperties::default()
            .with_message_id(ShortString::from(uuid::Uuid::now_v7().to_string()))
            .with_type(ShortString::from(kind))
            .with_content_type(ShortString::from("application/json"));
        broker
            .publish(&topology.exchange(), "user.registered.v1", body, properties)
            .await;
    }

    system
        .sign_up_and_wait("edsger@example.org", "Edsger")
        .await;

    for consumer in USER_REGISTERED_QUEUES {
        let dlq = topology.dead_letter_queue(consumer);
        let messages = eventually(
            format!("both poison messages in {dlq}"),
            PATIENCE,
            async || {
                let messages = broker.peek(&dlq).await;
                if messages.len() >= 2 {
                    Ok(messages)
                } else {
                    Err(format!("{} messages", messages.len()))
                }
            },
        )
        .await;
        assert_eq!(messages.len(), 2, "{dlq} holds both poison messages");
        let reasons: Vec<String> = messages
            .iter()
            .map(|m| header(m, "dead-letter-reason").unwrap_or_default())
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
                header(message, "dead-letter-kind").as_deref(),
                Some("permanent")
            );
            assert_eq!(
                header(message, "original-routing-key").as_deref(),
                Some("user.registered.v1")
            );
            assert_eq!(
                header(message, "original-queue").as_deref(),
                Some(topology.queue(consumer).as_str())
            );
        }
        assert_eq!(
            broker.ready_count(&topology.queue(consumer)).await,
            0,
            "nothing stuck in {consumer}"
        );
    }
}
