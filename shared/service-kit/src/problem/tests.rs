use axum::routing::get;
use serde_json::Value;
use tower::ServiceExt;

use super::*;

async fn answer(router: Router, method: &str, uri: &str) -> (StatusCode, String, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("a valid request");
    let response = for_the_framework(router)
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .expect("text")
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .expect("a body");
    let body = serde_json::from_slice(&body).expect("a JSON body");
    (status, content_type, body)
}

fn routes() -> Router {
    Router::new()
        .route(
            "/items/{id}",
            get(|axum::extract::Path(id): axum::extract::Path<u32>| async move { id.to_string() }),
        )
        .route("/panics", get(panics))
}

async fn panics() -> &'static str {
    panic!("boom")
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let (status, content_type, body) = answer(routes(), "GET", "/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type, CONTENT_TYPE);
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["title"], "Not Found");
    assert_eq!(body["status"], 404);
    assert_eq!(body["code"], "not_found");
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem() {
    let (status, content_type, body) = answer(routes(), "DELETE", "/items/1").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(content_type, CONTENT_TYPE);
    assert_eq!(body["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_plain_text_rejection_becomes_the_detail() {
    let (status, content_type, body) = answer(routes(), "GET", "/items/seven").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(content_type, CONTENT_TYPE);
    let detail = body["detail"].as_str().expect("a detail");
    assert!(detail.contains("Cannot parse"), "{detail}");
}

#[tokio::test]
async fn a_panic_is_a_500_problem_without_the_message() {
    let (status, content_type, body) = answer(routes(), "GET", "/panics").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(content_type, CONTENT_TYPE);
    assert_eq!(body["code"], "internal");
    assert!(!body.to_string().contains("boom"), "{body}");
}

#[test]
fn an_input_error_names_where_the_input_is() {
    let problem = Problem::new(StatusCode::CONFLICT, "duplicate_email", "taken")
        .at(Input::body_field("email"));
    let json = serde_json::to_value(&problem).expect("serialises");
    assert_eq!(json["type"], "tag:signup-demo,2026:problem:duplicate_email");
    assert_eq!(json["title"], "Conflict");
    assert_eq!(json["errors"][0]["pointer"], "#/email");
    assert_eq!(json["errors"][0]["detail"], "taken");
    let header = Problem::new(StatusCode::BAD_REQUEST, "bad_key", "empty")
        .at(Input::Header("Idempotency-Key".to_owned()));
    let json = serde_json::to_value(&header).expect("serialises");
    assert_eq!(
        json["errors"][0],
        serde_json::json!({"header": "Idempotency-Key", "detail": "empty"})
    );
}
