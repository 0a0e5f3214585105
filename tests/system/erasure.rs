//! `DELETE /users/{id}` across the services: registration erases the user and publishes
//! `user.deleted.v1`; email and profile erase their copies; and the per-user `sequence`
//! keeps a `user.registered.v1` that arrives after the deletion (a redrive, a retry, a
//! replay) from bringing anything back.

use std::time::Duration;

use sqlx::PgPool;
use system_tests::{
    broker::Broker,
    eventually::{PATIENCE, eventually},
    otlp_sink::ReceivedSpan,
    system::{
        Link, Options, Service, TestSystem, USER_DELETED_QUEUES, USER_REGISTERED_QUEUES, trace_id,
        traceresponse,
    },
};

/// How many rows `sql` (one `$1` text parameter) finds.
async fn count(db: &PgPool, sql: &'static str, parameter: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(parameter)
        .fetch_one(db)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// Waits until the email and profile services have applied the user's deletion.
async fn wait_until_erased_everywhere(email: &PgPool, profile: &PgPool, user_id: &str) {
    eventually(
        "the deletion applied by email and profile",
        PATIENCE,
        async || {
            let email_done = count(
            email,
            "select count(*) from known_users where user_id = $1::uuid and erased_at is not null",
            user_id,
        )
        .await;
            let profile_done = count(
                profile,
                "select count(*) from profiles where user_id = $1::uuid and erased_at is not null",
                user_id,
            )
            .await;
            if email_done == 1 && profile_done == 1 {
                Ok(())
            } else {
                Err(format!("email {email_done}, profile {profile_done}"))
            }
        },
    )
    .await;
}

/// In order: sign up, get the mail and the profile, ask to be forgotten. The profile and
/// the mail records go, no row in any service holds the address any more, and the
/// deletion is one trace from the `DELETE` to both consumers.
#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_reaches_every_service_and_leaves_no_address() {
    let system = TestSystem::start().await;
    let address = "forget.me@example.org";
    let user_id = system.sign_up_and_wait(address, "Forget Me").await;
    assert_eq!(
        system.emails().to(address).await.len(),
        1,
        "the welcome mail"
    );

    let response = system.registration().delete_user(&user_id).await;
    assert_eq!(response.status(), 204);
    let trace = trace_id(&traceresponse(&response));

    let email = system.effects().db(Service::Email).await;
    let profile = system.effects().db(Service::Profile).await;
    let registration = system.effects().db(Service::Registration).await;
    wait_until_erased_everywhere(&email, &profile, &user_id).await;
    assert_eq!(system.profiles().get(&user_id).await.status(), 404);
    assert!(
        system.emails().to(address).await.is_empty(),
        "no mail record"
    );
    // Whole rows as text, searched for the address and the name.
    let everywhere = [
        (
            &registration,
            "select count(*) from users r where r::text like '%' || $1 || '%'",
        ),
        (
            &registration,
            "select count(*) from outbox r where r::text like '%' || $1 || '%'",
        ),
        (
            &registration,
            "select count(*) from idempotency r where r::text like '%' || $1 || '%'",
        ),
        (
            &email,
            "select count(*) from welcome_mails r where r::text like '%' || $1 || '%'",
        ),
        (
            &profile,
            "select count(*) from profiles r where r::text like '%' || $1 || '%'",
        ),
    ];
    for (db, sql) in everywhere {
        for personal in [address, "Forget Me"] {
            assert_eq!(count(db, sql, personal).await, 0, "{personal}: {sql}");
        }
    }
    // The personal data is sealed, so a clear-text search alone would miss a sealed
    // leftover: the user's rows that hold it, by id.
    let by_id = [
        (
            &registration,
            "select count(*) from users where user_id = $1::uuid",
        ),
        (
            &registration,
            "select count(*) from outbox
             where aggregate_id = $1::uuid and event_type = 'user.registered.v1'",
        ),
        (
            &registration,
            "select count(*) from idempotency where user_id = $1::uuid",
        ),
        (
            &email,
            "select count(*) from welcome_mails where user_id = $1::uuid",
        ),
        (
            &profile,
            "select count(*) from profiles
             where user_id = $1::uuid and display_name_sealed is not null",
        ),
    ];
    for (db, sql) in by_id {
        assert_eq!(count(db, sql, &user_id).await, 0, "{sql}");
    }
    assert_eq!(
        system.smtp.messages_to(address).len(),
        1,
        "the one welcome mail, sent before the erasure"
    );

    // `wait_for` fails the test if they do not all appear.
    system
        .otlp
        .wait_for(
            "the deletion's spans in the DELETE's trace",
            |spans| {
                let in_trace: Vec<&ReceivedSpan> =
                    spans.iter().filter(|s| s.trace_id == trace).collect();
                [
                    "DELETE /users/{user_id}",
                    "users publish",
                    "email.user-deleted process",
                    "profile.user-deleted process",
                ]
                .iter()
                .all(|name| in_trace.iter().any(|s| s.name == *name))
            },
            PATIENCE,
        )
        .await;
    for db in [email, profile, registration] {
        db.close().await;
    }
}

/// Out of order: the deletion is applied first, then the user's `user.registered.v1`
/// arrives (here: taken out of the work queues before the consumers ran, and sent back
/// to them afterwards, as a redrive from a dead-letter queue would). Its sequence (1) is
/// below the deletion's (2): no profile, no mail, no mail record.
#[tokio::test(flavor = "multi_thread")]
async fn a_registration_redriven_after_the_erasure_changes_nothing() {
    let mut system = TestSystem::start().await;
    let topology = system.topology().clone();
    system.processes().stop_consumers().await;
    let address = "too.late@example.org";
    let user_id = system.registration().sign_up_ok(address, "Too Late").await;

    // The registration reaches both queues and is taken out. (Only then the deletion:
    // a deletion that comes before the relay has published the registration deletes it
    // from the outbox, and it is never sent at all.)
    let broker = Broker::connect().await;
    let mut held = Vec::new();
    for queue in USER_REGISTERED_QUEUES.map(|q| topology.queue(q)) {
        let taken = eventually(
            format!("the registration in {queue}"),
            PATIENCE,
            async || {
                let taken = broker.take(&queue).await;
                if taken.is_empty() {
                    Err("none yet")
                } else {
                    Ok(taken)
                }
            },
        )
        .await;
        assert_eq!(taken.len(), 1, "{queue}");
        held.extend(taken.into_iter().map(|message| (queue.clone(), message)));
    }
    let response = system.registration().delete_user(&user_id).await;
    assert_eq!(response.status(), 204);
    for queue in USER_DELETED_QUEUES.map(|q| topology.queue(q)) {
        eventually(format!("the deletion in {queue}"), PATIENCE, async || {
            broker.ready_count(&queue).await == 1
        })
        .await;
    }

    for service in [Service::Email, Service::Profile] {
        system.processes().restart(service, 0).await;
    }
    let email = system.effects().db(Service::Email).await;
    let profile = system.effects().db(Service::Profile).await;
    wait_until_erased_everywhere(&email, &profile, &user_id).await;

    for (queue, message) in held {
        let properties = message.delivery.properties.clone();
        broker
            .publish("", &queue, &message.delivery.data, properties)
            .await;
    }
    // The marker's registration is queued behind the redriven ones in both queues.
    system.effects().pass_marker().await;
    // Handed out before the marker is not yet finished (`pass_marker`): wait for the
    // consumers to have acked the late registrations too.
    system.effects().wait_for_registrations_done(2).await;

    assert_eq!(system.profiles().get(&user_id).await.status(), 404);
    assert!(
        system.emails().to(address).await.is_empty(),
        "no mail record"
    );
    assert!(
        system.smtp.messages_to(address).is_empty(),
        "no mail was sent"
    );
    assert_eq!(
        count(
            &profile,
            "select count(*) from profiles
             where user_id = $1::uuid and display_name is null and display_name_sealed is null",
            &user_id
        )
        .await,
        1,
        "the tombstone is still there, with no name"
    );
    assert_eq!(
        count(
            &email,
            "select count(*) from inbox where event_type = $1",
            "user.registered.v1"
        )
        .await,
        2,
        "the late registration is in the inbox (a further redelivery is a no-op)"
    );
    email.close().await;
    profile.close().await;
}

/// Users erased while the consumers' databases are away: every erasure fails, is
/// retried through the delay queues, and is applied once the databases are back. Nothing
/// is dead-lettered, and no mail record or profile of an erased user is left.
#[tokio::test(flavor = "multi_thread")]
async fn erasures_during_a_database_cut_in_the_consumers_are_all_applied() {
    const USERS: usize = 20;
    let options = Options {
        proxy_postgres: true,
        // 200 ms doubling over six attempts (6.2 s): outlasts the cut with room to spare.
        retry_max_attempts: Some(6),
        // Fail fast during the cut instead of waiting it out (see db_outage.rs).
        extra_env: vec![("DATABASE_ACQUIRE_TIMEOUT_MS".to_owned(), "250".to_owned())],
        ..Options::default()
    };
    let system = TestSystem::start_with(options).await;
    let mut users = Vec::new();
    for n in 0..USERS {
        let address = format!("cut{n}@example.org");
        users.push(system.sign_up_and_wait(&address, &format!("Cut {n}")).await);
    }

    let proxies = [Service::Email, Service::Profile].map(|s| system.proxy(s, Link::Postgres));
    for proxy in &proxies {
        proxy.set_enabled(false);
    }
    for user_id in &users {
        let response = system.registration().delete_user(user_id).await;
        assert_eq!(response.status(), 204);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for proxy in &proxies {
        proxy.set_enabled(true);
    }

    let email = system.effects().db(Service::Email).await;
    let profile = system.effects().db(Service::Profile).await;
    for user_id in &users {
        wait_until_erased_everywhere(&email, &profile, user_id).await;
    }
    let left: i64 = sqlx::query_scalar("select count(*) from welcome_mails")
        .fetch_one(&email)
        .await
        .expect("count");
    assert_eq!(left, 0, "no mail record of an erased user is left");
    let named: i64 =
        sqlx::query_scalar("select count(*) from profiles where display_name_sealed is not null")
            .fetch_one(&profile)
            .await
            .expect("count");
    assert_eq!(named, 0, "every profile is a tombstone");
    for (service, queue) in [
        (Service::Email, "email.user-deleted"),
        (Service::Profile, "profile.user-deleted"),
    ] {
        let ops = system.ops(service);
        let series = |outcome: &str| {
            format!(r#"events_consumed_total{{queue="{queue}",outcome="{outcome}"}}"#)
        };
        let retried = ops.metric(&series("retried")).await;
        let dead_lettered = ops.metric(&series("dead_lettered")).await;
        println!("{queue}: {retried} erasures retried, {dead_lettered} dead-lettered");
        assert!(retried > 0.0, "{queue}: the cut made erasures retry");
        assert_eq!(dead_lettered, 0.0, "{queue}: nothing dead-lettered");
    }
    email.close().await;
    profile.close().await;
}
