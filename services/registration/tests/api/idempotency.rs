//! `Idempotency-Key`: a client's retry gets the first answer back, not a second user.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

/// Retrying a sign-up with the same `Idempotency-Key` returns the first answer (201, the
/// same body and `Location`) and writes no second user or outbox row; the same key with
/// another body is a 422 `idempotency_key_reused` that writes nothing either.
#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_same_user_and_one_event() {
    // Arrange
    let app = spawn_app().await;
    let body = json!({"email": "linus@example.org", "display_name": "Linus"});
    let key = [("Idempotency-Key", "signup-7c1d")];

    // Act
    let first = app.post_user_with_headers(&body, &key).await;
    let second = app.post_user_with_headers(&body, &key).await;
    let other = app
        .post_user_with_headers(
            &json!({"email": "other@example.org", "display_name": "Other"}),
            &key,
        )
        .await;

    // Assert
    assert_eq!(first.status(), StatusCode::CREATED, "the first sign-up");
    assert_eq!(
        second.status(),
        StatusCode::CREATED,
        "a replay is not a conflict"
    );
    assert_eq!(
        first.headers()["location"],
        second.headers()["location"],
        "the replay points at the same user"
    );
    let first: Value = first.json().await.expect("a JSON body");
    let second: Value = second.json().await.expect("a JSON body");
    assert_eq!(first, second, "the replay returns the first answer");
    assert_eq!(
        other.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reused key"
    );
    let other = test_support::problem(other, "a reused key").await;
    assert_eq!(other["code"], "idempotency_key_reused", "{other}");
    assert_eq!(app.count("select count(*) from users").await, 1, "one user");
    assert_eq!(
        app.count("select count(*) from outbox").await,
        1,
        "one event"
    );
    app.stop().await;
}
