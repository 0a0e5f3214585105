//! `GET /users/{id}`: where a sign-up's `Location` points.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::spawn_app;

/// The `Location` of a sign-up answers with the user the sign-up created: the same body,
/// with the email and the display name as registration normalised them.
#[tokio::test]
async fn the_location_of_a_sign_up_returns_the_created_user() {
    // Arrange
    let app = spawn_app().await;
    let created = app
        .post_user(&json!({"email": " Ada@Example.org ", "display_name": " Ada "}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED, "the sign-up");
    let location = created.headers()["location"]
        .to_str()
        .expect("Location is text")
        .to_owned();
    let created: Value = created.json().await.expect("a JSON body");

    // Act
    let found = app.get(&location).await;

    // Assert
    assert_eq!(found.status(), StatusCode::OK, "GET {location}");
    let found: Value = found.json().await.expect("a JSON body");
    assert_eq!(found, created, "GET returns what POST created");
    assert_eq!(
        location,
        format!("/users/{}", found["id"].as_str().expect("an id"))
    );
    assert_eq!(found["email"], "ada@example.org", "trimmed and lower-cased");
    assert_eq!(found["display_name"], "Ada", "trimmed");
    app.stop().await;
}

/// An id no user has is a 404 problem, code `not_found`.
#[tokio::test]
async fn an_unknown_user_is_a_json_404() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.get(&format!("/users/{}", Uuid::now_v7())).await;

    // Assert
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body = test_support::problem(response, "an unknown user").await;
    assert_eq!(body["code"], "not_found", "{body}");
    assert!(
        body["type"].as_str().is_some_and(|t| t.starts_with("tag:")),
        "{body}"
    );
    app.stop().await;
}

/// What the framework answers by itself is a problem too: an unknown route, a method the
/// route does not take, and a path parameter that does not parse (named in `errors`).
#[tokio::test]
async fn framework_answers_are_problems() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let unknown_route = app.get("/no/such/route").await;
    let wrong_method = app.delete("/users").await;
    let not_a_uuid = app.get("/users/not-a-uuid").await;

    // Assert
    assert_eq!(unknown_route.status(), StatusCode::NOT_FOUND);
    let body = test_support::problem(unknown_route, "an unknown route").await;
    assert_eq!(body["type"], "about:blank", "{body}");
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body = test_support::problem(wrong_method, "a wrong method").await;
    assert_eq!(body["code"], "method_not_allowed", "{body}");
    assert_eq!(not_a_uuid.status(), StatusCode::BAD_REQUEST);
    let body = test_support::problem(not_a_uuid, "a malformed id").await;
    assert_eq!(body["code"], "invalid_parameter", "{body}");
    assert_eq!(body["errors"][0]["parameter"], "user_id", "{body}");
    app.stop().await;
}
