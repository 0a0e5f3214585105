//! The sign-up's input rules, seen from outside: what a bad body gets back, and that it
//! leaves nothing behind.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

/// What a case sends to `POST /users`.
enum Sent {
    /// A JSON document, with `content-type: application/json`.
    Json(Value),
    /// Raw text under the given content type.
    Raw(&'static str, String),
}

/// Every kind of bad body (invalid, missing or wrong-typed field, a blank or long name,
/// malformed JSON, another content type, an oversized body) gets a 4xx problem document
/// that names the problem, and none of them writes a user or an outbox row.
#[tokio::test]
async fn invalid_bodies_get_a_json_error_naming_the_problem() {
    // Arrange
    let app = spawn_app().await;
    let cases = [
        (
            "invalid email",
            Sent::Json(json!({"email": "ada-at-example.org", "display_name": "Ada"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            "missing email",
            Sent::Json(json!({"display_name": "Ada"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            "missing display name",
            Sent::Json(json!({"email": "ada@example.org"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "display_name",
        ),
        (
            "blank display name",
            Sent::Json(json!({"email": "ada@example.org", "display_name": "   "})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "display_name",
        ),
        (
            "display name too long",
            Sent::Json(json!({"email": "ada@example.org", "display_name": "x".repeat(101)})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "display_name",
        ),
        (
            "email of the wrong type",
            Sent::Json(json!({"email": 42, "display_name": "Ada"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            "malformed JSON",
            Sent::Raw("application/json", "{\"email\": ".to_owned()),
            StatusCode::BAD_REQUEST,
            "JSON",
        ),
        (
            "not JSON at all",
            Sent::Raw("text/plain", "hello".to_owned()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
        ),
        (
            "oversized body",
            Sent::Raw(
                "application/json",
                format!("{{\"email\":\"{}\"}}", "a".repeat(64 * 1024)),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "length limit",
        ),
    ];

    for (case, sent, status, named) in cases {
        // Act
        let response = match sent {
            Sent::Json(body) => app.post_user(&body).await,
            Sent::Raw(content_type, body) => app.post_raw_user(content_type, body).await,
        };

        // Assert
        assert_eq!(response.status(), status, "{case}: the status");
        let body = test_support::problem(response, case).await;
        let text = body.to_string();
        assert!(
            text.contains(named),
            "{case}: the error must name {named:?}: {text}"
        );
    }
    assert_eq!(
        app.count("select count(*) from users").await,
        0,
        "no user written"
    );
    assert_eq!(
        app.count("select count(*) from outbox").await,
        0,
        "no event written"
    );
    app.stop().await;
}

/// A second sign-up with the same address, in any letter case and with surrounding
/// spaces, is a 409 naming `email`, and writes no second user or event.
#[tokio::test]
async fn a_duplicate_email_is_a_conflict() {
    // Arrange
    let app = spawn_app().await;
    let first = app
        .post_user(&json!({"email": "grace@example.org", "display_name": "Grace"}))
        .await;
    assert_eq!(first.status(), StatusCode::CREATED, "the first sign-up");

    // Act
    let response = app
        .post_user(&json!({"email": " GRACE@example.org", "display_name": "Another Grace"}))
        .await;

    // Assert
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body = test_support::problem(response, "a duplicate email").await;
    assert_eq!(body["code"], "duplicate_email", "{body}");
    assert_eq!(body["errors"][0]["pointer"], "#/email", "{body}");
    assert_eq!(app.count("select count(*) from users").await, 1, "one user");
    assert_eq!(
        app.count("select count(*) from outbox").await,
        1,
        "one event only"
    );
    app.stop().await;
}
