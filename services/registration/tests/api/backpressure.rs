use std::time::Duration;

use axum::{body::Body, http::Request};
use registration::{
    http::{AppState, router},
    outbox::RelayWakeUp,
    sign_ups::SignUps,
};
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// A database that accepts connections and never answers: every request that reaches it
/// hangs, which is exactly what a saturated or stalled database looks like from here.
async fn stalled_database() -> (TcpListener, sqlx::PgPool) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "postgres://postgres@{}/stalled",
        listener.local_addr().expect("addr")
    );
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy(&url)
        .expect("a lazy pool needs no connection");
    (listener, pool)
}

fn sign_up() -> Request<Body> {
    Request::post("/users")
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"email":"ada@example.org","display_name":"Ada"}"#,
        ))
        .expect("a valid request")
}

/// With every slot taken, the next request is answered 503 with `Retry-After` at once
/// instead of waiting in an unbounded queue.
#[tokio::test]
async fn a_saturated_api_answers_503_with_retry_after() {
    let (_listener, db) = stalled_database().await;
    let state = AppState {
        sign_ups: SignUps::new(db.clone(), 1),
        db,
        relay_wake: RelayWakeUp::default(),
        pii: test_support::test_sealer(),
    };
    let app = router(state, 1, None);

    let stuck = tokio::spawn(app.clone().oneshot(sign_up()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let shed = tokio::time::timeout(Duration::from_secs(2), app.oneshot(sign_up()))
        .await
        .expect("a shed request is answered at once")
        .expect("infallible");

    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    let body = axum::body::to_bytes(shed.into_body(), 4096)
        .await
        .expect("body");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON error body");
    assert_eq!(body["code"], "overloaded");
    assert!(
        !stuck.is_finished(),
        "the first request still holds its slot"
    );
    stuck.abort();
}

/// A database that cannot be reached is a 503 with `Retry-After` (try again, with the
/// same Idempotency-Key), not a 500 (something is wrong with the request or the code).
#[tokio::test]
async fn an_unreachable_database_is_a_503_with_retry_after() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let db = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/gone"))
        .expect("a lazy pool needs no connection");
    let app = router(
        AppState {
            sign_ups: SignUps::new(db.clone(), 8),
            db,
            relay_wake: RelayWakeUp::default(),
            pii: test_support::test_sealer(),
        },
        8,
        None,
    );

    let response = app.oneshot(sign_up()).await.expect("infallible");

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
}
