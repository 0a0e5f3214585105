//! Concurrent sign-ups share statements and commits (`registration::sign_ups`); each must
//! still get its own answer, and only a created user may have an event.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use tokio::task::JoinSet;

use crate::helpers::spawn_app;

/// Forty sign-ups at once, ten of them five pairs of the same address: every address is
/// created once (201), its twin is refused alone (409), and there is exactly one outbox
/// row per created user, each carrying its own request's trace context.
#[tokio::test]
async fn sign_ups_in_one_batch_get_their_own_answers() {
    // Arrange
    let app = Arc::new(spawn_app().await);
    let mut addresses: Vec<String> = (0..30).map(|i| format!("user{i}@example.org")).collect();
    for twin in 0..5 {
        addresses.push(format!("twin{twin}@example.org"));
        addresses.push(format!("twin{twin}@example.org"));
    }

    // Act
    let mut requests = JoinSet::new();
    for address in addresses {
        let app = Arc::clone(&app);
        requests.spawn(async move {
            let body = json!({"email": address, "display_name": "Someone"});
            (address, app.post_user(&body).await.status())
        });
    }
    let answers = requests.join_all().await;

    // Assert
    let created = |prefix: &str| {
        answers
            .iter()
            .filter(|(address, status)| {
                address.starts_with(prefix) && *status == StatusCode::CREATED
            })
            .count()
    };
    let conflicts: Vec<_> = answers
        .iter()
        .filter(|(_, status)| *status == StatusCode::CONFLICT)
        .map(|(address, _)| address.as_str())
        .collect();
    assert_eq!(created("user"), 30, "every distinct address is created");
    assert_eq!(created("twin"), 5, "one of each pair is created");
    assert_eq!(conflicts.len(), 5, "the other of each pair is a 409");
    assert!(conflicts.iter().all(|address| address.starts_with("twin")));
    assert_eq!(app.count("select count(*) from users").await, 35);
    assert_eq!(
        app.count("select count(*) from outbox o join users u on u.user_id = o.aggregate_id")
            .await,
        35,
        "one event per created user, and no event without its user"
    );
    assert_eq!(app.count("select count(*) from outbox").await, 35);
    assert_eq!(
        app.count("select count(distinct traceparent) from outbox")
            .await,
        35,
        "each row carries its own request's trace context"
    );
    Arc::into_inner(app)
        .expect("every request has finished")
        .stop()
        .await;
}
