use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::system::{Service, TestSystem};

/// Registration's rows: users and events (outbox rows), in that order.
async fn users_and_events(system: &TestSystem) -> (i64, i64) {
    let effects = system.effects();
    (
        effects
            .scalar(Service::Registration, "select count(*) from users")
            .await,
        effects
            .scalar(Service::Registration, "select count(*) from outbox")
            .await,
    )
}

/// Every kind of bad body gets a 4xx with a JSON error that names the problem, and none of
/// them writes a user or an event.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_bodies_get_a_json_error_naming_the_problem() {
    let system = TestSystem::start().await;
    let registration = system.registration();
    let long_name = "x".repeat(101);
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            "invalid email",
            registration
                .post_users()
                .json(&json!({"email": "ada-at-example.org", "display_name": "Ada"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            "missing email",
            registration
                .post_users()
                .json(&json!({"display_name": "Ada"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            "missing display name",
            registration
                .post_users()
                .json(&json!({"email": "ada@example.org"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "display_name",
        ),
        (
            "blank display name",
            registration
                .post_users()
                .json(&json!({"email": "ada@example.org", "display_name": "   "})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "display_name",
        ),
        (
            "display name too long",
            registration
                .post_users()
                .json(&json!({"email": "ada@example.org", "display_name": long_name})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "display_name",
        ),
        (
            "email of the wrong type",
            registration
                .post_users()
                .json(&json!({"email": 42, "display_name": "Ada"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            "malformed JSON",
            registration
                .post_users()
                .header("content-type", "application/json")
                .body("{\"email\": "),
            StatusCode::BAD_REQUEST,
            "JSON",
        ),
        (
            "not JSON at all",
            registration
                .post_users()
                .header("content-type", "text/plain")
                .body("hello"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
        ),
        (
            "oversized body",
            registration
                .post_users()
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
        users_and_events(&system).await,
        (0, 0),
        "no user and no event"
    );
}

/// A second sign-up with the same address, in any letter case, is a 409 naming the field.
#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_email_is_a_conflict() {
    let system = TestSystem::start().await;
    system
        .registration()
        .sign_up_ok("grace@example.org", "Grace")
        .await;

    let response = system
        .registration()
        .sign_up(" GRACE@example.org", "Another Grace")
        .await;

    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"], "duplicate_email");
    assert_eq!(body["field"], "email");
    assert_eq!(
        users_and_events(&system).await,
        (1, 1),
        "one user, one event only"
    );
}

/// Retrying a sign-up with the same `Idempotency-Key` returns the first answer (same
/// user id, 201) and writes no second event; reusing the key for another body is a 422.
#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_idempotency_key_returns_the_same_user_and_one_event() {
    let system = TestSystem::start().await;
    let body = json!({"email": "linus@example.org", "display_name": "Linus"});
    let key = [("Idempotency-Key", "signup-7c1d")];

    let registration = system.registration();
    let first = registration.post_user(&body, &key).await;
    let second = registration.post_user(&body, &key).await;

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
        users_and_events(&system).await,
        (1, 1),
        "one user, one event"
    );

    let other = registration
        .post_user(
            &json!({"email": "other@example.org", "display_name": "Other"}),
            &key,
        )
        .await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let other: Value = other.json().await.expect("JSON");
    assert_eq!(other["error"], "idempotency_key_reused");

    let user_id = first["id"].as_str().expect("id");
    system.profiles().wait_for(user_id).await;
    system.emails().wait_for_sent("linus@example.org").await;
    system.effects().pass_marker().await;
    assert_eq!(
        system.smtp.messages_to("linus@example.org").len(),
        1,
        "one mail for one user"
    );
    assert_eq!(
        system.smtp.messages().len(),
        2,
        "no mail but Linus's and the marker's"
    );
}
