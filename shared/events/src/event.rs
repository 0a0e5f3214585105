use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};

/// The scheme and authority of every `dataschema` URI: a `tag:` URI (RFC 4151), the same
/// naming the HTTP problem types use. It is an absolute URI that names the schema without
/// pretending to be downloadable; the committed schema file carries it as its `$id`, so a
/// schema registry or a validator can find the file by it.
pub const DATASCHEMA_PREFIX: &str = "tag:signup-demo,2026:schema:";

/// Implemented by every event type, so that publishing, decoding and schema generation
/// all read the type name and schema locations from one place instead of string literals
/// scattered through the services.
pub trait Event: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// The CloudEvents `type`, also the AMQP routing key and message `type` property.
    /// The trailing `.vN` is the major version: a breaking change is a new type.
    const TYPE: &'static str;

    /// The envelope's `dataschema`: the absolute URI of the schema of `data` (not of the
    /// whole envelope), [`DATASCHEMA_PREFIX`] followed by [`Event::TYPE`]. Checked by the
    /// schema tests.
    const DATASCHEMA: &'static str;

    /// Where the committed JSON Schema of the whole message (the envelope with this
    /// `data`) lives, relative to the repository root: the payload the AsyncAPI
    /// document points at.
    const SCHEMA_PATH: &'static str;

    /// Where the committed JSON Schema of `data` lives, relative to the repository root:
    /// the document [`Event::DATASCHEMA`] names (its `$id`).
    const DATA_SCHEMA_PATH: &'static str;
}
