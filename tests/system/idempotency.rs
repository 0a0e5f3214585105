//! Idempotency across the whole system: a retried sign-up is one user, one event, one
//! mail. The HTTP rules themselves (bad bodies, 409, 404, the 422 for a reused key) are
//! checked in-process by `services/registration/tests/api`.

use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::system::{Service, TestSystem};

/// Registration's rows: users and events (outbox rows), in that order.
async fn users_and_events(system: &TestSystem) -> (i64, i64) {
    let effects = system.effects();
    (
        effects
            .scalar(Service::Registration, "select count(*) from users")
            .await,
        effects
            .scalar(Service::Registration, "select count(*) from outbox")
            .await,
    )
}

/// Retrying a sign-up with the same `Idempotency-Key` returns the first answer (same
/// user id, 201) and writes no second event; reusing the key for another body is a 422.
#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_idempotency_key_returns_the_same_user_and_one_event() {
    let system = TestSystem::start().await;
    let body = json!({"email": "linus@example.org", "display_name": "Linus"});
    let key = [("Idempotency-Key", "signup-7c1d")];

    let registration = system.registration();
    let first = registration.post_user(&body, &key).await;
    let second = registration.post_user(&body, &key).await;

    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(
        second.status(),
        StatusCode::CREATED,
        "a replay is not a conflict"
    );
    assert_eq!(first.headers()["location"], second.headers()["location"]);
    let first: Value = first.json().await.expect("JSON");
    let second: Value = second.json().await.expect("JSON");
    assert_eq!(first, second, "the replay returns the first answer");
    assert_eq!(
        users_and_events(&system).await,
        (1, 1),
        "one user, one event"
    );

    let other = registration
        .post_user(
            &json!({"email": "other@example.org", "display_name": "Other"}),
            &key,
        )
        .await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let other: Value = other.json().await.expect("JSON");
    assert_eq!(other["code"], "idempotency_key_reused");

    let user_id = first["id"].as_str().expect("id");
    system.profiles().wait_for(user_id).await;
    system.emails().wait_for_sent("linus@example.org").await;
    system.effects().pass_marker().await;
    assert_eq!(
        system.smtp.messages_to("linus@example.org").len(),
        1,
        "one mail for one user"
    );
    assert_eq!(
        system.smtp.messages().len(),
        2,
        "no mail but Linus's and the marker's"
    );
}
