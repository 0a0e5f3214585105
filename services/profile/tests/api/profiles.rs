//! `GET /profiles/{user_id}`: the rules of the read API, without any event applied.

use reqwest::StatusCode;
use uuid::Uuid;

use crate::helpers::spawn_app;

/// An id that is not a UUID is a 400 problem naming the parameter `user_id`.
#[tokio::test]
async fn a_malformed_id_is_a_400_naming_user_id() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.get_profile("not-a-uuid").await;

    // Assert
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = test_support::problem(response, "a malformed id").await;
    assert_eq!(body["code"], "invalid_parameter", "{body}");
    assert_eq!(body["errors"][0]["parameter"], "user_id", "{body}");
    app.stop().await;
}

/// An id whose event has not been applied (here: never published) is a 404 problem,
/// code `not_found`.
#[tokio::test]
async fn an_unknown_id_is_a_json_404() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.get_profile(&Uuid::now_v7().to_string()).await;

    // Assert
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body = test_support::problem(response, "an unknown id").await;
    assert_eq!(body["code"], "not_found", "{body}");
    app.stop().await;
}
