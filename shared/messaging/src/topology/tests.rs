//! Unit tests of the topology: the names and what a consumer declares, checked without a
//! broker.

use super::*;

#[test]
fn without_a_prefix_the_names_are_the_designs() {
    let topology = Topology::default();
    assert_eq!(topology.exchange(), "users");
    assert_eq!(
        topology.queue("email.user-registered"),
        "email.user-registered"
    );
    let names = QueueNames::new(topology.queue("email.user-registered"));
    assert_eq!(names.dead_letter, "email.user-registered.dlq");
    assert_eq!(
        names.delay_queue(Duration::from_secs(2)),
        "email.user-registered.delay.2000ms"
    );
}

#[test]
fn the_declared_queues_are_the_consumers_queues_with_their_arguments() {
    let topology = Topology::default();
    let retry = RetryPolicy::exponential(Duration::from_secs(1), 2);
    let queues = topology.declared_queues("email.user-registered", &retry);
    let names: Vec<&str> = queues.iter().map(|queue| queue.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "email.user-registered.dlq",
            "email.user-registered",
            "email.user-registered.delay.1000ms",
            "email.user-registered.delay.2000ms",
        ]
    );
    let delay = &queues[3];
    assert!(delay.options.durable && !delay.options.exclusive && !delay.options.auto_delete);
    assert_eq!(
        delay.arguments,
        [
            ("x-dead-letter-exchange", "".into()),
            ("x-dead-letter-routing-key", "email.user-registered".into()),
            ("x-dead-letter-strategy", "at-least-once".into()),
            ("x-message-ttl", 2000.into()),
            ("x-overflow", "reject-publish".into()),
            ("x-queue-type", "quorum".into()),
        ]
        .map(|(name, value): (&str, serde_json::Value)| (name.to_owned(), value))
    );
}

#[test]
fn a_prefix_applies_to_every_name() {
    let topology = Topology::new("t42.");
    assert_eq!(topology.exchange(), "t42.users");
    assert_eq!(
        topology.queue("profile.user-registered"),
        "t42.profile.user-registered"
    );
}
