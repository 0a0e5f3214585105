use events::{Envelope, Event, UserDeletedV1, UserRegisteredV1};
use std::sync::Arc;

use messaging::{consumer::Handler, outcome::HandlerOutcome};

use super::*;

static SERVICE: ConsumerService = ConsumerService {
    identity: ServiceIdentity::new("test", 0, "a service with two subscriptions"),
    subscriptions: &[
        Subscription {
            queue: "test.user-registered",
            event_type: UserRegisteredV1::TYPE,
        },
        Subscription {
            queue: "test.user-deleted",
            event_type: UserDeletedV1::TYPE,
        },
    ],
    migrator: &Migrator::DEFAULT,
    sealed_tables: &[],
};

/// Accepts every event of either type.
struct Accept;

impl Handler<UserRegisteredV1> for Accept {
    async fn handle(&self, _: Envelope<UserRegisteredV1>) -> HandlerOutcome {
        HandlerOutcome::Done
    }
}

impl Handler<UserDeletedV1> for Accept {
    async fn handle(&self, _: Envelope<UserDeletedV1>) -> HandlerOutcome {
        HandlerOutcome::Done
    }
}

fn queues(handlers: Handlers) -> Result<Vec<&'static str>, String> {
    SERVICE
        .pair(handlers)
        .map(|paired| paired.iter().map(|(s, _)| s.queue).collect())
        .map_err(|error| error.to_string())
}

#[test]
fn each_subscription_gets_its_handler_whatever_the_order_they_are_given_in() {
    let handler = Arc::new(Accept);
    let handlers = Handlers::default()
        .on::<UserDeletedV1, _>(handler.clone())
        .on::<UserRegisteredV1, _>(handler);
    assert_eq!(
        queues(handlers),
        Ok(vec!["test.user-registered", "test.user-deleted"])
    );
}

#[test]
fn a_subscription_without_a_handler_stops_the_start() {
    let handlers = Handlers::default().on::<UserRegisteredV1, _>(Arc::new(Accept));
    let error = queues(handlers).expect_err("the deletion has no handler");
    assert!(error.contains("no handler for user.deleted.v1"), "{error}");
}

#[test]
fn a_second_handler_for_one_type_stops_the_start() {
    let handler = Arc::new(Accept);
    let handlers = Handlers::default()
        .on::<UserRegisteredV1, _>(handler.clone())
        .on::<UserDeletedV1, _>(handler.clone())
        .on::<UserDeletedV1, _>(handler);
    let error = queues(handlers).expect_err("two handlers for one type");
    assert!(error.contains("a handler for user.deleted.v1"), "{error}");
}
