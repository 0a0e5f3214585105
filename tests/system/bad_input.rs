use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::system::{Service, TestSystem};

/// Every kind of bad body gets a 4xx with a JSON error that names the problem, and none of
/// them writes a user or an event.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_bodies_get_a_json_error_naming_the_problem() {
    let system = TestSystem::start().await;
    let url = system.url(Service::Registration, "/users");
    let long_name = "x".repeat(101);
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            "invalid email",
            system
                .http
                .post(&url)
                .json(&json!({"email": "ada-at-example.org", "display_name": "Ada"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            "missing email",
            system.http.post(&url).json(&json!({"display_name": "Ada"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            "missing display name",
            system
                .http
                .post(&url)
                .json(&json!({"email": "ada@example.org"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "display_name",
        ),
        (
            "blank display name",
            system
                .http
                .post(&url)
                .json(&json!({"email": "ada@example.org", "display_name": "   "})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "display_name",
        ),
        (
            "display name too long",
            system
                .http
                .post(&url)
                .json(&json!({"email": "ada@example.org", "display_name": long_name})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "display_name",
        ),
        (
            "email of the wrong type",
            system
                .http
                .post(&url)
                .json(&json!({"email": 42, "display_name": "Ada"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            "malformed JSON",
            system
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body("{\"email\": "),
            StatusCode::BAD_REQUEST,
            "JSON",
        ),
        (
            "not JSON at all",
            system
                .http
                .post(&url)
                .header("content-type", "text/plain")
                .body("hello"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
        ),
        (
            "oversized body",
            system
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(format!("{{\"email\":\"{}\"}}", "a".repeat(64 * 1024))),
            StatusCode::PAYLOAD_TOO_LARGE,
            "length limit",
        ),
    ];
    for (case, request, status, named) in cases {
        let response = request.send().await.expect("registration answers");
        assert_eq!(response.status(), status, "{case}");
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|error| panic!("{case}: JSON error body expected: {error}"));
        let text = body.to_string();
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{case}: {text}"
        );
        assert!(
            text.contains(named),
            "{case}: the error must name {named:?}: {text}"
        );
    }
    assert_eq!(
        system
            .scalar(Service::Registration, "select count(*) from users")
            .await,
        0
    );
    assert_eq!(
        system
            .scalar(Service::Registration, "select count(*) from outbox")
            .await,
        0
    );
}

/// A second sign-up with the same address, in any letter case, is a 409 naming the field.
#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_email_is_a_conflict() {
    let system = TestSystem::start().await;
    system.register_ok("grace@example.org", "Grace").await;

    let response = system.register(" GRACE@example.org", "Another Grace").await;

    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"], "duplicate_email");
    assert_eq!(body["field"], "email");
    assert_eq!(
        system
            .scalar(Service::Registration, "select count(*) from outbox")
            .await,
        1,
        "one event only"
    );
}

/// Retrying a sign-up with the same `Idempotency-Key` returns the first answer (same
/// user id, 201) and writes no second event; reusing the key for another body is a 422.
#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_idempotency_key_returns_the_same_user_and_one_event() {
    let system = TestSystem::start().await;
    let body = json!({"email": "linus@example.org", "display_name": "Linus"});
    let key = [("Idempotency-Key", "signup-7c1d")];

    let first = system.post_user(&body, &key).await;
    let second = system.post_user(&body, &key).await;

    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(
        second.status(),
        StatusCode::CREATED,
        "a replay is not a conflict"
    );
    assert_eq!(first.headers()["location"], second.headers()["location"]);
    let first: Value = first.json().await.expect("JSON");
    let second: Value = second.json().await.expect("JSON");
    assert_eq!(first, second, "the replay returns the first answer");
    assert_eq!(
        system
            .scalar(Service::Registration, "select count(*) from users")
            .await,
        1
    );
    assert_eq!(
        system
            .scalar(Service::Registration, "select count(*) from outbox")
            .await,
        1
    );

    let other = system
        .post_user(
            &json!({"email": "other@example.org", "display_name": "Other"}),
            &key,
        )
        .await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let other: Value = other.json().await.expect("JSON");
    assert_eq!(other["error"], "idempotency_key_reused");

    let user_id = first["id"].as_str().expect("id");
    system
        .wait_for_profile(user_id, std::time::Duration::from_secs(10))
        .await;
    let mails = system
        .smtp
        .wait_for(1, std::time::Duration::from_secs(10))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(system.smtp.messages().len(), 1, "one mail for one user");
}
