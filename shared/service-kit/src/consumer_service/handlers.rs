//! What a consuming service declares it reads ([`Subscription`]) and what handles it
//! ([`Handlers`]); the skeleton pairs the two at start.

use std::sync::Arc;

use events::Event;
use messaging::consumer::{ConsumerConfig, Handler, QueueConsumer};

/// One event type a service handles, and the work queue it reads it from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// The work queue without the test prefix, e.g. `email.user-registered`; bound to
    /// the exchange with the event type as routing key.
    pub queue: &'static str,
    /// The event type, e.g. `user.registered.v1` (an [`Event::TYPE`]).
    pub event_type: &'static str,
}

impl Subscription {
    /// `event_type` read from `queue`; `const`, so a service's subscriptions can be a
    /// `static` list.
    pub const fn new(queue: &'static str, event_type: &'static str) -> Self {
        Self { queue, event_type }
    }
}

/// Makes a handler's [`QueueConsumer`], given where and how to read.
pub(super) type MakeConsumer = Box<dyn FnOnce(ConsumerConfig) -> QueueConsumer + Send>;

/// The service's handlers, one per event type, as
/// [`ConsumerService::build`](super::ConsumerService::build) takes them.
#[derive(Default)]
pub struct Handlers {
    pub(super) consumers: Vec<(&'static str, MakeConsumer)>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let types: Vec<_> = self.consumers.iter().map(|(t, _)| t).collect();
        f.debug_struct("Handlers")
            .field("event_types", &types)
            .finish()
    }
}

impl Handlers {
    /// `handler` handles the `E` events, from the queue the service's subscriptions name
    /// for `E::TYPE`. One handler value may handle several types (pass clones of one
    /// `Arc`).
    #[must_use]
    pub fn on<E: Event, H: Handler<E>>(mut self, handler: Arc<H>) -> Self {
        let make: MakeConsumer =
            Box::new(move |config| QueueConsumer::new::<E, H>(config, handler));
        self.consumers.push((E::TYPE, make));
        self
    }
}
