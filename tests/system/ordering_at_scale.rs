//! Per-user ordering at scale: the guarantee of docs/decisions/0012 (a user's events are
//! applied by `sequence`, whatever order they arrive in) with two registrations, so two
//! outbox relays on one outbox, and three instances each of email and profile competing
//! for every queue.
//!
//! A user's `user.registered.v1` (sequence 1) and `user.deleted.v1` (sequence 2) go
//! through different queues in each service (`<service>.user-registered` and
//! `<service>.user-deleted`), each consumed by three instances with a consume loop per
//! queue, and here usually leave through different relays. Nothing but the sequence orders
//! them, and the test makes them overtake each other in two ways:
//!
//! - **In a race.** A few hundred users sign up through both registrations at once, and
//!   two thirds of them are deleted the moment their sign-up is answered, through the
//!   other registration. A deletion either removes the registration from the outbox before
//!   a relay sent it (then it is never sent), or follows it through the other relay into
//!   the other queue, where it is often consumed first: the registration queues carry the
//!   backlog (a mail to send per event), the deletion queues hardly any. How often each
//!   happens is up to timing; the test prints it.
//! - **By force.** For some users the registration is taken out of both registration
//!   queues before any consumer sees it (as `erasure.rs` does for one user), the users are
//!   deleted and their deletions applied, and the registrations are put back while the
//!   race runs. Each is certain to reach an instance (one of three, whichever the broker
//!   picks) after its user's deletion was applied, and as a new event for the inbox: only
//!   the sequence can turn it away.
//!
//! Whatever the order, every user must end the same: a deleted user has a tombstone in
//! profile (sequence 2, no name), no mail record, and email knows them erased at sequence
//! 2; a kept user has one profile at sequence 1 and one sent welcome mail. Without the
//! sequence check in either consumer the forced users alone make this fail.
//!
//! Each instance counts the deliveries it turned away in `events_skipped_total` (by
//! reason, `stale` or `already_applied`) and logs each with its event id. The test reads
//! both: it prints how many deliveries each instance turned away, each forced
//! registration must be among the logged ones, once per service, and each instance's
//! counter must agree with its log.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use lapin::message::BasicGetMessage;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use system_tests::{
    broker::Broker,
    effects::settle_timeout,
    eventually::{PATIENCE, eventually, poll_every},
    system::{
        CONSUMER_QUEUES, Options, Service, TestSystem, USER_DELETED_QUEUES, USER_REGISTERED_QUEUES,
    },
};

/// Users who race: signed up through both registrations at once.
const RACING_USERS: usize = 450;

/// Users whose registration is held back and comes back after their deletion.
const LATE_USERS: usize = 30;

/// Requests in flight at once: enough to keep both registrations and all six consumers
/// busy, so that events of one user really do overlap.
const CONCURRENCY: usize = 16;

/// Registration instances: two relays share the outbox.
const REGISTRATIONS: usize = 2;

/// Instances of email and of profile.
const CONSUMERS: usize = 3;

/// Each process's database pool. Eight processes (two registrations, three emails, three
/// profiles) take 24 connections at three each, against 15 for an ordinary system (three
/// processes at `DATABASE_POOL`, 5); every test shares one PostgreSQL of 100 connections
/// and two systems may run at once, so a full-size pool each (40) would crowd the other
/// system. Three are enough: a consumer writes each queue's batch through one group-commit
/// writer at a time, and the prefetch bounds the deliveries waiting for it.
const DATABASE_POOL: u32 = 3;

/// Each consumer instance's prefetch: half the harness's, so that each queue's deliveries
/// spread over its three instances instead of one or two taking the backlog, and so that
/// email's erasures (one transaction per delivery) wait for one of the three connections
/// only briefly.
const CONSUMER_PREFETCH: u16 = system_tests::system::CONSUMER_PREFETCH / 2;

/// The event types, in the order of [`Counters`]' pairs: each consuming service's
/// `USER_REGISTERED_QUEUES` entry gets the first, its `USER_DELETED_QUEUES` entry the
/// second.
const EVENT_TYPES: [&str; 2] = ["user.registered.v1", "user.deleted.v1"];

/// Profile's log line for an event older than what it already applied.
const PROFILE_STALE: &str = "stale event ignored: a newer event of the user came first";

/// Email's log line for a registration older than (or as old as) what it already applied.
const EMAIL_STALE: &str = "no welcome mail: this or a later event of the user was applied first";

/// Both consumers' log line for an event the inbox already has (a redelivery).
const ALREADY_APPLIED: &str = "event already applied";

/// What the test did to a user, which decides how the user must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Signed up and never deleted.
    Kept,
    /// Deleted as soon as the sign-up was answered, racing the registration.
    Raced,
    /// Deleted while the registration was held back, which came back after the deletion
    /// had been applied.
    Overtaken,
}

/// One user of the test.
#[derive(Debug, Clone)]
struct User {
    id: String,
    address: String,
    /// The registration instance the user signed up through; the deletion goes through
    /// the other.
    signed_up_through: usize,
    fate: Fate,
}

impl User {
    /// The registration instance that is not the one the user signed up through.
    fn other_registration(&self) -> usize {
        (self.signed_up_through + 1) % REGISTRATIONS
    }
}

/// A registration taken out of a work queue, with the queue it goes back to.
type Held = (String, BasicGetMessage);

/// Two relays, three consumers per queue, users deleted as they sign up and registrations
/// forced to arrive after their deletion: every user ends as the highest sequence says,
/// with no duplicate and nothing dead-lettered, and every instance took part.
#[tokio::test(flavor = "multi_thread")]
async fn per_user_ordering_holds_with_two_relays_and_three_consumers_per_queue() {
    let started = Instant::now();
    let options = Options {
        extra_env: vec![
            (
                "DATABASE_MAX_CONNECTIONS".to_owned(),
                DATABASE_POOL.to_string(),
            ),
            (
                "CONSUMER_PREFETCH".to_owned(),
                CONSUMER_PREFETCH.to_string(),
            ),
        ],
        ..Options::default()
    };
    let mut system = TestSystem::start_with(options).await;
    for _ in 1..REGISTRATIONS {
        system.processes().add_instance(Service::Registration).await;
    }
    let broker = Broker::connect().await;

    let (late_users, held) = hold_back_registrations(&mut system, &broker).await;
    // Nothing has been consumed yet, so the restarted first instances' counters (which
    // start again at 0) miss nothing the settling below adds up.
    for service in [Service::Email, Service::Profile] {
        system.processes().restart(service, 0).await;
        for _ in 1..CONSUMERS {
            system.processes().add_instance(service).await;
        }
    }
    wait_until_erased(&system, &late_users).await;
    let late_events = event_ids(&held);
    let race_started = Instant::now();

    let (mut users, ()) = tokio::join!(race(&system), redrive(&broker, held));
    let raced_in = race_started.elapsed();
    users.extend(late_users);

    let counters = settle(&system, &broker, users.len()).await;
    assert_end_states(&system, &users).await;
    for consumer in CONSUMER_QUEUES {
        let dead_letters = system.topology().dead_letter_queue(consumer);
        assert_eq!(broker.ready_count(&dead_letters).await, 0, "{dead_letters}");
    }
    counters.assert_every_instance_worked();
    report_race(&system, &users, &counters, raced_in);
    check_turned_away(&mut system, &late_events).await;
    println!("ordering at scale: the test took {:.1?}", started.elapsed());
}

/// The forced users, up to the point where their registrations are out of the queues and
/// their deletions wait in them: email and profile stopped, the users signed up through
/// both registrations, every registration taken out of both work queues before any
/// consumer saw it, the users deleted (through the other registration). Returns the users
/// and the registrations held back.
async fn hold_back_registrations(
    system: &mut TestSystem,
    broker: &Broker,
) -> (Vec<User>, Vec<Held>) {
    for service in [Service::Email, Service::Profile] {
        let stopped = system
            .processes()
            .terminate(service, 0, Duration::from_secs(10))
            .await;
        assert!(stopped.is_some(), "{} stops", service.name());
    }
    let system = &*system;
    let users: Vec<User> = stream::iter(0..LATE_USERS)
        .map(|n| async move {
            let address = format!("late{n:03}@ordering.example.org");
            let through = n % REGISTRATIONS;
            let id = system
                .registration_of(through)
                .sign_up_ok(&address, &format!("Late {n}"))
                .await;
            User {
                id,
                address,
                signed_up_through: through,
                fate: Fate::Overtaken,
            }
        })
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
        .for_each_concurrent(CONCURRENCY, |user| async move {
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
        })
        .await;
    for queue in USER_DELETED_QUEUES.map(|queue| topology.queue(queue)) {
        wait_for_ready(broker, &queue, LATE_USERS).await;
    }
    (users, held)
}

/// Waits until `queue` holds exactly `count` ready messages: the relays publish a moment
/// after the requests are answered.
async fn wait_for_ready(broker: &Broker, queue: &str, count: usize) {
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
fn envelope(message: &BasicGetMessage) -> (String, String) {
    let event: Value =
        serde_json::from_slice(&message.delivery.data).expect("a registration is JSON");
    let field = |value: &Value| value.as_str().expect("a string").to_owned();
    (field(&event["id"]), field(&event["data"]["user_id"]))
}

/// The event ids of the held registrations (each is in both services' queues once).
fn event_ids(held: &[Held]) -> BTreeSet<String> {
    held.iter()
        .map(|(_, message)| envelope(message).0)
        .collect()
}

/// Waits until email and profile have both applied the deletion of every one of `users`
/// (sequence 2, erased), so that their registrations, put back afterwards, are certain to
/// come late.
async fn wait_until_erased(system: &TestSystem, users: &[User]) {
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
async fn race(system: &TestSystem) -> Vec<User> {
    stream::iter(0..RACING_USERS)
        .map(|n| async move {
            let address = format!("user{n:03}@ordering.example.org");
            let through = n % REGISTRATIONS;
            let id = system
                .registration_of(through)
                .sign_up_ok(&address, &format!("User {n}"))
                .await;
            let fate = if n % 3 == 0 { Fate::Kept } else { Fate::Raced };
            let user = User {
                id,
                address,
                signed_up_through: through,
                fate,
            };
            if fate == Fate::Raced {
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
            user
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

/// Puts the held registrations back into the queues they were taken from, one every few
/// milliseconds once the race is under way: they arrive among the race's events, and the
/// broker hands them to whichever of the three instances has room.
async fn redrive(broker: &Broker, held: Vec<Held>) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (queue, message) in held {
        let properties = message.delivery.properties.clone();
        broker
            .publish("", &queue, &message.delivery.data, properties)
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One scrape of every instance's `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    /// Per registration instance: the events the broker confirmed, per [`EVENT_TYPES`].
    published: Vec<[u64; 2]>,
    /// Per consuming instance: its deliveries handled to the end (`done`), per
    /// [`EVENT_TYPES`], and the others (retried, dead-lettered, requeued) in all.
    consumed: Vec<Consumed>,
}

/// What one email or profile instance did with its deliveries.
#[derive(Debug)]
struct Consumed {
    service: Service,
    number: usize,
    /// `done` deliveries of its registration queue and of its deletion queue.
    done: [u64; 2],
    /// Deliveries of either queue that ended otherwise: retried, dead-lettered, requeued.
    not_done: u64,
}

impl Counters {
    /// Scrapes every instance once.
    async fn scrape(system: &TestSystem) -> Self {
        let mut counters = Self::default();
        for number in 0..REGISTRATIONS {
            let text = system.ops_of(Service::Registration, number).metrics().await;
            counters.published.push(EVENT_TYPES.map(|event_type| {
                let series = format!(r#"events_published_total{{event_type="{event_type}"}}"#);
                value(&text, &series)
            }));
        }
        for (service, queues) in consumer_queues() {
            for number in 0..CONSUMERS {
                let text = system.ops_of(service, number).metrics().await;
                let outcome = |queue: &str, outcome: &str| {
                    let series =
                        format!(r#"events_consumed_total{{queue="{queue}",outcome="{outcome}"}}"#);
                    value(&text, &series)
                };
                let not_done = ["retried", "dead_lettered", "requeued"]
                    .into_iter()
                    .flat_map(|other| queues.map(|queue| outcome(queue, other)))
                    .sum();
                counters.consumed.push(Consumed {
                    service,
                    number,
                    done: queues.map(|queue| outcome(queue, "done")),
                    not_done,
                });
            }
        }
        counters
    }

    /// The events of each type the relays published, both together.
    fn published(&self) -> [u64; 2] {
        let mut sum = [0; 2];
        for published in &self.published {
            sum[0] += published[0];
            sum[1] += published[1];
        }
        sum
    }

    /// The deliveries of each type `service`'s instances handled to the end, together.
    fn done(&self, service: Service) -> [u64; 2] {
        let mut sum = [0; 2];
        for consumed in self.consumed.iter().filter(|c| c.service == service) {
            sum[0] += consumed.done[0];
            sum[1] += consumed.done[1];
        }
        sum
    }

    /// Whether each consuming service has handled every published event to the end: its
    /// instances' `done` add up to what the relays published. The held registrations
    /// count once: published by a relay, taken out of the queues by the test, and
    /// consumed as the copies the test put back.
    fn all_consumed(&self) -> bool {
        let published = self.published();
        [Service::Email, Service::Profile]
            .into_iter()
            .all(|service| self.done(service) == published)
    }

    /// Asserts that both relays published both event types and that every consumer
    /// instance handled deliveries of both its queues: the work really was shared.
    fn assert_every_instance_worked(&self) {
        for (number, published) in self.published.iter().enumerate() {
            assert!(
                published.iter().all(|count| *count > 0),
                "registration instance {number} published both event types: {published:?}"
            );
        }
        for consumed in &self.consumed {
            assert!(
                consumed.done.iter().all(|count| *count > 0),
                "{} instance {} consumed from both its queues: {consumed:?}",
                consumed.service.name(),
                consumed.number
            );
        }
    }
}

/// Each consuming service with its registration and deletion queue (without prefix).
fn consumer_queues() -> [(Service, [&'static str; 2]); 2] {
    [
        (
            Service::Email,
            [USER_REGISTERED_QUEUES[0], USER_DELETED_QUEUES[0]],
        ),
        (
            Service::Profile,
            [USER_REGISTERED_QUEUES[1], USER_DELETED_QUEUES[1]],
        ),
    ]
}

/// The value of one counter series in a `/metrics` text; 0 if it is not there (a counter
/// that never moved need not be exported).
fn value(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |value| {
            value
                .trim()
                .parse()
                .unwrap_or_else(|error| panic!("{series} {value}: {error}"))
        })
}

/// Waits until the system has settled, and returns the counters then: every outbox row
/// published, every published event handled to the end by one instance of each consuming
/// service (so its effect is committed: the counter moves after the ack), and no work,
/// delay or dead-letter queue holding a message. Fails the test on timeout with the last
/// counts. A marker sign-up would add nothing: the counters already say that everything
/// the relays published was handled, and the copies the test put back are among it.
async fn settle(system: &TestSystem, broker: &Broker, users: usize) -> Counters {
    let registration = system.effects().db(Service::Registration).await;
    let timeout = settle_timeout(users);
    let settled = poll_every(Duration::from_millis(500), timeout, async || {
        let unpublished = unpublished(&registration).await;
        let counters = Counters::scrape(system).await;
        let mut queued = BTreeMap::new();
        for consumer in CONSUMER_QUEUES {
            let topology = system.topology();
            let mut queues = vec![
                topology.queue(consumer),
                topology.dead_letter_queue(consumer),
            ];
            queues.extend(topology.delay_queues(consumer));
            for queue in queues {
                let ready = broker.ready_count(&queue).await;
                if ready > 0 {
                    queued.insert(queue, ready);
                }
            }
        }
        if unpublished == 0 && queued.is_empty() && counters.all_consumed() {
            Ok(counters)
        } else {
            Err(format!(
                "unpublished {unpublished}, published {:?}, email done {:?}, profile done \
                 {:?}, queued {queued:?}; {counters:?}",
                counters.published(),
                counters.done(Service::Email),
                counters.done(Service::Profile),
            ))
        }
    })
    .await;
    registration.close().await;
    settled.unwrap_or_else(|seen| {
        panic!(
            "the system did not settle within {timeout:?}; last seen: {}",
            seen.unwrap_or_default()
        )
    })
}

/// Outbox rows not yet published; -1 if the query failed (not settled either).
async fn unpublished(registration: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from outbox where published_at is null")
        .fetch_one(registration)
        .await
        .unwrap_or(-1)
}

/// A profile row: sequence, erased, has a name.
type ProfileRow = (i64, bool, bool);

/// How a user ended, in every service's rows and at the SMTP server.
#[derive(Debug, Default)]
struct Ended {
    /// registration's `users.last_sequence`, if the user row is there.
    registered: Option<i64>,
    /// In registration's `erased_users`.
    erased: bool,
    /// profile's rows for the user.
    profiles: Vec<ProfileRow>,
    /// email's `known_users` row: last sequence applied, erased.
    known: Option<(i64, bool)>,
    /// The statuses of email's mail records for the user.
    mail_records: Vec<String>,
    /// Mails the SMTP server received for the user's address.
    mails: usize,
}

/// Reads every row that says how a user ended, from all three databases and the SMTP
/// server, and asserts for each user what its [`Fate`] demands; lists every user that
/// ended otherwise. Rows of users the test never made fail it too.
async fn assert_end_states(system: &TestSystem, users: &[User]) {
    let mut ended: BTreeMap<String, Ended> = users
        .iter()
        .map(|user| (user.id.clone(), Ended::default()))
        .collect();
    let mut strangers = Vec::new();

    let db = system.effects().db(Service::Registration).await;
    let rows: Vec<(String, i64)> =
        fetch(&db, "select user_id::text, last_sequence from users").await;
    for (id, sequence) in rows {
        entry(&mut ended, &mut strangers, id, "users").registered = Some(sequence);
    }
    let rows: Vec<(String,)> = fetch(&db, "select user_id::text from erased_users").await;
    for (id,) in rows {
        entry(&mut ended, &mut strangers, id, "erased_users").erased = true;
    }
    db.close().await;

    let db = system.effects().db(Service::Profile).await;
    let rows: Vec<(String, i64, bool, bool)> = fetch(
        &db,
        "select user_id::text, sequence, erased_at is not null,
                display_name is not null or display_name_sealed is not null
         from profiles",
    )
    .await;
    for (id, sequence, erased, named) in rows {
        entry(&mut ended, &mut strangers, id, "profiles")
            .profiles
            .push((sequence, erased, named));
    }
    db.close().await;

    let db = system.effects().db(Service::Email).await;
    let rows: Vec<(String, i64, bool)> = fetch(
        &db,
        "select user_id::text, last_sequence, erased_at is not null from known_users",
    )
    .await;
    for (id, sequence, erased) in rows {
        entry(&mut ended, &mut strangers, id, "known_users").known = Some((sequence, erased));
    }
    let rows: Vec<(String, String)> =
        fetch(&db, "select user_id::text, status from welcome_mails").await;
    for (id, status) in rows {
        entry(&mut ended, &mut strangers, id, "welcome_mails")
            .mail_records
            .push(status);
    }
    db.close().await;

    let mut mails: BTreeMap<String, usize> = BTreeMap::new();
    for mail in system.smtp.messages() {
        *mails
            .entry(mail.recipient().to_ascii_lowercase())
            .or_default() += 1;
    }
    let addresses: BTreeSet<&str> = users.iter().map(|user| user.address.as_str()).collect();
    for address in mails.keys() {
        if !addresses.contains(address.as_str()) {
            strangers.push(format!("a mail to {address}"));
        }
    }
    for user in users {
        if let Some(ended) = ended.get_mut(&user.id) {
            ended.mails = mails.get(&user.address).copied().unwrap_or(0);
        }
    }

    assert!(
        strangers.is_empty(),
        "rows or mails of users the test never made: {strangers:?}"
    );
    let wrong: Vec<(Fate, String)> = users
        .iter()
        .filter_map(|user| {
            let ended = &ended[&user.id];
            (!ended_as_expected(user.fate, ended)).then(|| {
                let what = format!("{:?} {} ({}): {ended:?}", user.fate, user.id, user.address);
                (user.fate, what)
            })
        })
        .collect();
    let of = |fate| wrong.iter().filter(|(f, _)| *f == fate).count();
    assert!(
        wrong.is_empty(),
        "{} of {} users did not end as their highest sequence says (kept {}, raced {}, \
         overtaken {}); the first:\n{}",
        wrong.len(),
        users.len(),
        of(Fate::Kept),
        of(Fate::Raced),
        of(Fate::Overtaken),
        wrong
            .iter()
            .take(10)
            .map(|(_, what)| what.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Every row `sql` returns; fails the test if the query does.
async fn fetch<T>(db: &PgPool, sql: &'static str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(sql)
        .fetch_all(db)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// The user `id`'s entry in `ended`, for a row found in `what`; a user the test never
/// made gets one too, and is listed in `strangers`.
fn entry<'a>(
    ended: &'a mut BTreeMap<String, Ended>,
    strangers: &mut Vec<String>,
    id: String,
    what: &str,
) -> &'a mut Ended {
    if !ended.contains_key(&id) {
        strangers.push(format!("{what} {id}"));
    }
    ended.entry(id).or_default()
}

/// Whether a user with `fate` ended as the highest sequence of their events says.
///
/// - Kept (last event the registration, 1): the user row at 1; one profile at 1 with a
///   name; email at 1, not erased; one mail record, sent; one mail at the SMTP server.
/// - Deleted (last event the deletion, 2): no user row, recorded as erased; one tombstone
///   at 2 without a name; email at 2, erased; no mail record. A user deleted in the race
///   may have got the welcome mail before the deletion (at most one); a user whose
///   registration came only after the deletion never does.
fn ended_as_expected(fate: Fate, ended: &Ended) -> bool {
    match fate {
        Fate::Kept => {
            ended.registered == Some(1)
                && !ended.erased
                && ended.profiles == [(1, false, true)]
                && ended.known == Some((1, false))
                && ended.mail_records == ["sent"]
                && ended.mails == 1
        }
        Fate::Raced | Fate::Overtaken => {
            let most_mails = if fate == Fate::Raced { 1 } else { 0 };
            ended.registered.is_none()
                && ended.erased
                && ended.profiles == [(2, true, false)]
                && ended.known == Some((2, true))
                && ended.mail_records.is_empty()
                && ended.mails <= most_mails
        }
    }
}

/// Prints what the race came to: how many of the racing deletions removed the
/// registration from the outbox before a relay sent it, how many followed a sent one, and
/// how many of those users got their welcome mail before the deletion caught up.
fn report_race(system: &TestSystem, users: &[User], counters: &Counters, raced_in: Duration) {
    let count = |fate| users.iter().filter(|user| user.fate == fate).count();
    let (kept, raced, late) = (
        count(Fate::Kept),
        count(Fate::Raced),
        count(Fate::Overtaken),
    );
    let [registrations, deletions] = counters.published();
    let sent = usize::try_from(registrations)
        .expect("a count fits")
        .saturating_sub(kept + late);
    let mailed = users
        .iter()
        .filter(|user| user.fate == Fate::Raced)
        .filter(|user| !system.smtp.messages_to(&user.address).is_empty())
        .count();
    println!(
        "race: {} users in {raced_in:.1?} ({kept} kept, {raced} deleted at once) plus \
         {late} forced late; the relays published {registrations} registrations and \
         {deletions} deletions ({:?} per instance); of the {raced} racing deletions, {} \
         caught the registration in the outbox (never sent) and {sent} followed it, \
         {mailed} of whose users got the welcome mail before the deletion",
        kept + raced,
        counters
            .published
            .iter()
            .map(|published| published[0] + published[1])
            .collect::<Vec<_>>(),
        raced.saturating_sub(sent),
    );
    for consumed in &counters.consumed {
        println!(
            "  {} instance {}: {} registrations and {} deletions done, {} otherwise",
            consumed.service.name(),
            consumed.number,
            consumed.done[0],
            consumed.done[1],
            consumed.not_done
        );
    }
}

/// Counts, in each consumer instance's log, the deliveries it turned away as stale (a
/// newer event of the user was applied first) or as already applied (the inbox had
/// them), and prints them. Asserts that each of the `late` registrations was turned
/// away as stale exactly once in each service, and by more than one instance, and that
/// each instance's `events_skipped_total` says as much as its log.
async fn check_turned_away(system: &mut TestSystem, late: &BTreeSet<String>) {
    for (service, stale_line) in [
        (Service::Email, EMAIL_STALE),
        (Service::Profile, PROFILE_STALE),
    ] {
        let mut stale_per_instance = Vec::new();
        let mut late_per_instance = Vec::new();
        let mut already_applied = Vec::new();
        let mut late_seen: BTreeMap<String, usize> = BTreeMap::new();
        let queue = format!("{}.user-registered", service.name());
        let counted = format!(r#"events_skipped_total{{queue="{queue}",reason="stale"}}"#);
        for number in 0..CONSUMERS {
            let log = system.processes().instance(service, number).log();
            let stale = logged_event_ids(&log, stale_line);
            let metric = system.ops_of(service, number).metric(&counted).await;
            assert!(
                (metric - stale.len() as f64).abs() < 0.5,
                "{} instance {number}: {counted} is {metric}, its log turned away {}",
                service.name(),
                stale.len()
            );
            let forced = stale.iter().filter(|id| late.contains(*id)).count();
            for id in stale.iter().filter(|id| late.contains(*id)) {
                *late_seen.entry(id.clone()).or_default() += 1;
            }
            stale_per_instance.push(stale.len());
            late_per_instance.push(forced);
            already_applied.push(logged_event_ids(&log, ALREADY_APPLIED).len());
        }
        let stale: usize = stale_per_instance.iter().sum();
        println!(
            "{}: turned away as stale {stale} deliveries (per instance {stale_per_instance:?}): \
             the {} forced late registrations (per instance {late_per_instance:?}) and {} \
             registrations the race's deletions overtook; as already applied {:?}",
            service.name(),
            late.len(),
            stale.saturating_sub(late.len()),
            already_applied,
        );
        let missing: Vec<&String> = late
            .iter()
            .filter(|id| late_seen.get(*id) != Some(&1))
            .collect();
        assert!(
            missing.is_empty(),
            "{}: every forced late registration turned away as stale exactly once; not so: \
             {missing:?} ({late_seen:?})",
            service.name()
        );
        assert!(
            late_per_instance.iter().filter(|count| **count > 0).count() > 1,
            "{}: several instances received late registrations: {late_per_instance:?}",
            service.name()
        );
    }
}

/// The event ids (`messaging.message.id`) of a service log's JSON lines whose message is
/// `message`.
fn logged_event_ids(log: &str, message: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == message)
        .map(|line| {
            line["messaging.message.id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}
