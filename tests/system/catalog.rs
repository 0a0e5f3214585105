//! What the system is made of, read from the code: every event type registration
//! publishes and every (service, queue, event type) subscription. The documents checked
//! against the code (the AsyncAPI document, the broker definitions) start from here.

use std::path::{Path, PathBuf};

use events::{Event, UserDeletedV1, UserRegisteredV1};

/// An event type the system publishes, as the code names it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventType {
    /// The CloudEvents type, routing key and AMQP `type` property, e.g. `user.registered.v1`.
    pub(crate) name: &'static str,
    /// Its committed JSON Schema, relative to the workspace root.
    pub(crate) schema_path: &'static str,
}

impl EventType {
    pub(crate) fn of<E: Event>() -> Self {
        Self {
            name: E::TYPE,
            schema_path: E::SCHEMA_PATH,
        }
    }
}

/// One consuming service's work queue and the event type bound to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subscription {
    /// The service, e.g. `email` (for the messages of this test only).
    pub(crate) service: &'static str,
    /// Its work queue, without a prefix, e.g. `email.user-registered`.
    pub(crate) queue: &'static str,
    /// The event type the queue is bound to.
    pub(crate) event: EventType,
}

/// Every event type registration publishes. A new event type is one line here.
pub(crate) fn events() -> Vec<EventType> {
    vec![
        EventType::of::<UserRegisteredV1>(),
        EventType::of::<UserDeletedV1>(),
    ]
}

/// Every (service, work queue, event type) of the system, from the services' own
/// `SERVICE` statics (their `subscriptions`). A new consumer is one line here.
pub(crate) fn subscriptions() -> Vec<Subscription> {
    let services = [&email::SERVICE, &profile::SERVICE];
    let events = events();
    services
        .iter()
        .flat_map(|service| {
            service.subscriptions.iter().map(|subscription| {
                let event = events
                    .iter()
                    .find(|event| event.name == subscription.event_type)
                    .copied()
                    .unwrap_or_else(|| {
                        panic!("{} is missing from events()", subscription.event_type)
                    });
                Subscription {
                    service: service.identity.name,
                    queue: subscription.queue,
                    event,
                }
            })
        })
        .collect()
}

/// The workspace root, where `docs/`, `deploy/` and the schema paths start.
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}
