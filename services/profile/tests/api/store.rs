//! `store::apply_batch`, the one statement that applies every delivery of a group commit,
//! and the projection's writer around it: each change in a batch gets its own verdict,
//! whatever else the batch holds.

use chrono::{DateTime, Utc};
use events::{Envelope, Event, UserDeletedV1, UserRegisteredV1};
use futures_util::future::join_all;
use messaging::{
    consumer::Handler,
    outcome::{HandlerOutcome, Skip},
};
use profile::{
    projection::ProfileProjection,
    store::{self, Applied, ProfileChange, ProfileContent},
};
use uuid::Uuid;

use crate::helpers::spawn_app;

/// A change of `user_id`'s profile to `name`, at `sequence`, by a new event.
fn change(user_id: Uuid, name: &str, sequence: i64) -> ProfileChange {
    let now: DateTime<Utc> = Utc::now();
    ProfileChange {
        event_id: Uuid::now_v7(),
        user_id,
        content: ProfileContent::Shown {
            display_name: name.to_owned(),
            registered_at: now,
        },
        sequence,
        changed_at: now,
    }
}

/// A batch holding a redelivery, two events for one user in the wrong order, an event
/// twice and a newer event for a user seen before: the redelivery and the repeat change
/// nothing, the older event of a pair is stale, and each user ends with the newest name.
#[tokio::test]
async fn each_change_in_a_batch_gets_its_own_verdict() {
    // Arrange
    let app = spawn_app().await;
    let db = app.db().await;
    let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let first = change(ada, "Ada", 1);
    let applied = store::apply_batch(
        &db,
        &test_support::test_sealer(),
        UserRegisteredV1::TYPE,
        std::slice::from_ref(&first),
    )
    .await
    .expect("the first change applies");
    assert_eq!(applied, [Applied::Written]);

    // Act
    let bob_newer = change(bob, "Bob the second", 2);
    let batch = [
        first,
        bob_newer.clone(),
        change(bob, "Bob the first", 1),
        bob_newer,
        change(ada, "Ada Lovelace", 2),
    ];
    let applied = store::apply_batch(
        &db,
        &test_support::test_sealer(),
        UserRegisteredV1::TYPE,
        &batch,
    )
    .await
    .expect("the batch applies");

    // Assert
    assert_eq!(
        applied,
        [
            Applied::AlreadyApplied,
            Applied::Written,
            Applied::Stale,
            Applied::AlreadyApplied,
            Applied::Written,
        ]
    );
    for (user_id, name) in [(ada, "Ada Lovelace"), (bob, "Bob the second")] {
        let profile = store::find(&db, &test_support::test_sealer(), user_id)
            .await
            .expect("the profile reads")
            .expect("the profile exists");
        assert_eq!(profile.display_name, name);
    }
    let inbox: i64 = sqlx::query_scalar("select count(*) from inbox")
        .fetch_one(&db)
        .await
        .expect("the inbox counts");
    assert_eq!(inbox, 4, "one inbox row per distinct event");
    db.close().await;
    app.stop().await;
}

/// Nine deliveries handled at once share one batch; one of them carries a time the
/// database refuses (before 4713 BC, out of PostgreSQL's range; names are sealed, so a
/// name can no longer be refused). The batch
/// statement fails, each change is then tried alone, and only that delivery is retried:
/// the other eight get their profiles.
#[tokio::test]
async fn a_change_the_database_refuses_fails_alone_and_its_batch_neighbours_are_applied() {
    // Arrange
    let app = spawn_app().await;
    let db = app.db().await;
    let projection = ProfileProjection::new(db.clone(), test_support::test_sealer(), 16);
    let event = |name: &str, registered_at| {
        let user_id = Uuid::now_v7();
        let data = UserRegisteredV1 {
            user_id,
            email: format!("{user_id}@example.org"),
            display_name: name.to_owned(),
            registered_at,
        };
        Envelope::new("/test", user_id.to_string(), 1, data)
    };
    let mut events: Vec<_> = (0..8)
        .map(|n| event(&format!("User {n}"), Utc::now()))
        .collect();
    events.push(event("Too old", chrono::DateTime::<Utc>::MIN_UTC));
    let users: Vec<Uuid> = events.iter().map(|e| e.data.user_id).collect();

    // Act: submitted together, before the writer task runs, so they form one batch.
    let outcomes = join_all(events.into_iter().map(|e| projection.handle(e))).await;

    // Assert
    let (bad, good) = outcomes.split_last().expect("nine outcomes");
    assert!(
        matches!(bad, HandlerOutcome::Retry(reason) if reason.starts_with("database")),
        "{bad:?}"
    );
    assert!(good.iter().all(|o| *o == HandlerOutcome::Done), "{good:?}");
    for user_id in &users[..8] {
        let profile = store::find(&db, &test_support::test_sealer(), *user_id)
            .await
            .expect("the profile reads");
        assert!(profile.is_some(), "profile of {user_id}");
    }
    let bad_profile = store::find(&db, &test_support::test_sealer(), users[8])
        .await
        .expect("the profile reads");
    assert!(bad_profile.is_none(), "the refused change wrote nothing");
    db.close().await;
    app.stop().await;
}

/// The `user.registered.v1` (sequence 1) and the `user.deleted.v1` (sequence 2) of one
/// user, as the projection's handlers receive them.
fn registered_and_deleted() -> (Envelope<UserRegisteredV1>, Envelope<UserDeletedV1>) {
    let user_id = Uuid::now_v7();
    let registered = UserRegisteredV1 {
        user_id,
        email: format!("{user_id}@example.org"),
        display_name: "Ada".to_owned(),
        registered_at: Utc::now(),
    };
    let deleted = UserDeletedV1 {
        user_id,
        deleted_at: Utc::now(),
    };
    (
        Envelope::new("/test", user_id.to_string(), 1, registered),
        Envelope::new("/test", user_id.to_string(), 2, deleted),
    )
}

/// What the profiles table holds for a user: (display name, opened; erased) or nothing.
/// Both name columns are read, so a name left in either counts.
async fn row(db: &sqlx::PgPool, user_id: Uuid) -> Option<(Option<String>, bool)> {
    let row: Option<(Option<String>, Option<Vec<u8>>, bool)> = sqlx::query_as(
        "select display_name, display_name_sealed, erased_at is not null
         from profiles where user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(db)
    .await
    .expect("the profiles table reads");
    row.map(|(clear, sealed, erased)| {
        let opened = sealed.map(|sealed| {
            test_support::test_sealer()
                .open("profiles.display_name", &sealed)
                .expect("the name opens with the test key")
        });
        (clear.or(opened), erased)
    })
}

/// In order: the profile is written, then replaced by a tombstone that keeps no name,
/// and the profile is gone from the API's point of view.
#[tokio::test]
async fn a_deletion_after_the_registration_erases_the_profile() {
    // Arrange
    let app = spawn_app().await;
    let db = app.db().await;
    let projection = ProfileProjection::new(db.clone(), test_support::test_sealer(), 4);
    let (registered, deleted) = registered_and_deleted();
    let user_id = registered.data.user_id;
    assert_eq!(projection.handle(registered).await, HandlerOutcome::Done);
    assert!(
        store::find(&db, &test_support::test_sealer(), user_id)
            .await
            .expect("reads")
            .is_some()
    );

    // Act
    let outcome = projection.handle(deleted).await;

    // Assert
    assert_eq!(outcome, HandlerOutcome::Done);
    assert!(
        store::find(&db, &test_support::test_sealer(), user_id)
            .await
            .expect("reads")
            .is_none()
    );
    assert_eq!(
        row(&db, user_id).await,
        Some((None, true)),
        "a tombstone, no name"
    );
    db.close().await;
    app.stop().await;
}

/// Out of order: the deletion overtook the registration (a retry through a delay queue,
/// a redrive, a replay). The tombstone's higher sequence makes the late registration
/// stale: no profile comes back, and a redelivery of it changes nothing either.
#[tokio::test]
async fn a_registration_after_the_deletion_does_not_bring_the_profile_back() {
    // Arrange
    let app = spawn_app().await;
    let db = app.db().await;
    let projection = ProfileProjection::new(db.clone(), test_support::test_sealer(), 4);
    let (registered, deleted) = registered_and_deleted();
    let user_id = registered.data.user_id;
    assert_eq!(projection.handle(deleted).await, HandlerOutcome::Done);

    // Act
    let late = projection.handle(registered.clone()).await;
    let again = projection.handle(registered).await;

    // Assert
    assert_eq!(
        (late, again),
        (
            HandlerOutcome::Skipped(Skip::Stale),
            HandlerOutcome::Skipped(Skip::AlreadyApplied)
        ),
        "turned away by its sequence, then as a redelivery"
    );
    assert!(
        store::find(&db, &test_support::test_sealer(), user_id)
            .await
            .expect("reads")
            .is_none()
    );
    assert_eq!(
        row(&db, user_id).await,
        Some((None, true)),
        "still the tombstone"
    );
    db.close().await;
    app.stop().await;
}
