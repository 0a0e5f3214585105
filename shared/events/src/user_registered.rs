use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Event;

/// A person signed up: registration has committed the user. The email and profile services
/// react to it; nothing else is needed from registration to do so, which is why the event
/// carries the email address and display name rather than only the id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UserRegisteredV1 {
    /// The new user's id (UUIDv7), also the envelope's `subject`.
    pub user_id: Uuid,
    /// Normalised (trimmed, lower-cased) email address, unique across users.
    pub email: String,
    /// The name the user chose, trimmed, 1 to 100 characters.
    pub display_name: String,
    /// When registration committed the user.
    pub registered_at: DateTime<Utc>,
}

impl Event for UserRegisteredV1 {
    const TYPE: &'static str = "user.registered.v1";
    const DATASCHEMA: &'static str = "tag:signup-demo,2026:schema:user.registered.v1";
    const SCHEMA_PATH: &'static str = "shared/events/schemas/user.registered.v1.json";
    const DATA_SCHEMA_PATH: &'static str = "shared/events/schemas/data/user.registered.v1.json";
}
