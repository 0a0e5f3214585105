use reqwest::StatusCode;
use serde_json::Value;
use system_tests::{
    eventually::PATIENCE,
    system::{TestSystem, traceresponse},
};

/// The whole flow: 201 from registration, the profile appears, exactly one welcome mail
/// reaches the SMTP server and `GET /emails` lists it as sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_sign_up_creates_a_profile_and_sends_one_welcome_mail() {
    let system = TestSystem::start().await;

    let response = system
        .registration()
        .sign_up("Ada@Example.org", "  Ada Lovelace ")
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    let traceresponse = traceresponse(&response);
    let body: Value = response.json().await.expect("JSON");
    let user_id = body["id"].as_str().expect("id").to_owned();
    assert_eq!(location, format!("/users/{user_id}"));
    assert_eq!(
        body["email"], "ada@example.org",
        "the address is normalised"
    );
    assert_eq!(body["display_name"], "Ada Lovelace", "the name is trimmed");
    assert!(
        traceresponse.starts_with("00-") && traceresponse.len() == 55,
        "{traceresponse}"
    );

    let profile = system.profiles().wait_for(&user_id).await;
    assert_eq!(profile["user_id"], user_id.as_str());
    assert_eq!(profile["display_name"], "Ada Lovelace");

    let mails = system.smtp.wait_for(1, PATIENCE).await;
    assert_eq!(mails.len(), 1, "exactly one mail");
    assert_eq!(mails[0].rcpt_to, ["ada@example.org"]);
    assert!(
        mails[0]
            .header("subject")
            .is_some_and(|s| s.contains("Ada Lovelace"))
    );

    let listed = system.emails().wait_for_sent("ADA@example.org").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["user_id"], user_id.as_str());
    let message_id = listed[0]["message_id"].as_str().expect("message_id");
    assert_eq!(
        mails[0].header("message-id").as_deref(),
        Some(message_id),
        "the mail carries the recorded Message-ID"
    );
    assert!(
        message_id.contains(listed[0]["event_id"].as_str().expect("event_id")),
        "derived from the event id"
    );

    let user: Value = system
        .registration()
        .get(&location)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(user["id"], user_id.as_str(), "Location points at the user");

    let marker = system.effects().pass_marker().await;
    assert_eq!(
        system.smtp.messages_to("ada@example.org").len(),
        1,
        "still exactly one mail to Ada once a later sign-up has been handled"
    );
    assert_eq!(
        system.smtp.messages().len(),
        2,
        "no other mail but the marker's ({})",
        marker.address
    );
    assert_eq!(system.emails().to("ada@example.org").await.len(), 1);
}
