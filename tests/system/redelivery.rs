use std::time::Duration;

use lapin::{BasicProperties, types::ShortString};
use system_tests::{
    broker::Broker,
    system::{Service, TestSystem},
};

/// The same event (same id) delivered again changes nothing: still one profile, one mail,
/// one inbox row per consumer. A later sign-up is used as a marker that the duplicate has
/// been consumed by then.
#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_event_changes_nothing() {
    let system = TestSystem::start().await;
    let user_id = system.register_ok("margaret@example.org", "Margaret").await;
    system
        .wait_for_profile(&user_id, Duration::from_secs(10))
        .await;
    system.smtp.wait_for(1, Duration::from_secs(10)).await;

    let db = system.db(Service::Registration).await;
    let (event_id, payload): (uuid::Uuid, String) =
        sqlx::query_as("select event_id, payload::text from outbox limit 1")
            .fetch_one(&db)
            .await
            .expect("the outbox row");
    let properties = BasicProperties::default()
        .with_message_id(ShortString::from(event_id.to_string()))
        .with_type(ShortString::from("user.registered.v1"))
        .with_content_type(ShortString::from("application/json"));
    let broker = Broker::connect().await;
    for _ in 0..3 {
        broker
            .publish(
                &system.exchange(),
                "user.registered.v1",
                payload.as_bytes(),
                properties.clone(),
            )
            .await;
    }

    let marker = system.register_ok("marker@example.org", "Marker").await;
    system
        .wait_for_profile(&marker, Duration::from_secs(10))
        .await;
    system.smtp.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mails_to_margaret = system
        .smtp
        .messages()
        .iter()
        .filter(|m| m.rcpt_to == ["margaret@example.org"])
        .count();
    assert_eq!(
        mails_to_margaret, 1,
        "one welcome mail despite three duplicates"
    );
    assert_eq!(system.emails_to("margaret@example.org").await.len(), 1);
    assert_eq!(
        system
            .scalar(Service::Profile, "select count(*) from profiles")
            .await,
        2
    );
    assert_eq!(
        system
            .scalar(Service::Profile, "select count(*) from inbox")
            .await,
        2
    );
    assert_eq!(
        system
            .scalar(Service::Email, "select count(*) from inbox")
            .await,
        2
    );
    assert_eq!(
        system
            .scalar(Service::Email, "select count(*) from welcome_mails")
            .await,
        2
    );
}
