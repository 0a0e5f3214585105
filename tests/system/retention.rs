//! Retention of the tables that grow with traffic: the inbox outlasts the event log, and
//! an event that comes back after its inbox row expired still changes nothing; an
//! idempotency key is forgotten after its retention.

use clap::Parser;
use reqwest::StatusCode;
use serde_json::json;
use system_tests::{
    eventually::{PATIENCE, eventually},
    system::{Options, Service, TestSystem},
};

/// By default a consumer's inbox remembers an event longer than registration keeps it in
/// its event log, so a replay of anything the log still holds finds its inbox row.
#[test]
fn by_default_the_inbox_outlasts_the_event_log() {
    // Only what `service_kit::config::parse` fills in from the service's identity.
    let args = |name: &'static str| {
        [
            name,
            "--http-addr",
            "127.0.0.1:0",
            "--database-url",
            "postgres://unused",
        ]
    };
    let registration = registration::config::Config::try_parse_from(args("registration"))
        .expect("registration's defaults parse");
    let event_log = registration.outbox.event_log_retention_days;
    let email = email::Config::try_parse_from(args("email")).expect("email's defaults parse");
    let profile =
        profile::Config::try_parse_from(args("profile")).expect("profile's defaults parse");
    for (name, inbox) in [("email", email.inbox), ("profile", profile.inbox)] {
        let inbox = inbox.inbox_retention_days;
        assert!(
            inbox > event_log,
            "{name}: inbox {inbox} days, event log {event_log} days"
        );
    }
}

/// The edge the retentions guard: an event replayed after the consumers' inbox rows for it
/// expired. The inbox lets it through as new; the per-user `sequence` the consumers keep
/// turns it away: no second mail, the profile unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_after_the_inbox_forgot_the_event_sends_no_second_mail() {
    let options = Options {
        extra_env: vec![("INBOX_CLEANUP_INTERVAL_SECS".to_owned(), "1".to_owned())],
        ..Default::default()
    };
    let system = TestSystem::start_with(options).await;
    let address = "forgotten.inbox@example.org";
    let user_id = system.sign_up_and_wait(address, "Inbox").await;
    let profile_before = system.profiles().wait_for(&user_id).await;

    let effects = system.effects();
    for service in [Service::Email, Service::Profile] {
        let db = effects.db(service).await;
        sqlx::query("update inbox set received_at = now() - interval '100 days'")
            .execute(&db)
            .await
            .expect("the inbox ages");
        db.close().await;
        eventually(
            format!("{}'s cleanup to empty the inbox", service.name()),
            PATIENCE,
            async || effects.scalar(service, "select count(*) from inbox").await == 0,
        )
        .await;
    }

    for queue in ["email.user-registered", "profile.user-registered"] {
        let replayed = system
            .tool(Service::Registration)
            .run_ok(&["replay", "--to-queue", queue, "--user", &user_id])
            .await;
        assert!(replayed.starts_with("replayed 1 events"), "{replayed}");
    }
    // Both consumers handled the replayed event (and the marker's, behind it).
    system.effects().pass_marker().await;
    system.effects().wait_for_registrations_done(3).await;

    assert_eq!(
        system.smtp.messages_to(address).len(),
        1,
        "one mail, not two"
    );
    assert_eq!(
        system.emails().to(address).await.len(),
        1,
        "one mail record"
    );
    let profile_after = system.profiles().wait_for(&user_id).await;
    assert_eq!(profile_after, profile_before, "the profile is unchanged");
}

/// An idempotency key is forgotten after its retention: the same request with it is then
/// a new sign-up, refused because the address is taken.
#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_is_forgotten_after_its_retention() {
    let options = Options {
        extra_env: vec![
            ("IDEMPOTENCY_KEY_RETENTION_HOURS".to_owned(), "0".to_owned()),
            ("EVENT_LOG_CLEANUP_INTERVAL_SECS".to_owned(), "1".to_owned()),
        ],
        ..Default::default()
    };
    let system = TestSystem::start_with(options).await;
    let body = json!({"email": "kept.briefly@example.org", "display_name": "Brief"});
    let key = [("Idempotency-Key", "brief-1")];
    let first = system.registration().post_user(&body, &key).await;
    assert_eq!(first.status(), StatusCode::CREATED);

    let effects = system.effects();
    eventually("the key to be purged", PATIENCE, async || {
        effects
            .scalar(Service::Registration, "select count(*) from idempotency")
            .await
            == 0
    })
    .await;
    let again = system.registration().post_user(&body, &key).await;

    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "a new sign-up, address taken"
    );
}
