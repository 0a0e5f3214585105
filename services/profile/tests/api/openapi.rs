//! The OpenAPI document: committed, current, and what the service serves.

use crate::helpers::spawn_app;

/// `docs/openapi/profile.json` is what the code generates.
#[test]
fn the_committed_document_is_current() {
    test_support::ensure_openapi_committed(
        "profile",
        &service_kit::openapi::document(profile::http::api()),
    );
}

/// `GET /openapi.json` serves the document.
#[tokio::test]
async fn the_service_serves_its_document() {
    let app = spawn_app().await;

    let response = app.get("/openapi.json").await;

    test_support::check_served_openapi(
        response,
        &service_kit::openapi::document(profile::http::api()),
        &[("/profiles/{user_id}", "get")],
    )
    .await;
    app.stop().await;
}
