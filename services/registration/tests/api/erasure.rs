//! `DELETE /users/{id}`: the user asks to be forgotten.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

/// Signs up `email` with an `Idempotency-Key` (so that an idempotency record exists too)
/// and returns the new user's id.
async fn sign_up(app: &TestApp, email: &str, key: &str) -> String {
    let response = app
        .post_user_with_headers(
            &json!({"email": email, "display_name": "Ada"}),
            &[("Idempotency-Key", key)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED, "the sign-up");
    let body: Value = response.json().await.expect("a JSON body");
    body["id"].as_str().expect("an id").to_owned()
}

/// After the erasure nothing in registration's database holds the address, not even
/// sealed: not the users table, not the event log (the `user.registered.v1` is gone, the
/// `user.deleted.v1` that replaced it carries no personal data), not the idempotency
/// table. What is left is the id, in the erasure record and in the new event.
#[tokio::test]
async fn an_erasure_leaves_no_personal_data_and_writes_user_deleted() {
    // Arrange
    let app = spawn_app().await;
    let id = sign_up(&app, "ada@example.org", "erase-me-1").await;
    let other = sign_up(&app, "grace@example.org", "keep-me-1").await;

    // Act
    let erased = app.delete(&format!("/users/{id}")).await;

    // Assert
    assert_eq!(erased.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/users/{id}")).await.status(), 404);
    assert_eq!(app.get(&format!("/users/{other}")).await.status(), 200);
    assert_eq!(
        app.count("select count(*) from users").await,
        1,
        "only the other user's row is left"
    );
    assert_eq!(
        app.count("select count(*) from idempotency").await,
        1,
        "only the other user's idempotency record is left"
    );
    assert_eq!(
        app.count("select count(*) from outbox where event_type = 'user.registered.v1'")
            .await,
        1,
        "only the other user's sign-up is left in the log"
    );
    let events = app.events_of(&id).await;
    assert_eq!(
        events.len(),
        1,
        "only the deletion is left in the log: {events:?}"
    );
    let (event_type, payload) = &events[0];
    assert_eq!(event_type, "user.deleted.v1");
    assert_eq!(payload["sequence"], 2, "the user's second event");
    assert_eq!(payload["subject"], id.as_str());
    assert_eq!(payload["data"]["user_id"], id.as_str());
    assert_eq!(
        app.count("select count(*) from erased_users").await,
        1,
        "the erasure is recorded"
    );
    app.stop().await;
}

/// Erasing twice answers 204 twice and writes one event; an id nobody had is a 404.
#[tokio::test]
async fn erasing_again_is_a_204_and_an_unknown_id_a_404() {
    // Arrange
    let app = spawn_app().await;
    let id = sign_up(&app, "twice@example.org", "erase-twice").await;

    // Act
    let first = app.delete(&format!("/users/{id}")).await;
    let second = app.delete(&format!("/users/{id}")).await;
    let unknown = app.delete(&format!("/users/{}", Uuid::now_v7())).await;

    // Assert
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(second.status(), StatusCode::NO_CONTENT);
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body = test_support::problem(unknown, "an unknown user").await;
    assert_eq!(body["code"], "not_found", "{body}");
    assert_eq!(
        app.count("select count(*) from outbox where event_type = 'user.deleted.v1'")
            .await,
        1
    );
    app.stop().await;
}

/// Concurrent erasures of one user take turns on the user's row: all answer 204, one
/// event is written.
#[tokio::test]
async fn concurrent_erasures_write_one_event() {
    // Arrange
    let app = spawn_app().await;
    let id = sign_up(&app, "race@example.org", "erase-race").await;
    let path = format!("/users/{id}");

    // Act
    let answers = futures_util::future::join_all((0..8).map(|_| app.delete(&path))).await;

    // Assert
    for answer in answers {
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(
        app.count("select count(*) from outbox where event_type = 'user.deleted.v1'")
            .await,
        1
    );
    app.stop().await;
}

/// The address is free again at once: signing up with it makes a new user, with a new
/// id, and its idempotency key (erased with the old user) works again.
#[tokio::test]
async fn the_address_of_an_erased_user_can_sign_up_again() {
    // Arrange
    let app = spawn_app().await;
    let old = sign_up(&app, "again@example.org", "again-1").await;
    assert_eq!(app.delete(&format!("/users/{old}")).await.status(), 204);

    // Act
    let new = sign_up(&app, "again@example.org", "again-1").await;

    // Assert
    assert_ne!(new, old, "a new user, not the erased one replayed");
    assert_eq!(app.get(&format!("/users/{new}")).await.status(), 200);
    app.stop().await;
}
