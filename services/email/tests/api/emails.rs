//! `GET /emails?to=`: the rules of the read API, without any mail sent.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

/// Without a usable `to` (absent, empty or blank) the request is a 400 problem naming
/// the parameter `to`.
#[tokio::test]
async fn a_request_without_an_address_is_a_400_naming_to() {
    // Arrange
    let app = spawn_app().await;
    let cases = [
        ("no `to` parameter", None),
        ("an empty `to`", Some("")),
        ("a blank `to`", Some("   ")),
    ];

    for (case, to) in cases {
        // Act
        let response = app.get_emails(to).await;

        // Assert
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        let body = test_support::problem(response, case).await;
        assert_eq!(body["code"], "missing_parameter", "{case}: {body}");
        assert_eq!(body["errors"][0]["parameter"], "to", "{case}: {body}");
    }
    app.stop().await;
}

/// An address no mail was sent to gets 200 and an empty list, not a 404.
#[tokio::test]
async fn an_address_with_no_mail_gets_an_empty_list() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.get_emails(Some("nobody@example.org")).await;

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body, json!([]));
    app.stop().await;
}

/// An address with a control character (a NUL, say) has no mail: 200 and an empty list,
/// not the 500 PostgreSQL's refusal of a NUL in text would make it.
#[tokio::test]
async fn an_address_with_a_control_character_gets_an_empty_list() {
    let app = spawn_app().await;

    let response = app.get("/emails?to=ada%00%07@example.org").await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body, json!([]));
    app.stop().await;
}
