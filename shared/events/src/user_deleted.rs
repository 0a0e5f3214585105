use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Event;

/// A user asked to be forgotten, and registration has erased them: every service that
/// keeps personal data about this user erases it on receipt and remembers only that the
/// user was erased, so that a `user.registered.v1` of the same user arriving later (a
/// retry, a redrive, a replay) changes nothing.
///
/// Deliberately carries no personal data: it is itself a copy that sits in queues and in
/// the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UserDeletedV1 {
    /// The erased user's id, also the envelope's `subject`.
    pub user_id: Uuid,
    /// When registration committed the erasure.
    pub deleted_at: DateTime<Utc>,
}

impl Event for UserDeletedV1 {
    const TYPE: &'static str = "user.deleted.v1";
    const DATASCHEMA: &'static str = "tag:signup-demo,2026:schema:user.deleted.v1";
    const SCHEMA_PATH: &'static str = "shared/events/schemas/user.deleted.v1.json";
    const DATA_SCHEMA_PATH: &'static str = "shared/events/schemas/data/user.deleted.v1.json";
}
