//! W3C Trace Context at the HTTP edge: `traceresponse` out, `traceparent` in.

use reqwest::{Response, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

/// The trace id of a caller's trace.
const CALLERS_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The caller's span in that trace.
const CALLERS_SPAN_ID: &str = "00f067aa0ba902b7";
/// What the caller sends: that trace and span, sampled.
const CALLERS_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A sign-up answers with a `traceresponse` header of the W3C form
/// `00-<32 hex>-<16 hex>-<2 hex>`, with a real (non-zero) trace id and span id.
#[tokio::test]
async fn a_sign_up_answers_with_a_w3c_traceresponse() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .post_user(&json!({"email": "ada@example.org", "display_name": "Ada"}))
        .await;

    // Assert
    assert_eq!(response.status(), StatusCode::CREATED);
    let [version, trace_id, span_id, flags] = traceresponse(&response);
    assert_eq!(version, "00", "the version");
    for (part, value, length) in [
        ("trace id", &trace_id, 32),
        ("span id", &span_id, 16),
        ("flags", &flags, 2),
    ] {
        assert!(
            value.len() == length && value.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "the {part} is {length} lower-case hex digits: {value:?}"
        );
    }
    assert!(trace_id.chars().any(|c| c != '0'), "the trace id is valid");
    assert!(span_id.chars().any(|c| c != '0'), "the span id is valid");
    app.stop().await;
}

/// A sign-up sent with a `traceparent` continues that trace: its `traceresponse` has the
/// caller's trace id and a span of its own, and the outbox row carries the same trace
/// on to the relay.
#[tokio::test]
async fn a_callers_traceparent_is_continued() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .post_user_with_headers(
            &json!({"email": "ada@example.org", "display_name": "Ada"}),
            &[("traceparent", CALLERS_TRACEPARENT)],
        )
        .await;

    // Assert
    assert_eq!(response.status(), StatusCode::CREATED);
    let [_, trace_id, span_id, _] = traceresponse(&response);
    assert_eq!(trace_id, CALLERS_TRACE_ID, "the caller's trace continues");
    assert_ne!(span_id, CALLERS_SPAN_ID, "the server span is a new span");
    let stored = app.outbox_traceparents().await;
    assert_eq!(stored.len(), 1, "one outbox row");
    let stored = stored[0].as_deref().unwrap_or_default();
    assert!(
        stored.contains(CALLERS_TRACE_ID),
        "the outbox row carries the caller's trace: {stored:?}"
    );
    app.stop().await;
}

/// The four dash-separated parts of the response's `traceresponse` header.
fn traceresponse(response: &Response) -> [String; 4] {
    let header = response
        .headers()
        .get("traceresponse")
        .expect("a traceresponse header")
        .to_str()
        .expect("traceresponse is text");
    let parts: Vec<String> = header.split('-').map(str::to_owned).collect();
    parts
        .try_into()
        .unwrap_or_else(|parts| panic!("four parts expected: {parts:?}"))
}
