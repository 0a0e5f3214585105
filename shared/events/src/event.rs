use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};

/// Implemented by every event type, so that publishing, decoding and schema generation
/// all read the type name and schema location from one place instead of string literals
/// scattered through the services.
pub trait Event: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// The CloudEvents `type`, also the AMQP routing key and message `type` property.
    /// The trailing `.vN` is the major version: a breaking change is a new type.
    const TYPE: &'static str;

    /// Where the committed JSON Schema lives, relative to the repository root. It becomes
    /// the envelope's `dataschema`, so a reader of a message can find its contract.
    const SCHEMA_PATH: &'static str;
}
