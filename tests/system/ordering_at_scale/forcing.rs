//! Making a user's events overtake each other: registrations held back until after the
//! deletion, and the race of sign-ups and immediate deletions.

use std::{collections::BTreeSet, time::Duration};

use futures_util::{StreamExt, stream};
use lapin::message::BasicGetMessage;
use reqwest::StatusCode;
use serde_json::Value;
use system_tests::{
    broker::Broker,
    eventually::{PATIENCE, eventually},
    system::{Service, TestSystem, USER_DELETED_QUEUES, USER_REGISTERED_QUEUES},
};

use super::{CONCURRENCY, Fate, Held, LATE_USERS, RACING_USERS, REGISTRATIONS, User};

/// The forced users, up to the point where their registrations are out of the queues and
/// their deletions wait in them: email and profile stopped, the users signed up through
/// both registrations, every registration taken out of both work queues before any
/// consumer saw it, the users deleted (through the other registration). Returns the users
/// and the registrations held back.
pub(super) async fn hold_back_registrations(
    system: &mut TestSystem,
    broker: &Broker,
) -> (Vec<User>, Vec<Held>) {
    system.processes().stop_consumers().await;
    let system = &*system;
    let users: Vec<User> = stream::iter(0..LATE_USERS)
        .map(|n| sign_up(system, "late", n, Fate::Overtaken))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;

    let topology = system.topology();
    let expected: BTreeSet<String> = users.iter().map(|user| user.id.clone()).collect();
    let mut held = Vec::new();
    for queue in USER_REGISTERED_QUEUES.map(|queue| topology.queue(queue)) {
        wait_for_ready(broker, &queue, LATE_USERS).await;
        let taken = broker.take(&queue).await;
        assert_eq!(taken.len(), LATE_USERS, "{queue}");
        let whose: BTreeSet<String> = taken.iter().map(|message| envelope(message).1).collect();
        assert_eq!(whose, expected, "{queue}: one registration per late user");
        held.extend(taken.into_iter().map(|message| (queue.clone(), message)));
    }

    stream::iter(&users)
        .for_each_concurrent(CONCURRENCY, |user| delete(system, user))
        .await;
    for queue in USER_DELETED_QUEUES.map(|queue| topology.queue(queue)) {
        wait_for_ready(broker, &queue, LATE_USERS).await;
    }
    (users, held)
}

/// Waits until `queue` holds exactly `count` ready messages: the relays publish a moment
/// after the requests are answered.
pub(super) async fn wait_for_ready(broker: &Broker, queue: &str, count: usize) {
    eventually(
        format!("{count} messages in {queue}"),
        PATIENCE,
        async || {
            let ready = broker.ready_count(queue).await;
            if usize::try_from(ready).is_ok_and(|ready| ready == count) {
                Ok(())
            } else {
                Err(ready)
            }
        },
    )
    .await;
}

/// A held registration's event id and user id, from its body.
pub(super) fn envelope(message: &BasicGetMessage) -> (String, String) {
    let event: Value =
        serde_json::from_slice(&message.delivery.data).expect("a registration is JSON");
    let field = |value: &Value| value.as_str().expect("a string").to_owned();
    (field(&event["id"]), field(&event["data"]["user_id"]))
}

/// The event ids of the held registrations (each is in both services' queues once).
pub(super) fn event_ids(held: &[Held]) -> BTreeSet<String> {
    held.iter()
        .map(|(_, message)| envelope(message).0)
        .collect()
}

/// Waits until email and profile have both applied the deletion of every one of `users`
/// (sequence 2, erased), so that their registrations, put back afterwards, are certain to
/// come late.
pub(super) async fn wait_until_erased(system: &TestSystem, users: &[User]) {
    let ids: Vec<String> = users.iter().map(|user| user.id.clone()).collect();
    let checks = [
        (
            Service::Profile,
            "select count(*) from profiles
             where user_id::text = any($1) and sequence = 2 and erased_at is not null",
        ),
        (
            Service::Email,
            "select count(*) from known_users
             where user_id::text = any($1) and last_sequence = 2 and erased_at is not null",
        ),
    ];
    for (service, sql) in checks {
        let db = system.effects().db(service).await;
        eventually(
            format!("{} to apply {} deletions", service.name(), ids.len()),
            PATIENCE,
            async || {
                let applied: i64 = sqlx::query_scalar(sql)
                    .bind(&ids)
                    .fetch_one(&db)
                    .await
                    .unwrap_or(-1);
                if usize::try_from(applied).is_ok_and(|applied| applied == ids.len()) {
                    Ok(())
                } else {
                    Err(applied)
                }
            },
        )
        .await;
        db.close().await;
    }
}

/// The race: [`RACING_USERS`] sign-ups through both registrations at once, two of every
/// three deleted through the other registration as soon as their `201` is back, the rest
/// kept.
pub(super) async fn race(system: &TestSystem) -> Vec<User> {
    stream::iter(0..RACING_USERS)
        .map(|n| async move {
            let fate = if n % 3 == 0 { Fate::Kept } else { Fate::Raced };
            let user = sign_up(system, "user", n, fate).await;
            if fate == Fate::Raced {
                delete(system, &user).await;
            }
            user
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

/// Puts the held registrations back into the queues they were taken from, one every few
/// milliseconds once the race is under way: they arrive among the race's events, and the
/// broker hands them to whichever of the three instances has room.
pub(super) async fn redrive(broker: &Broker, held: Vec<Held>) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (queue, message) in held {
        let properties = message.delivery.properties.clone();
        broker
            .publish("", &queue, &message.delivery.data, properties)
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Signs up user `n` of a group (address `<group><n>@ordering.example.org`) through the
/// registrations in turn.
async fn sign_up(system: &TestSystem, group: &str, n: usize, fate: Fate) -> User {
    let address = format!("{group}{n:03}@ordering.example.org");
    let through = n % REGISTRATIONS;
    let id = system
        .registration_of(through)
        .sign_up_ok(&address, &format!("{group} {n}"))
        .await;
    User {
        id,
        address,
        signed_up_through: through,
        fate,
    }
}

/// Deletes `user` through the registration it did not sign up through: the deletion's
/// event leaves through the other relay.
async fn delete(system: &TestSystem, user: &User) {
    let response = system
        .registration_of(user.other_registration())
        .delete_user(&user.id)
        .await;
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "DELETE {}",
        user.id
    );
}
