use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Event;

/// The CloudEvents version this envelope follows.
pub const SPEC_VERSION: &str = "1.0";

/// The JSON media type of `data` (the envelope's `datacontenttype`).
pub const CONTENT_TYPE: &str = "application/json";

/// The media type of a whole envelope in structured mode (CloudEvents JSON event format):
/// the AMQP `content_type` of every message, as the CloudEvents AMQP binding asks for a
/// structured-mode message, so a reader knows the body is an event and not just JSON.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// An event with its CloudEvents 1.0 context attributes (structured mode: the whole
/// envelope is the message body). Consumers deduplicate on `id`, order per aggregate on
/// `sequence`, and find the trace through the AMQP headers, not through this body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope<T> {
    /// Always `"1.0"`.
    pub specversion: String,
    /// Unique per event (UUIDv7, so ids sort by creation time). The idempotency key of
    /// every consumer: a redelivered message has the same id.
    pub id: Uuid,
    /// Who produced the event, as a URI reference, e.g. `/registration`.
    pub source: String,
    /// The versioned event type, e.g. `user.registered.v1`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The aggregate the event is about (the user id).
    pub subject: String,
    /// When the event happened.
    pub time: DateTime<Utc>,
    /// Media type of `data`: always `application/json`.
    pub datacontenttype: String,
    /// The absolute URI of the JSON Schema of `data` (a `tag:` URI, the `$id` of the
    /// committed schema file), e.g. `tag:signup-demo,2026:schema:user.registered.v1`.
    pub dataschema: String,
    /// CloudEvents `sequence` extension: position of this event among the events of the
    /// same `subject`, starting at 1. Lets a consumer notice gaps or stale events.
    pub sequence: u64,
    /// The event itself.
    pub data: T,
}

impl<T: Event> Envelope<T> {
    /// Wraps `data` in a new envelope with a fresh UUIDv7 id and the current time.
    pub fn new(source: &str, subject: impl Into<String>, sequence: u64, data: T) -> Self {
        Self {
            specversion: SPEC_VERSION.to_owned(),
            id: Uuid::now_v7(),
            source: source.to_owned(),
            event_type: T::TYPE.to_owned(),
            subject: subject.into(),
            time: Utc::now(),
            datacontenttype: CONTENT_TYPE.to_owned(),
            dataschema: T::DATASCHEMA.to_owned(),
            sequence,
            data,
        }
    }
}
