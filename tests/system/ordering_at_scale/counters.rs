//! The instances' own counters, and settling on them.

use std::{collections::BTreeMap, time::Duration};

use sqlx::PgPool;
use system_tests::{
    broker::Broker,
    effects::settle_timeout,
    eventually::poll_every,
    system::{CONSUMER_QUEUES, Service, TestSystem, USER_DELETED_QUEUES, USER_REGISTERED_QUEUES},
};

use super::{CONSUMERS, REGISTRATIONS};

/// The event types, in the order of [`Counters`]' pairs: each consuming service's
/// `USER_REGISTERED_QUEUES` entry gets the first, its `USER_DELETED_QUEUES` entry the
/// second.
const EVENT_TYPES: [&str; 2] = ["user.registered.v1", "user.deleted.v1"];

/// One scrape of every instance's `/metrics`.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Per registration instance: the events the broker confirmed, per [`EVENT_TYPES`].
    pub(super) published: Vec<[u64; 2]>,
    /// Per consuming instance: its deliveries handled to the end (`done`), per
    /// [`EVENT_TYPES`], and the others (retried, dead-lettered, requeued) in all.
    pub(super) consumed: Vec<Consumed>,
}

/// What one email or profile instance did with its deliveries.
#[derive(Debug)]
pub(super) struct Consumed {
    pub(super) service: Service,
    pub(super) number: usize,
    /// `done` deliveries of its registration queue and of its deletion queue.
    pub(super) done: [u64; 2],
    /// Deliveries of either queue that ended otherwise: retried, dead-lettered, requeued.
    pub(super) not_done: u64,
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
    pub(super) fn published(&self) -> [u64; 2] {
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
    pub(super) fn assert_every_instance_worked(&self) {
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
pub(super) fn consumer_queues() -> [(Service, [&'static str; 2]); 2] {
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
pub(super) fn value(metrics: &str, series: &str) -> u64 {
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
pub(super) async fn settle(system: &TestSystem, broker: &Broker, users: usize) -> Counters {
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
pub(super) async fn unpublished(registration: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from outbox where published_at is null")
        .fetch_one(registration)
        .await
        .unwrap_or(-1)
}
