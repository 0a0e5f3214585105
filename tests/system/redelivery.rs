use lapin::{BasicProperties, types::ShortString};
use system_tests::{
    broker::Broker,
    defaults,
    system::{Service, TestSystem},
};

/// The same event (same id) delivered again changes nothing: still one profile, one mail,
/// one inbox row per consumer. A marker sign-up after the duplicates shows that they
/// have been consumed by the time the counts are taken.
#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_event_changes_nothing() {
    let system = TestSystem::start().await;
    system
        .sign_up_and_wait("margaret@example.org", "Margaret")
        .await;

    let db = system.effects().db(Service::Registration).await;
    let (event_id, sealed): (uuid::Uuid, Vec<u8>) =
        sqlx::query_as("select event_id, payload_sealed from outbox limit 1")
            .fetch_one(&db)
            .await
            .expect("the outbox row");
    let payload = defaults::sealer()
        .open("outbox.payload", &sealed)
        .expect("the event opens with the test key");
    let properties = BasicProperties::default()
        .with_message_id(ShortString::from(event_id.to_string()))
        .with_type(ShortString::from("user.registered.v1"))
        .with_content_type(ShortString::from("application/json"));
    let broker = Broker::connect().await;
    for _ in 0..3 {
        broker
            .publish(
                &system.topology().exchange(),
                "user.registered.v1",
                payload.as_bytes(),
                properties.clone(),
            )
            .await;
    }

    system.effects().pass_marker().await;

    assert_eq!(
        system.smtp.messages_to("margaret@example.org").len(),
        1,
        "one welcome mail despite three duplicates"
    );
    assert_eq!(system.emails().to("margaret@example.org").await.len(), 1);
    // Margaret's rows and the marker's: one each.
    let rows = [
        (Service::Profile, "select count(*) from profiles"),
        (Service::Profile, "select count(*) from inbox"),
        (Service::Email, "select count(*) from inbox"),
        (Service::Email, "select count(*) from welcome_mails"),
    ];
    for (service, sql) in rows {
        assert_eq!(
            system.effects().scalar(service, sql).await,
            2,
            "{sql} on {}",
            service.name()
        );
    }
}
