//! The per-client sign-up limit, over real HTTP: the client is the connection's address.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app_with;

/// With a burst of 3, the fourth sign-up in a row from one client is answered 429 with
/// `Retry-After` and a problem naming the limit, and writes nothing; reads are not
/// limited; a forged `X-Forwarded-For` does not make a new client unless the service is
/// told to trust it.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_over_its_sign_up_limit_is_answered_429_with_retry_after() {
    let app = spawn_app_with(&[
        "--sign-up-rate-limit-per-second",
        "1",
        "--sign-up-rate-limit-burst",
        "3",
    ])
    .await;
    for n in 0..3 {
        let response = app
            .post_user(&json!({"email": format!("burst{n}@example.org"), "display_name": "B"}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "sign-up {n}");
    }
    let (http, users) = app.http();
    let refused = http
        .post(&users)
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"email": "over@example.org", "display_name": "Over"}))
        .send()
        .await
        .expect("registration answers");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("whole seconds");
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let problem = test_support::problem(refused, "rate-limited").await;
    assert_eq!(problem["code"], "rate-limited", "{problem}");

    assert_eq!(
        app.count("select count(*) from users").await,
        3,
        "the refused sign-up wrote nothing"
    );
    assert_eq!(
        app.get("/users/00000000-0000-0000-0000-000000000000")
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "reads are not limited"
    );
    app.stop().await;
}
