//! Personal data at rest: what a copy of the database shows, and a key rotation.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_app_on};

/// Every column of every row of registration's tables, as PostgreSQL prints them: what
/// a dump or a stolen backup would show.
const EVERYTHING: &str = "select string_agg(t, ' ') from (
        select u::text as t from users u
        union all select o::text from outbox o
        union all select i::text from idempotency i) all_rows";

/// Neither the address nor the name is anywhere in the database in clear, yet the API
/// reads them back, the event carries them, a retry with the key gets the first answer,
/// and the address stays unique.
#[tokio::test]
async fn the_database_holds_no_address_or_name_in_clear() {
    // Arrange
    let app = spawn_app().await;
    let sign_up = json!({"email": "Ada.Lovelace@Example.org", "display_name": "Ada Lovelace"});

    // Act
    let created = app
        .post_user_with_headers(&sign_up, &[("Idempotency-Key", "sealed-1")])
        .await;

    // Assert
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.expect("a JSON body");
    let id = body["id"].as_str().expect("an id").to_owned();
    let everything = app.text(EVERYTHING).await.to_lowercase();
    for clear in ["ada.lovelace", "example.org", "ada lovelace", "lovelace"] {
        assert!(
            !everything.contains(clear),
            "{clear:?} is in the database: {everything}"
        );
    }
    let read: Value = app
        .get(&format!("/users/{id}"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(read["email"], "ada.lovelace@example.org");
    assert_eq!(read["display_name"], "Ada Lovelace");
    let events = app.events_of(&id).await;
    assert_eq!(events[0].1["data"]["email"], "ada.lovelace@example.org");
    let retried = app
        .post_user_with_headers(&sign_up, &[("Idempotency-Key", "sealed-1")])
        .await;
    assert_eq!(retried.status(), StatusCode::CREATED, "the stored answer");
    let retried: Value = retried.json().await.expect("JSON");
    assert_eq!(retried, body);
    let other_body = json!({"email": "ada.lovelace@example.org", "display_name": "Ada L."});
    let reused = app
        .post_user_with_headers(&other_body, &[("Idempotency-Key", "sealed-1")])
        .await;
    assert_eq!(
        reused.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "another request"
    );
    let again = app
        .post_user(&json!({"email": " ADA.LOVELACE@example.org ", "display_name": "Ada"}))
        .await;
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "the keyed hash keeps it unique"
    );
    app.stop().await;
}

/// A rotation: restarted with a new key in front of the old one, the service re-seals
/// every row under the new key before it serves, and then works without the old key.
/// Rows written before sealing existed (clear columns) are sealed the same way.
#[tokio::test]
async fn a_new_key_in_front_reseals_everything_and_the_old_key_can_go() {
    // Arrange: one user under the test key, one written in clear by an older version.
    let app = spawn_app().await;
    let created = app
        .post_user_with_headers(
            &json!({"email": "grace@example.org", "display_name": "Grace"}),
            &[("Idempotency-Key", "rotate-1")],
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let grace: Value = created.json().await.expect("JSON");
    let legacy = "0190a0b0-0000-7000-8000-000000000001";
    app.execute(
        "insert into users (user_id, email, display_name, created_at)
         values ('0190a0b0-0000-7000-8000-000000000001', 'old@example.org', 'Old Timer', now())",
    )
    .await;
    let database = app.stop_keeping_database().await;
    let new_key = "test-2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    // Act
    let rotated = spawn_app_on(database, &format!("{new_key},{}", test_support::PII_KEYS)).await;
    let still_under_old = rotated
        .count(
            "select count(*) from users
             where email is not null or substring(email_sealed from 3 for 6) <> 'test-2'",
        )
        .await;
    let database = rotated.stop_keeping_database().await;
    let new_only = spawn_app_on(database, new_key).await;

    // Assert
    assert_eq!(still_under_old, 0, "every user re-sealed under test-2");
    let read: Value = new_only
        .get(&format!("/users/{}", grace["id"].as_str().expect("id")))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(read["email"], "grace@example.org");
    let old: Value = new_only
        .get(&format!("/users/{legacy}"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(old["display_name"], "Old Timer");
    let taken = new_only
        .post_user(&json!({"email": "old@example.org", "display_name": "Someone"}))
        .await;
    assert_eq!(
        taken.status(),
        StatusCode::CONFLICT,
        "the sealed legacy address is unique"
    );
    let retried = new_only
        .post_user_with_headers(
            &json!({"email": "grace@example.org", "display_name": "Grace"}),
            &[("Idempotency-Key", "rotate-1")],
        )
        .await;
    assert_eq!(
        retried.status(),
        StatusCode::CREATED,
        "the re-sealed stored answer"
    );
    let everything = new_only.text(EVERYTHING).await;
    assert!(!everything.contains("old@example.org"), "{everything}");
    new_only.stop().await;
}
