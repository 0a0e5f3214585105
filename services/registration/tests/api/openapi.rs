//! The OpenAPI document: committed, current, and what the service serves.

use crate::helpers::spawn_app;

/// `docs/openapi/registration.json` is what the code generates.
#[test]
fn the_committed_document_is_current() {
    test_support::ensure_openapi_committed("registration", &registration::http::openapi());
}

/// `GET /openapi.json` serves the document, with every route and the problem answers.
#[tokio::test]
async fn the_service_serves_its_document() {
    let app = spawn_app().await;

    let response = app.get("/openapi.json").await;

    let document = registration::http::openapi();
    test_support::check_served_openapi(
        response,
        &document,
        &[("/users", "post"), ("/users/{user_id}", "get")],
    )
    .await;
    let document = serde_json::to_value(&document).expect("serialises");
    let conflict = &document["paths"]["/users"]["post"]["responses"]["409"];
    assert!(
        conflict["content"]["application/problem+json"].is_object(),
        "{conflict}"
    );
    app.stop().await;
}
