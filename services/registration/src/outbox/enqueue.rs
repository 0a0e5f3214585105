//! An outbox row before it is written: the event, as the relay will publish it, and the
//! trace context its publish span will continue. The sign-up writes it in the same
//! statement as the user (`store::insert_users`), so the event exists if and only if the
//! user does.

use events::{Envelope, Event};
use service_kit::pii::{PiiError, Sealer};
use uuid::Uuid;

use super::StoredTraceContext;

/// Why an event cannot go into the outbox. Neither happens with the events this service
/// makes; they are errors rather than panics because the envelope is generic.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The envelope does not serialise.
    #[error("the event cannot be serialised: {0}")]
    Payload(#[from] serde_json::Error),
    /// The envelope's subject is not the aggregate's UUID.
    #[error("the event's subject is not a UUID: {0}")]
    Subject(#[from] uuid::Error),
    /// The envelope could not be sealed.
    #[error("the event cannot be sealed: {0}")]
    Sealing(#[from] PiiError),
}

/// The values of one outbox row.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// The envelope's id; the row's key and the message id.
    pub(crate) event_id: Uuid,
    /// The envelope's type, e.g. `user.registered.v1`.
    pub(crate) event_type: String,
    /// The aggregate (the user) the event is about: the envelope's subject.
    pub(crate) aggregate_id: Uuid,
    /// The whole envelope as JSON, sealed (it holds the user's address and name): the
    /// message body once the relay opens it.
    pub(crate) payload: Vec<u8>,
    /// The trace context of the span that prepared the row.
    pub(crate) trace: StoredTraceContext,
}

impl OutboxEntry {
    /// The row for `event`, with the trace context of the current span. The sign-up
    /// handler calls this inside its request span and before the statement's own
    /// `INSERT users` span exists, so what is stored is the request span: the parent the
    /// relay's publish span should have.
    pub fn new<T: Event>(event: &Envelope<T>, pii: &Sealer) -> Result<Self, EntryError> {
        Ok(Self {
            event_id: event.id,
            event_type: event.event_type.clone(),
            aggregate_id: Uuid::parse_str(&event.subject)?,
            payload: pii.seal(super::PAYLOAD, &serde_json::to_string(event)?)?,
            trace: StoredTraceContext::capture_current(),
        })
    }
}
